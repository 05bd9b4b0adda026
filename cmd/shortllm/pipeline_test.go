package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// demoModel is the model `make demo` prunes; tests use it with tiny settings.
func demoModel(t *testing.T) string {
	t.Helper()
	dir := filepath.Join("..", "..", "testdata", "demo")
	if _, err := os.Stat(filepath.Join(dir, "model", "model.safetensors")); err != nil {
		t.Fatalf("demo model missing from testdata (rebuild with make demo-model): %v", err)
	}
	return dir
}

// tinyPipeline is the demo's pipeline.yaml cut to seconds: one criterion, two retraining
// modes of two steps, two PPL chunks, no speed.
func tinyPipeline(demo, out string, extra ...string) []string {
	return append([]string{"pipeline", "--quiet", "--config", filepath.Join(demo, "pipeline.yaml"), "--out", out,
		"--criteria", "ppl", "--retrain", "none,lora", "--retrain-steps", "2", "--max-chunks", "2",
		"--calib-samples", "4", "--limit", "2", "--speed=false"}, extra...)
}

type pipelineDoc struct {
	Log struct{ Ran, Reused []string }
}

func runPipelineJSON(t *testing.T, args ...string) pipelineDoc {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := execute(append(args, "--json"), nil, &out, &errOut); code != 0 {
		t.Fatalf("pipeline: exit %d: %s", code, errOut.String())
	}
	var doc pipelineDoc
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatalf("pipeline --json: %v\n%s", err, out.String())
	}
	return doc
}

// TestPipeline_KillResumeAndAddRatio kills a pipeline process (SIGKILL) once its first stage
// has finished, re-runs it and checks that finished stages were reused, not redone (their
// stage.json untouched), that the report has its tables and plots, and that adding a ratio
// runs only the new ratio's stages.
func TestPipeline_KillResumeAndAddRatio(t *testing.T) {
	if testing.Short() {
		t.Skip("runs pipeline subprocesses")
	}
	demo := demoModel(t)
	out := filepath.Join(t.TempDir(), "run")
	first := killAfterFirstStage(t, retrainCommand(append(tinyPipeline(demo, out), "--stage-delay", "1s")...), out)
	before, err := os.Stat(first)
	if err != nil {
		t.Fatal(err)
	}
	doc := runPipelineJSON(t, tinyPipeline(demo, out)...)
	rel, _ := filepath.Rel(out, filepath.Dir(first))
	if !contains(doc.Log.Reused, rel) || contains(doc.Log.Ran, rel) {
		t.Fatalf("after the kill, %s was not reused: ran %v, reused %v", rel, doc.Log.Ran, doc.Log.Reused)
	}
	if after, _ := os.Stat(first); !after.ModTime().Equal(before.ModTime()) {
		t.Fatalf("%s rewritten by the resumed run", first)
	}
	checkReport(t, out)

	doc = runPipelineJSON(t, tinyPipeline(demo, out, "--ratios", "25%,40%")...)
	if len(doc.Log.Ran) == 0 {
		t.Fatal("adding a ratio ran nothing")
	}
	for _, s := range doc.Log.Ran {
		if !strings.Contains(s, "-40.0") {
			t.Errorf("adding ratio 40%% re-ran %s", s)
		}
	}
}

