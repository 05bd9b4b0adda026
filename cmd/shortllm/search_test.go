package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shortllm/shortllm/internal/backend"
	"github.com/shortllm/shortllm/internal/eval"
	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/search"
	"github.com/shortllm/shortllm/internal/testutil"
)

func searchRun(t *testing.T, args ...string) (code int, out, errOut string) {
	t.Helper()
	var o, e bytes.Buffer
	code = execute(append([]string{"--quiet"}, args...), strings.NewReader(""), &o, &e)
	return code, o.String(), e.String()
}

// tinyCalib writes the first 2 shared calibration windows, cut to 24 tokens, as an ids file.
func tinyCalib(t *testing.T) (path string, ids [][]int) {
	t.Helper()
	var doc struct {
		IDs [][]int `json:"ids"`
	}
	data, err := os.ReadFile(testutil.SharedDir(t, "data", "stories", "calib10x128.ids.json"))
	if err == nil {
		err = json.Unmarshal(data, &doc)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range doc.IDs[:2] {
		ids = append(ids, w[:24])
	}
	data, _ = json.Marshal(map[string]any{"ids": ids})
	path = filepath.Join(t.TempDir(), "calib.ids.json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, ids
}

// search writes a plan; prune --plan removes exactly its blocks, records where they came
// from, and the pruned checkpoint scores the plan's objective on the calibration windows.
func TestSearch_PlanAppliedByPrune(t *testing.T) {
	mdl := testutil.SharedDir(t, "models", "stories260K")
	calib, ids := tinyCalib(t)
	planPath := filepath.Join(t.TempDir(), "plan.json")
	code, out, errOut := searchRun(t, "--json", "search", "--model", mdl, "--calib", calib, "--method", "exhaustive",
		"--num-blocks", "2", "--no-plus", "--out", planPath)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var plan search.Plan
	if err := json.Unmarshal([]byte(out), &plan); err != nil {
		t.Fatalf("stdout is not one plan: %v\n%s", err, out)
	}
	if len(plan.Remove) != 2 || plan.SetsEvaluated != 10 || plan.Calibration == nil || plan.Calibration.Source != calib ||
		plan.ToolVersion != version || len(plan.Trace) != 10 || plan.Method != "exhaustive" {
		t.Fatalf("plan %+v", plan)
	}
	pruned := filepath.Join(t.TempDir(), "pruned")
	rec := pruneJSON(t, "prune", "--model", mdl, "--plan", planPath, "--out", pruned)
	if !slices.Equal(rec.RemovedBlocks, plan.RemovedBlocks()) || rec.Method != "plan" || rec.Criterion != "search:exhaustive" ||
		rec.PlanFile != planPath || len(rec.PlanSHA256) != 64 || len(rec.Calibration) == 0 {
		t.Fatalf("record %+v for plan %v", rec, plan.RemovedBlocks())
	}
	m, err := model.Load(pruned, model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	be, err := backend.New("go", os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	res, err := eval.Perplexity(eval.RunnerLM{Runner: model.NewRunner(be, m)}, ids, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(res.NLL-plan.Objective) > 1e-5*res.NLL {
		t.Errorf("pruned model NLL %.9g, plan objective %.9g", res.NLL, plan.Objective)
	}
}

func TestSearch_BadInputOneLineErrors(t *testing.T) {
	small := testutil.SharedDir(t, "models", "stories260K")
	deep := testutil.SharedDir(t, "models", "deep16")
	calib, _ := tinyCalib(t)
	planPath := filepath.Join(t.TempDir(), "plan.json")
	if code, _, errOut := searchRun(t, "search", "--model", small, "--calib", calib, "--blocks", "1,3", "--out", planPath); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	forged := filepath.Join(t.TempDir(), "forged.json")
	data, _ := os.ReadFile(planPath)
	var doc map[string]any
	_ = json.Unmarshal(data, &doc)
	doc["config_hash"] = strings.Repeat("0", 64)
	data, _ = json.Marshal(doc)
	_ = os.WriteFile(forged, data, 0o644)
	out := filepath.Join(t.TempDir(), "out")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"plan for another model", []string{"prune", "--model", deep, "--plan", planPath, "--out", out}, "plan is for a 5-block model"},
		{"plan with another config", []string{"prune", "--model", small, "--plan", forged, "--out", out}, "the plan belongs to another model"},
		{"plan with criterion", []string{"prune", "--model", small, "--plan", planPath, "--criterion", "ppl", "--out", out}, "--plan names the blocks itself"},
		{"not a plan", []string{"prune", "--model", small, "--plan", calib, "--out", out}, "not a search plan"},
		{"exhaustive too large", []string{"search", "--model", small, "--calib", calib, "--method", "exhaustive", "--num-blocks", "2", "--no-plus", "--max-sets", "5"},
			"C(5, 2) = 10 sets exceeds the limit of 5 (--max-sets)"},
		{"no method", []string{"search", "--model", small, "--calib", calib, "--num-blocks", "2"}, "--method is required"},
		{"blocks and method", []string{"search", "--model", small, "--calib", calib, "--blocks", "1", "--method", "evolution"}, "drop --method"},
		{"no calib", []string{"search", "--model", small, "--method", "evolution", "--num-blocks", "2"}, "--calib is required"},
		{"policy leaves none", []string{"search", "--model", small, "--calib", calib, "--method", "evolution", "--num-blocks", "2"}, "lower --keep-first/--keep-last"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, errOut := searchRun(t, c.args...)
			if code == 0 || !strings.Contains(errOut, c.want) || strings.Count(errOut, "\n") != 1 || stdout != "" {
				t.Fatalf("exit %d, stderr %q, stdout %q; want one line containing %q", code, errOut, stdout, c.want)
			}
			if _, err := os.Stat(out); err == nil {
				t.Fatalf("%s was written", out)
			}
		})
	}
}

// The text output names the set, the objective and the work.
func TestSearch_TextOutput(t *testing.T) {
	mdl := testutil.SharedDir(t, "models", "stories260K")
	calib, _ := tinyCalib(t)
	code, out, errOut := searchRun(t, "search", "--model", mdl, "--calib", calib, "--method", "evolution", "--num-blocks", "1",
		"--keep-first", "1", "--keep-last", "1", "--seed", "3", "--population", "2", "--generations", "2", "--select", "2",
		"--mutation", "1", "--crossover", "1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"removed 1 of 5 blocks: ", "(evolution, seed 3; first 1 and last 1 kept)", "objective ", "nats/token", "of 3 sets evaluated"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
