package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shortllm/shortllm/internal/pipeline"
	"github.com/shortllm/shortllm/internal/prune"
	"github.com/shortllm/shortllm/internal/search"
)

// A search method in the pipeline is one more criterion: its plan is applied by a prune
// stage and the pruned model is evaluated like the others; a second run reuses it all.
func TestPipeline_SearchMethodIsAnotherCriterion(t *testing.T) {
	demo := demoModel(t)
	out := filepath.Join(t.TempDir(), "run")
	args := []string{"pipeline", "--quiet", "--config", filepath.Join(demo, "pipeline.yaml"), "--out", out,
		"--criteria", "ppl", "--retrain", "none", "--max-chunks", "2", "--calib-samples", "2", "--speed=false",
		"--search-methods", "evolution", "--search-budget", "4"}
	first := runPipelineJSON(t, args...)
	var man pipeline.Manifest
	data, err := os.ReadFile(filepath.Join(out, pipeline.ManifestFile))
	if err == nil {
		err = json.Unmarshal(data, &man)
	}
	if err != nil {
		t.Fatal(err)
	}
	var v *pipeline.Variant
	for i := range man.Variants {
		if man.Variants[i].Name == "evolution 25.0% none" {
			v = &man.Variants[i]
		}
	}
	if v == nil {
		t.Fatalf("no evolution variant in %+v", man.Variants)
	}
	var plan search.Plan
	var planDir string
	for _, d := range first.Log.Ran {
		if strings.HasPrefix(d, "search/evolution-25.0-") {
			planDir = d
		}
	}
	data, err = os.ReadFile(filepath.Join(out, planDir, pipeline.PlanFileName))
	if err == nil {
		err = json.Unmarshal(data, &plan)
	}
	if err != nil {
		t.Fatalf("search stage %q: %v (ran %v)", planDir, err, first.Log.Ran)
	}
	rec, ok, err := prune.ReadRecord(filepath.Join(out, v.ModelDir))
	if err != nil || !ok {
		t.Fatalf("pruned model record: %v %v", ok, err)
	}
	if !slices.Equal(rec.RemovedBlocks, plan.RemovedBlocks()) || rec.Criterion != "search:evolution" || plan.Forwards > 4 {
		t.Errorf("record removes %v by %s; plan %v after %g forwards", rec.RemovedBlocks, rec.Criterion, plan.RemovedBlocks(), plan.Forwards)
	}
	if _, err := os.Stat(filepath.Join(out, v.EvalDir, pipeline.StageFile)); err != nil {
		t.Errorf("evolution variant not evaluated: %v", err)
	}
	again := runPipelineJSON(t, args...)
	if len(again.Log.Ran) != 0 {
		t.Errorf("second run redid %v", again.Log.Ran)
	}
}