// killAfterFirstStage starts cmd, waits for the first stage.json under out, kills the
// process with SIGKILL and returns that stage.json's path.
func killAfterFirstStage(t *testing.T, cmd *exec.Cmd, out string) string {
	t.Helper()
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if m, _ := filepath.Glob(filepath.Join(out, "*", "*", "stage.json")); len(m) > 0 {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			if _, err := os.Stat(filepath.Join(out, "report.md")); err == nil {
				t.Fatal("the pipeline finished before it was killed: raise --stage-delay")
			}
			return m[0]
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	t.Fatalf("no stage finished within 60s:\n%s", log.String())
	return ""
}

func checkReport(t *testing.T, out string) {
	t.Helper()
	md, err := os.ReadFile(filepath.Join(out, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## Results", "| original |", "| ppl 25.0% lora |", "PPL opticks (BOS once)", "## Zero-shot accuracy", "BoolQ (acc, n=2)", "## Block scores", "plots/scores-ppl.png", "plots/ppl-opticks-bos-once.png"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	if strings.Contains(string(md), "Incomplete run") {
		t.Error("report.md says the finished run is incomplete")
	}
	for _, p := range []string{"scores-ppl.png", "ppl-opticks-bos-once.png", "ppl-opticks-bos-every.png", "training-loss.png"} {
		if st, err := os.Stat(filepath.Join(out, "plots", p)); err != nil || st.Size() < 1000 {
			t.Errorf("plot %s: %v", p, err)
		}
	}
	if csv, err := os.ReadFile(filepath.Join(out, "report.csv")); err != nil || !strings.HasPrefix(string(csv), "model,family,method,ratio_requested,removed_share") {
		t.Errorf("report.csv: %v\n%s", err, csv)
	}
	// report re-renders the same tables from the stored results.
	before := string(md)
	if code, _, errOut := cli(t, "", "report", out); code != 0 {
		t.Fatalf("report: %s", errOut)
	}
	if again, _ := os.ReadFile(filepath.Join(out, "report.md")); string(again) != before {
		t.Error("shortllm report rendered a different report.md from the same results")
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// TestPipeline_BadInputOneLine: each mistake is one line on stderr, exit code 1, and
// nothing is written.
func TestPipeline_BadInputOneLine(t *testing.T) {
	dir := t.TempDir()
	badYAML := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(badYAML, []byte("ratios: 20%\ncriterias: ppl\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "run")
	common := []string{"pipeline", "--model", dir, "--out", out, "--calib", badYAML, "--eval-ppl", "x=text:" + badYAML}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown stage", []string{"--retrain", "none,qlora"}, `--retrain: retrain mode "qlora": want none, lora, cpt or cpt+lora`},
		{"duplicate ratios", []string{"--ratios", "20%,35%,0.2"}, "--ratios: 20% and 0.2 are the same ratio"},
		{"config unknown key", []string{"--config", badYAML}, "unknown key criterias"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, errOut := cli(t, "", append(common, c.args...)...)
			if code != 1 || !strings.Contains(errOut, c.want) || strings.Count(errOut, "\n") != 1 {
				t.Fatalf("exit %d, stderr %q; want one line containing %q", code, errOut, c.want)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Fatalf("bad input created %s", out)
			}
		})
	}
}

// TestPipeline_WidthBesideDepth: a width criterion runs at the same ratio as a block
// criterion and its rows reach the report with the share of parameters it removed.
func TestPipeline_WidthBesideDepth(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a pipeline")
	}
	out := filepath.Join(t.TempDir(), "run")
	args := tinyPipeline(demoModel(t), out, "--retrain", "none", "--width-criteria", "wanda-sp")
	runPipelineJSON(t, args...)
	var rep struct {
		Rows []struct {
			Family       string  `json:"family"`
			Criterion    string  `json:"method"`
			RemovedShare float64 `json:"removed_share"`
			Done         bool    `json:"done"`
		} `json:"rows"`
	}
	data, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range rep.Rows {
		if r.Criterion == "wanda-sp" {
			found = true
			if r.Family != "width" {
				t.Errorf("wanda-sp row: family %q, want width", r.Family)
			}
			if !r.Done || r.RemovedShare < 0.2 || r.RemovedShare > 0.3 {
				t.Errorf("wanda-sp row: done %v, removed %.3f (ratio 25%%)", r.Done, r.RemovedShare)
			}
		}
	}
	if !found {
		t.Errorf("report has no wanda-sp row: %s", data)
	}
}

// Sparsity variants join the depth-pruned ones in one report: nonzero parameter counts, the
// removed share, their PPL, and the plain statement about dense kernels and zeros.
func TestPipeline_SparsityVariants(t *testing.T) {
	demo := demoModel(t)
	out := filepath.Join(t.TempDir(), "run")
	runPipelineJSON(t, append(tinyPipeline(demo, out), "--retrain", "none", "--sparsity-methods", "magnitude,wanda+alpha", "--sparsity", "40%")...)
	var rep struct {
		Rows []struct {
			Name         string
			Criterion    string             `json:"method"`
			Family       string             `json:"family"`
			Params       int64              `json:"params"`
			RemovedShare float64            `json:"removed_share"`
			PPL          map[string]float64 `json:"ppl"`
			Done         bool               `json:"done"`
		} `json:"rows"`
		Notes []string `json:"notes"`
	}
	data, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err == nil {
		err = json.Unmarshal(data, &rep)
	}
	if err != nil {
		t.Fatal(err)
	}
	orig := rep.Rows[0]
	sparse := 0
	for _, r := range rep.Rows {
		if !strings.Contains(r.Criterion, "_unstructured") {
			continue
		}
		sparse++
		if !r.Done || len(r.PPL) == 0 || r.Params >= orig.Params || r.RemovedShare < 0.3 || r.RemovedShare > 0.4 || r.Family != "sparsity" {
			t.Fatalf("sparse row %+v (original %d params)", r, orig.Params)
		}
	}
	md, err := os.ReadFile(filepath.Join(out, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	if sparse != 2 || len(rep.Notes) != 1 || !strings.Contains(string(md), "dense kernels") {
		t.Fatalf("%d sparse rows, notes %q", sparse, rep.Notes)
	}
}

// TestPipeline_SpeedOncePerArchitecture: two criteria that remove the same number of blocks
// give one architecture, measured once beside the original; every pruned row gets its
// architecture's paired ratio with a spread, and the report names backend and device.
func TestPipeline_SpeedOncePerArchitecture(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a pipeline")
	}
	demo := demoModel(t)
	out := filepath.Join(t.TempDir(), "run")
	args := []string{"pipeline", "--quiet", "--config", filepath.Join(demo, "pipeline.yaml"), "--out", out,
		"--criteria", "ppl,taylor", "--retrain", "none", "--max-chunks", "1", "--calib-samples", "2", "--eval-zeroshot=",
		"--speed", "--speed-batch-sizes", "1", "--speed-new-tokens", "2", "--speed-prompt-len", "4", "--speed-runs", "3", "--speed-warmup", "0"}
	runPipelineJSON(t, args...)
	var rep struct {
		Speed struct {
			Backend, Device string
			Archs           []struct {
				Members []string `json:"members"`
			} `json:"architectures"`
		} `json:"speed"`
		Rows []struct {
			Name  string
			Speed *struct{ Median, Min, Max float64 } `json:"speed_ratio"`
		} `json:"rows"`
	}
	data, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil || json.Unmarshal(data, &rep) != nil {
		t.Fatalf("report.json: %v", err)
	}
	if a := rep.Speed.Archs; len(a) != 2 || strings.Join(a[1].Members, ",") != "ppl 25.0%,taylor 25.0%" {
		t.Fatalf("architectures %+v; want the original and one 8-block architecture shared by both criteria", a)
	}
	if !strings.Contains(rep.Speed.Backend, "go") || !strings.Contains(rep.Speed.Device, "cores") {
		t.Errorf("backend %q device %q", rep.Speed.Backend, rep.Speed.Device)
	}
	for _, r := range rep.Rows[1:] {
		if s := r.Speed; s == nil || s.Min > s.Median || s.Median > s.Max || s.Min <= 0 {
			t.Errorf("%s: speed ratio %+v", r.Name, s)
		}
	}
	if n, _ := filepath.Glob(filepath.Join(out, "speed", "*", "stage.json")); len(n) != 1 {
		t.Errorf("%d speed stages, want 1", len(n))
	}
}

// A Hugging Face id works in pipeline as in every verb: here resolved offline from a cache
// laid out as huggingface_hub lays it out.
func TestPipeline_HubID(t *testing.T) {
	demo := demoModel(t)
	cache := t.TempDir()
	const commit = "0123456789abcdef0123456789abcdef01234567"
	repo := filepath.Join(cache, "models--acme--demo")
	snap := filepath.Join(repo, "snapshots", commit)
	if err := os.MkdirAll(filepath.Join(repo, "refs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "refs", "main"), []byte(commit), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(snap, os.DirFS(filepath.Join(demo, "model"))); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HF_HUB_CACHE", cache)
	t.Setenv("HF_HUB_OFFLINE", "1")
	out := filepath.Join(t.TempDir(), "run")
	runPipelineJSON(t, tinyPipeline(demo, out, "--model", "acme/demo", "--retrain", "none")...)
	data, err := os.ReadFile(filepath.Join(out, "run.json"))
	if err != nil {
		t.Fatal(err)
	}
	var man struct{ Config struct{ Model string } }
	if err := json.Unmarshal(data, &man); err != nil {
		t.Fatal(err)
	}
	if man.Config.Model != snap {
		t.Errorf("run.json model %q, want the snapshot %s", man.Config.Model, snap)
	}
}
