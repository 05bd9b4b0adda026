package pipeline

import (
	"encoding/csv"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shortllm/shortllm/internal/eval"
)

func f(v float64) *float64 { return &v }

// syntheticReport is a finished two-row run: the original and one pruned model.
func syntheticReport() *Report {
	avgO, avgP := 0.55, 0.5
	speedP := Spread{Median: 1.2, Min: 1.1, Max: 1.3}
	return &Report{
		Model: "m", Settings: Defaults(),
		PPLColumns: []PPLColumn{{"wiki", "once"}, {"wiki", "every"}},
		Tasks: []TaskColumn{{Name: "boolq", Label: "BoolQ", Metric: "acc", N: 20},
			{Name: "hellaswag", Label: "HellaSwag", Metric: "acc_norm", N: 20}},
		Rows: []Row{
			{Name: "original", RemovedBlocks: []int{}, PPL: map[string]float64{"wiki/once": 10, "wiki/every": 11}, Done: true, original: true,
				Params: 1000, ZeroShot: map[string]ZeroShotCell{"boolq": {0.6, 0.11}, "hellaswag": {0.5, 0.1}}, ZeroShotAvg: &avgO},
			{Name: "ppl 25.0% none", Family: FamilyDepth, Method: "ppl", Ratio: "25.0%", RatioValue: 0.25, RemovedShare: 0.187,
				Retrain: "none", RemovedBlocks: []int{3, 5}, PPL: map[string]float64{"wiki/once": 13, "wiki/every": 14}, Done: true,
				Params: 813, ZeroShot: map[string]ZeroShotCell{"boolq": {0.55, 0.11}, "hellaswag": {0.45, 0.1}}, ZeroShotAvg: &avgP,
				Speed: &speedP},
		},
		Scores: []BlockScores{{Criterion: "ppl", Scores: []*float64{f(280), f(12), f(11), f(10.5), f(11.5), f(10.6), f(13)},
			Order: []int{3, 5, 2, 4, 1, 6, 0}, Removed: map[string][]int{"25.0%": {3, 5}}, Protected: []int{0, 1, 6}, Baseline: f(10)}},
		Speed: &SpeedSummary{Backend: "go", Device: "cpu", Batch: 4, Archs: []ArchSpeed{
			{Name: "original (7 blocks)", NumLayers: 7, Params: 1000, PruneDirs: []string{""}, Points: []eval.SpeedPoint{
				{BatchSize: 4, LatencyS: 1, Throughput: 64, ThroughputMin: 60, ThroughputMax: 70, Latencies: []float64{1, 1.1, 0.9}}}},
		}},
		Training: []LossCurve{{Name: "ppl 25.0% cpt", Mode: "cpt", Steps: []int{1, 2, 3}, Loss: []float64{3, 2.5, 2.2}, Tokens: []int{10, 10, 10}}},
	}
}

