package main

import (
	"bufio"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEvalZeroShot_JSONReadsAsHarnessResults reads `eval zeroshot --json` the way a script
// written for lm-evaluation-harness v0.4 reads its results file, and checks the values against
// the per-item log the same run wrote.
func TestEvalZeroShot_JSONReadsAsHarnessResults(t *testing.T) {
	data := t.TempDir()
	arc := `{"question":"Which light is refracted most?","choices":{"text":["violet","red","green"],"label":["A","B","C"]},"answerKey":"A"}`
	boolq := `{"passage":"Light is refracted by a prism.","question":"is light refracted by a prism","label":1}`
	writeLines(t, filepath.Join(data, "arc_easy.jsonl"), arc, arc, strings.Replace(arc, `"A"}`, `"B"}`, 1))
	writeLines(t, filepath.Join(data, "boolq.jsonl"), boolq, strings.Replace(boolq, `"label":1`, `"label":0`, 1))
	samples := filepath.Join(t.TempDir(), "samples.jsonl")
	code, out, errOut := cli(t, "", "eval", "zeroshot", "--model", filepath.Join(demoModel(t), "model"), "--data-dir", data,
		"--tasks", "boolq,arc_easy", "--limit", "2", "--log-samples", samples, "--json", "--quiet")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("not one JSON document: %v\n%s", err, out)
	}
	want := sampleMeans(t, samples)
	results := doc["results"].(map[string]any)
	for _, task := range []string{"boolq", "arc_easy"} {
		r := results[task].(map[string]any)
		if r["alias"] != task {
			t.Errorf("%s: alias %v", task, r["alias"])
		}
		for _, m := range []string{"acc", "acc_norm"} {
			v, ok := r[m+",none"].(float64)
			_, hasErr := r[m+"_stderr,none"].(float64)
			if m == "acc_norm" && task == "boolq" {
				if ok || hasErr {
					t.Errorf("boolq has %s (its harness yaml lists acc only): %v", m, r)
				}
				continue
			}
			if !ok || !hasErr || math.Abs(v-want[task][m]) > 1e-12 {
				t.Errorf("%s %q = %v (stderr present %v), want %v from the samples", task, m+",none", r[m+",none"], hasErr, want[task][m])
			}
		}
		ns := doc["n-samples"].(map[string]any)[task].(map[string]any)
		if ns["effective"] != 2.0 || ns["original"] != map[string]float64{"boolq": 2, "arc_easy": 3}[task] {
			t.Errorf("%s n-samples %v, want effective 2 and the file's item count", task, ns)
		}
		if doc["n-shot"].(map[string]any)[task] != 0.0 {
			t.Errorf("%s n-shot %v", task, doc["n-shot"])
		}
		cfg := doc["configs"].(map[string]any)[task].(map[string]any)
		if cfg["task"] != task || cfg["num_fewshot"] != 0.0 || cfg["output_type"] != "multiple_choice" || cfg["target_delimiter"] != " " {
			t.Errorf("%s config %v", task, cfg)
		}
	}
	if v := doc["versions"].(map[string]any); v["boolq"] != 2.0 || v["arc_easy"] != 1.0 {
		t.Errorf("versions %v, want boolq 2.0 and arc_easy 1.0 as the harness yamls say", v)
	}
	avg := (want["boolq"]["acc"] + want["arc_easy"]["acc"]) / 2
	if pa, _ := doc["paper_average"].(float64); math.Abs(pa-avg) > 1e-12 || doc["paper_metrics"].(map[string]any)["arc_easy"] != "acc" {
		t.Errorf("paper_average %v (want %v), paper_metrics %v", doc["paper_average"], avg, doc["paper_metrics"])
	}
	if doc["config_hash"] == nil || doc["model"] == nil {
		t.Errorf("model provenance missing: %v", doc)
	}
}

// sampleMeans averages acc and acc_norm per task from a --log-samples file.
func sampleMeans(t *testing.T, path string) map[string]map[string]float64 {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sums, counts := map[string]map[string]float64{}, map[string]float64{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var r struct {
			Task    string  `json:"task"`
			Acc     float64 `json:"acc"`
			AccNorm float64 `json:"acc_norm"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		if sums[r.Task] == nil {
			sums[r.Task] = map[string]float64{}
		}
		sums[r.Task]["acc"] += r.Acc
		sums[r.Task]["acc_norm"] += r.AccNorm
		counts[r.Task]++
	}
	for task, m := range sums {
		for k := range m {
			m[k] /= counts[task]
		}
	}
	return sums
}

func writeLines(t *testing.T, path string, lines ...string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}
