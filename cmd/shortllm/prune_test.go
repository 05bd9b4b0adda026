package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/prune"
	"github.com/shortllm/shortllm/internal/testutil"
)

// pruneRun runs the CLI and returns exit code, stdout and stderr.
func pruneRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := execute(args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

// pruneJSON runs a --json prune that must succeed and decodes its report.
func pruneJSON(t *testing.T, args ...string) prune.Record {
	t.Helper()
	code, out, errOut := pruneRun(t, append([]string{"--json", "--quiet"}, args...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rec prune.Record
	if err := json.Unmarshal([]byte(out), &rec); err != nil {
		t.Fatalf("stdout is not one JSON document: %v\n%s", err, out)
	}
	return rec
}

// pruneGoldenScores writes ../shared's float64 ppl scores of model name as a `shortllm score`
// file; hashOf's config hash is recorded (pass another model to forge a mismatch).
func pruneGoldenScores(t *testing.T, name string, hash string) string {
	t.Helper()
	var g struct {
		PPL   []float64 `json:"ppl"`
		Order []int     `json:"ppl_order_least_important_first"`
	}
	data, err := os.ReadFile(testutil.SharedDir(t, "goldens", name+".criteria.json"))
	if err == nil {
		err = json.Unmarshal(data, &g)
	}
	if err != nil {
		t.Fatal(err)
	}
	doc := map[string]any{"model": name, "config_hash": hash, "num_layers": len(g.PPL), "criterion": "ppl",
		"scores": g.PPL, "order": g.Order, "calibration": map[string]any{"source": "calib10x128.ids.json"}}
	data, _ = json.Marshal(doc)
	path := filepath.Join(t.TempDir(), name+".scores.json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func pruneConfigHash(t *testing.T, dir string) string {
	t.Helper()
	cfg, err := model.LoadConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Hash()
}

func TestPrune_BlocksNoPlusStories260K(t *testing.T) {
	src := testutil.SharedDir(t, "models", "stories260K")
	out := filepath.Join(t.TempDir(), "s3")
	code, stdout, errOut := pruneRun(t, "prune", "--model", src, "--out", out, "--blocks", "3,1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"removed 2 of 5 blocks: 1,3 (as listed)", "parameters 260032 → 169152: 34.9% removed", "wrote " + out + " (3 blocks)"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	m, err := model.Load(out, model.LoadOptions{})
	if err != nil || m.Config.NumHiddenLayers != 3 {
		t.Fatalf("pruned model: %v", err)
	}
}

func TestPrune_Deep16Ratio35GoldenScores(t *testing.T) {
	src := testutil.SharedDir(t, "models", "deep16")
	scores := pruneGoldenScores(t, "deep16", pruneConfigHash(t, src))
	out := filepath.Join(t.TempDir(), "d35")
	rec := pruneJSON(t, "prune", "--model", src, "--out", out, "--ratio", "35%", "--scores", scores)
	if !slices.Equal(rec.RemovedBlocks, []int{6, 7, 8, 10, 13}) || rec.Criterion != "ppl" || rec.ScoresSHA256 == "" ||
		rec.ParamsAfter != 532672 || rec.NumLayersAfter != 11 {
		t.Fatalf("record %+v", rec)
	}
}

// The same selection computed in-process from the calibration windows the golden used.
func TestPrune_Deep16Ratio35CriterionPPL(t *testing.T) {
	if testing.Short() {
		t.Skip("scores 16 blocks on 10×128 tokens")
	}
	src := testutil.SharedDir(t, "models", "deep16")
	calib := testutil.SharedDir(t, "data", "stories", "calib10x128.ids.json")
	out := filepath.Join(t.TempDir(), "d35")
	rec := pruneJSON(t, "prune", "--model", src, "--out", out, "--ratio", "0.35", "--criterion", "ppl", "--calib", calib)
	if !slices.Equal(rec.RemovedBlocks, []int{6, 7, 8, 10, 13}) || len(rec.Calibration) == 0 {
		t.Fatalf("record %+v", rec)
	}
}

// Iterative ppl on stories260K: round 1 removes the golden least important block (2); round
// 2 re-scores without it (block 2 unscored) and removes that ranking's least important.
func TestPrune_IterativePPLStories260K(t *testing.T) {
	if testing.Short() {
		t.Skip("scores 9 block sets on 10×128 tokens")
	}
	src := testutil.SharedDir(t, "models", "stories260K")
	calib := testutil.SharedDir(t, "data", "stories", "calib10x128.ids.json")
	rec := pruneJSON(t, "prune", "--model", src, "--out", filepath.Join(t.TempDir(), "it"), "--num-blocks", "2",
		"--no-plus", "--iterative", "--criterion", "ppl", "--calib", calib)
	if len(rec.Steps) != 2 || rec.Steps[0].Removed != 2 || rec.Steps[1].Scores[2] != nil ||
		!slices.Equal(rec.Steps[1].Skipped, []int{2}) || rec.Steps[1].Order[0] != rec.Steps[1].Removed {
		t.Fatalf("steps %+v", rec.Steps)
	}
	if want := []int{2, rec.Steps[1].Removed}; !slices.Equal(rec.RemovedBlocks, slices.Sorted(slices.Values(want))) {
		t.Fatalf("removed %v, steps removed %v", rec.RemovedBlocks, want)
	}
}

// pruneCopyModel copies a shared model into a writable temp dir.
func pruneCopyModel(t *testing.T, name string) string {
	t.Helper()
	src := testutil.SharedDir(t, "models", name)
	dst := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(src)
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err == nil {
			err = os.WriteFile(filepath.Join(dst, e.Name()), data, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// Bad input fails with one line naming the flag or file, and writes nothing.
func TestPrune_BadInputWritesNothing(t *testing.T) {
	deep := pruneCopyModel(t, "deep16")
	stories := testutil.SharedDir(t, "models", "stories260K")
	hash := pruneConfigHash(t, deep)
	good := pruneGoldenScores(t, "deep16", hash)
	forged := pruneGoldenScores(t, "deep16", strings.Repeat("0", 64))
	shallow := pruneGoldenScores(t, "stories260K", pruneConfigHash(t, stories))
	existing := t.TempDir()
	if err := os.WriteFile(filepath.Join(existing, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	inputBefore, _ := os.ReadDir(deep)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"ratio zero", []string{"--ratio", "0", "--scores", good}, "--ratio"},
		{"ratio one", []string{"--ratio", "1", "--scores", good}, "--ratio"},
		{"ratio 120%", []string{"--ratio", "120%", "--scores", good}, "--ratio \"120%\""},
		{"block out of range", []string{"--blocks", "3,16"}, "block 16 is out of range"},
		{"block twice", []string{"--blocks", "3,5,3"}, "block 3 is listed twice"},
		{"scores of another depth", []string{"--ratio", "20%", "--scores", shallow}, "5-block model"},
		{"scores of another config", []string{"--ratio", "20%", "--scores", forged}, "config_hash"},
		{"no scores", []string{"--ratio", "20%"}, "--scores FILE or --criterion"},
		{"two counts", []string{"--ratio", "20%", "--num-blocks", "2", "--scores", good}, "exactly one of"},
		{"iterative from file", []string{"--num-blocks", "2", "--iterative", "--scores", good}, "--iterative"},
		{"policy too strict", []string{"--num-blocks", "11", "--scores", good}, "--no-plus"},
		{"bad dtype", []string{"--blocks", "3", "--save-dtype", "int8"}, "--save-dtype"},
		{"out inside input", []string{"--blocks", "3", "--out", filepath.Join(deep, "pruned")}, "lies inside the input"},
		{"out exists", []string{"--blocks", "3", "--out", existing}, "exists (use --force"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			parent := t.TempDir()
			out := filepath.Join(parent, "out")
			args := append([]string{"prune", "--model", deep, "--out", out}, c.args...)
			code, stdout, errOut := pruneRun(t, args...)
			if code != 1 || stdout != "" || !strings.Contains(errOut, c.want) || strings.Count(errOut, "\n") != 1 {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit 1 and one line with %q", code, stdout, errOut, c.want)
			}
			if left, _ := os.ReadDir(parent); len(left) != 0 {
				t.Errorf("left %d entries in the output's parent", len(left))
			}
		})
	}
	if left, _ := os.ReadDir(existing); len(left) != 1 {
		t.Errorf("existing --out was modified")
	}
	if entries, _ := os.ReadDir(deep); len(entries) != len(inputBefore) {
		t.Errorf("input dir now has %d entries, had %d", len(entries), len(inputBefore))
	}
}

func TestPrune_ForceReplacesAndShardsOnRequest(t *testing.T) {
	src := testutil.SharedDir(t, "models", "stories260K")
	out := t.TempDir()
	rec := pruneJSON(t, "prune", "--model", src, "--out", out, "--force", "--blocks", "2", "--max-shard-size", "300KB", "--save-dtype", "bf16")
	if rec.DType != "BF16" {
		t.Fatalf("dtype %q", rec.DType)
	}
	r, err := prune.Inspect(out)
	if err != nil || !r.Sharded || len(r.Files) < 2 || r.DTypes["BF16"] != 4*9+3 /* blocks, embeddings, norm, stored tied lm_head */ {
		t.Fatalf("inspect %+v, %v", r, err)
	}
}