// TestMarkdown_ZeroShotInPaperOrderWithMetricAndStderr: the zero-shot table names each task's
// metric, its item count and the standard error; the main table shows the achieved share.
func TestMarkdown_ZeroShotInPaperOrderWithMetricAndStderr(t *testing.T) {
	md := Markdown(syntheticReport())
	for _, want := range []string{
		"| model | BoolQ (acc, n=20) | HellaSwag (acc_norm, n=20) | average |",
		"| ppl 25.0% none | 0.5500 ± 0.1100 | 0.4500 ± 0.1000 | 0.5000 |",
		"acc (share of items whose highest-loglikelihood choice is right) for BoolQ; acc_norm",
		"| ppl 25.0% none | depth | ppl | 25.0% | 18.7% | none |",
		"1.20× (1.10×–1.30×)",
		"280 (kept)", "10.5 *",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
}

// TestCSV_PaperColumns: one header line with the paper's columns, one line per model, empty
// cells where a model has no value.
func TestCSV_PaperColumns(t *testing.T) {
	data, err := CSV(syntheticReport())
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(string(data))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := "model,family,method,ratio_requested,removed_share,retraining,params,num_layers,blocks_removed,ppl_wiki_bos_once,ppl_wiki_bos_every,boolq_acc,boolq_stderr,hellaswag_acc_norm,hellaswag_stderr,zeroshot_average,speed_ratio,speed_ratio_min,speed_ratio_max"
	if len(recs) != 3 || strings.Join(recs[0], ",") != want {
		t.Fatalf("csv:\n%s", data)
	}
	if got := strings.Join(recs[2], ","); got != "ppl 25.0% none,depth,ppl,0.25,0.187,none,813,0,3 5,13,14,0.55,0.11,0.45,0.1,0.5,1.2,1.1,1.3" {
		t.Errorf("pruned row: %s", got)
	}
	if recs[1][3] != "" || recs[1][16] != "" {
		t.Errorf("original row has a ratio or speed: %v", recs[1])
	}
}

// TestPairedRatio_RunByRun: the ratio of each round's latencies, summarised; the median of
// ratios, not the ratio of medians.
func TestPairedRatio_RunByRun(t *testing.T) {
	base := eval.SpeedPoint{Latencies: []float64{1, 2, 4}}
	p := eval.SpeedPoint{Latencies: []float64{0.5, 2, 2}}
	s := PairedRatio(p, base)
	if s.Median != 2 || s.Min != 1 || s.Max != 2 {
		t.Errorf("paired ratio %+v, want median 2, min 1, max 2", s)
	}
}

// TestScoreRange_ClipsOneOutlier: block 0's huge score is cut at 1.3× the second largest, so
// the other blocks keep their resolution; without an outlier nothing is cut.
func TestScoreRange_ClipsOneOutlier(t *testing.T) {
	lo, clip, ok := scoreRange([]float64{280, 12, 11, 10.5, 11.5}, f(10))
	if !ok || lo >= 10 || lo < 0 || math.Abs(clip-(lo+1.3*(12-lo))) > 1e-9 {
		t.Errorf("lo %v clip %v", lo, clip)
	}
	_, clip, _ = scoreRange([]float64{3, 2, 1}, nil)
	if clip != 3 {
		t.Errorf("no outlier, clip %v want 3", clip)
	}
}

// TestWritePlots_EveryFigureIsAPNG renders every figure of a full report.
func TestWritePlots_EveryFigureIsAPNG(t *testing.T) {
	dir := t.TempDir()
	paths, err := writePlots(dir, syntheticReport())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"scores-ppl.png", "ppl-wiki-bos-once.png", "ppl-wiki-bos-every.png", "ppl-vs-params-wiki.png",
		"zeroshot.png", "throughput.png", "training-loss.png"}
	if len(paths) != len(want) {
		t.Errorf("plots %v, want %v", paths, want)
	}
	for _, name := range want {
		fh, err := os.Open(filepath.Join(dir, "plots", name))
		if err != nil {
			t.Error(err)
			continue
		}
		img, err := png.Decode(fh)
		fh.Close()
		if err != nil || img.Bounds().Dx() < 500 {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestCompare_ChangesPerModel: settings that differ are listed, and each model's values show
// as A → B with the relative change; a model only one run has shows a dash on the other side.
func TestCompare_ChangesPerModel(t *testing.T) {
	a, b := syntheticReport(), syntheticReport()
	b.Settings.RetrainSteps = 200
	b.Rows[1].PPL = map[string]float64{"wiki/once": 11.7, "wiki/every": 14}
	b.Rows = append(b.Rows, Row{Name: "taylor 25.0% none", PPL: map[string]float64{"wiki/once": 12}, Done: true})
	md := Compare(a, b, "runs/a", "runs/b")
	for _, want := range []string{"retrain-steps 100 → 200", "| ppl 25.0% none | 13.00 → 11.70 (-10.0%) | 14.00 → 14.00 (+0.0%) |",
		"1.20 → 1.20 (+0.0%)", "| taylor 25.0% none | – → 12.00 |"} {
		if !strings.Contains(md, want) {
			t.Errorf("comparison lacks %q:\n%s", want, md)
		}
	}
}
