package pipeline

// The report: Shortened LLaMA's tables (parameters, blocks removed, perplexity per dataset
// and BOS mode, zero-shot accuracy and its average, speed) built only from what the stages
// stored, so `shortllm report RUN_DIR` can re-render it at any time, also for a partial run.

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"

	"github.com/shortllm/shortllm/internal/eval"
	"github.com/shortllm/shortllm/internal/prune"
	"github.com/shortllm/shortllm/internal/retrain"
	"github.com/shortllm/shortllm/internal/score"
)

// Report is report.json.
type Report struct {
	Model       string        `json:"model"`
	ModelDigest string        `json:"model_digest"`
	Settings    Config        `json:"settings"`
	PPLColumns  []PPLColumn   `json:"ppl_columns"`
	Tasks       []TaskColumn  `json:"tasks,omitempty"` // in the paper's order
	Rows        []Row         `json:"rows"`
	Scores      []BlockScores `json:"block_scores"`
	Speed       *SpeedSummary `json:"speed,omitempty"`
	Training    []LossCurve   `json:"training,omitempty"`
	Missing     []string      `json:"missing,omitempty"` // stages not finished yet
	Plots       []string      `json:"plots,omitempty"`
	Notes       []string      `json:"notes,omitempty"` // statements the tables need (sparse speed)
}

// PPLColumn is one perplexity column: a dataset and a BOS mode.
type PPLColumn struct {
	Name string `json:"name"`
	BOS  string `json:"bos"`
}

func (c PPLColumn) key() string { return c.Name + "/" + c.BOS }

// TaskColumn is one zero-shot task: the metric the paper reports for it and the items run.
type TaskColumn struct {
	Name   string `json:"name"`
	Label  string `json:"label"`  // the paper's column name (BoolQ, ARC-e, ...)
	Metric string `json:"metric"` // acc or acc_norm
	N      int    `json:"n"`      // items evaluated (per model)
}

// Row is one model of the main table. Family and Method say how it was made ("depth" and a
// block criterion here; other pruning families add rows of their own); Ratio is what was asked
// for and RemovedShare what was removed (share of all parameters).
type Row struct {
	Name          string                  `json:"name"`
	Family        string                  `json:"family,omitempty"` // "" for the original
	Method        string                  `json:"method,omitempty"`
	Ratio         string                  `json:"ratio,omitempty"`
	RatioValue    float64                 `json:"ratio_value"`
	RemovedShare  float64                 `json:"removed_share"`
	Retrain       string                  `json:"retrain,omitempty"`
	Params        int64                   `json:"params,omitempty"`
	NumLayers     int                     `json:"num_layers,omitempty"`
	RemovedBlocks []int                   `json:"removed_blocks"`
	PPL           map[string]float64      `json:"ppl"` // PPLColumn key → perplexity
	ZeroShot      map[string]ZeroShotCell `json:"zeroshot,omitempty"`
	ZeroShotAvg   *float64                `json:"zeroshot_average,omitempty"`
	// Speed is the throughput ratio to the original at Report.Speed.Batch: the median of the
	// run-by-run ratios, with their min and max.
	Speed    *Spread `json:"speed_ratio,omitempty"`
	Done     bool    `json:"done"`
	pruneDir string
	original bool
}

// ZeroShotCell is one task's paper metric for one model.
type ZeroShotCell struct {
	Value  float64 `json:"value"`
	Stderr float64 `json:"stderr"`
}

// Spread is a median with the smallest and largest value it summarises.
type Spread struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

// BlockScores is one criterion's scores and the blocks each ratio removed.
type BlockScores struct {
	Criterion string           `json:"criterion"`
	Scores    []*float64       `json:"scores"`
	Order     []int            `json:"order"`
	Removed   map[string][]int `json:"removed"` // ratio → blocks
	// Protected are the blocks the "+" policy never removes.
	Protected []int `json:"protected,omitempty"`
	// Baseline is the unpruned model's value on the criterion's scale (the perplexity on the
	// calibration windows for ppl), when the criterion has one.
	Baseline *float64 `json:"baseline,omitempty"`
}

// SpeedSummary is the speed stage's measurement.
type SpeedSummary struct {
	Backend string      `json:"backend"`
	Device  string      `json:"device"`
	Batch   int         `json:"batch"` // the batch size of the rows' ratios (the largest measured)
	Archs   []ArchSpeed `json:"architectures"`
}

// LossCurve is one retraining run's training loss per update.
type LossCurve struct {
	Name   string    `json:"name"`
	Mode   string    `json:"mode"`
	Steps  []int     `json:"steps"`
	Loss   []float64 `json:"loss"`
	Tokens []int     `json:"tokens"`
}

// Build reads run.json and every stage output under runDir.
func Build(runDir string) (*Report, error) {
	var man Manifest
	if err := readJSON(filepath.Join(runDir, ManifestFile), &man); err != nil {
		return nil, fmt.Errorf("report %s: %w (not a pipeline run directory?)", runDir, err)
	}
	rep := &Report{Model: man.Config.Model, ModelDigest: man.ModelDigest, Settings: man.Config}
	b := &builder{dir: runDir, rep: rep, tasks: map[string]TaskColumn{}}
	for _, s := range man.Scores {
		b.scores(s)
	}
	for _, v := range man.Variants {
		b.variant(v)
	}
	b.taskColumns()
	b.speed(man.SpeedDir)
	return rep, nil
}

type builder struct {
	dir   string
	rep   *Report
	tasks map[string]TaskColumn
}

// stage reads a finished stage's result file; unfinished stages are listed as missing.
func (b *builder) stage(rel, file string, v any) bool {
	if rel == "" {
		return false
	}
	if _, err := readStageRecord(filepath.Join(b.dir, rel)); err != nil {
		b.rep.Missing = append(b.rep.Missing, rel)
		return false
	}
	if err := readJSON(filepath.Join(b.dir, rel, file), v); err != nil {
		b.rep.Missing = append(b.rep.Missing, rel)
		return false
	}
	return true
}

func (b *builder) scores(s ScoreEntry) {
	if !b.stage(s.Dir, StageFile, &StageRecord{}) {
		return
	}
	list, err := score.ReadResults(filepath.Join(b.dir, s.Dir, "scores.json"))
	if err != nil || len(list) == 0 {
		b.rep.Missing = append(b.rep.Missing, s.Dir)
		return
	}
	bs := BlockScores{Criterion: s.Criterion, Scores: list[0].Scores, Order: list[0].Order, Removed: map[string][]int{},
		Baseline: list[0].Baseline}
	st := b.rep.Settings
	if !st.NoPlus {
		n := len(bs.Scores)
		for i := range n {
			if i < st.KeepFirst || i >= n-st.KeepLast {
				bs.Protected = append(bs.Protected, i)
			}
		}
	}
	b.rep.Scores = append(b.rep.Scores, bs)
}

func (b *builder) variant(v Variant) {
	row := Row{Name: v.Name, Method: v.Criterion, Ratio: v.Ratio, RatioValue: v.RatioVal, Retrain: string(v.Retrain),
		PPL: map[string]float64{}, RemovedBlocks: []int{}, pruneDir: v.PruneDir, original: v.Criterion == ""}
	if !row.original {
		row.Family = FamilyDepth
	}
	if v.PruneDir != "" {
		b.pruneRecord(v, &row)
	}
	if v.SparsifyDir != "" {
		b.sparsityRow(v, &row)
	}
	var res EvalResult
	if b.stage(v.EvalDir, "result.json", &res) {
		row.Done = true
		row.Params, row.NumLayers = res.Params, res.NumLayers
		b.evalColumns(&row, &res)
	}
	if v.RetrainDir != "" {
		b.lossCurves(v)
	}
	b.rep.Rows = append(b.rep.Rows, row)
}

// The method families of the report's rows: block (depth) pruning by a criterion, block sets
// found by search, width pruning (heads and channels) and weight sparsity.
const (
	FamilyDepth    = "depth"
	FamilySearch   = "search"
	FamilyWidth    = "width"
	FamilySparsity = "sparsity"
)

func (b *builder) pruneRecord(v Variant, row *Row) {
	rec, ok, err := prune.ReadRecord(filepath.Join(b.dir, v.PruneDir, "model"))
	if err != nil || !ok {
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			b.rep.Missing = append(b.rep.Missing, v.PruneDir+": "+err.Error())
		}
		return
	}
	row.RemovedBlocks, row.RemovedShare, row.Params = rec.RemovedBlocks, rec.RemovedRatio, rec.ParamsAfter
	switch rec.Method {
	case "width":
		row.Family = FamilyWidth
	case "plan":
		row.Family = FamilySearch
	}
	for i := range b.rep.Scores {
		if b.rep.Scores[i].Criterion == v.Criterion {
			b.rep.Scores[i].Removed[v.Ratio] = rec.RemovedBlocks
		}
	}
}

func (b *builder) evalColumns(row *Row, res *EvalResult) {
	for _, p := range res.PPL {
		col := PPLColumn{Name: p.Name, BOS: p.BOS}
		row.PPL[col.key()] = p.PPLResult.PPL
		if !containsCol(b.rep.PPLColumns, col) {
			b.rep.PPLColumns = append(b.rep.PPLColumns, col)
		}
	}
	if res.ZeroShot == nil {
		return
	}
	row.ZeroShot = map[string]ZeroShotCell{}
	for task, r := range res.ZeroShot.Results {
		row.ZeroShot[task] = ZeroShotCell{Value: r.Paper, Stderr: r.PaperStderr()}
		if _, ok := b.tasks[task]; !ok {
			b.tasks[task] = TaskColumn{Name: task, Label: TaskLabel(task), Metric: r.PaperMetric, N: r.N}
		}
	}
	avg := res.ZeroShot.PaperAverage
	row.ZeroShotAvg = &avg
}

// taskColumns orders the tasks as the paper's tables do.
func (b *builder) taskColumns() {
	for _, name := range eval.TaskNames() {
		if c, ok := b.tasks[name]; ok {
			b.rep.Tasks = append(b.rep.Tasks, c)
		}
	}
}

// TaskLabel is the paper's column name of a task.
func TaskLabel(task string) string {
	labels := map[string]string{"boolq": "BoolQ", "piqa": "PIQA", "hellaswag": "HellaSwag", "winogrande": "WinoGrande",
		"arc_easy": "ARC-e", "arc_challenge": "ARC-c", "openbookqa": "OBQA"}
	if l, ok := labels[task]; ok {
		return l
	}
	return task
}

// lossCurves reads the retraining stage's train_log.json files (CPT then LoRA for cpt+lora).
func (b *builder) lossCurves(v Variant) {
	out := filepath.Join(b.dir, v.RetrainDir, "out")
	for _, path := range []string{filepath.Join(out, "cpt", "train_log.json"), filepath.Join(out, "train_log.json")} {
		var log retrain.RunLog
		if readJSON(path, &log) != nil || len(log.Steps) == 0 {
			continue
		}
		c := LossCurve{Name: v.Name, Mode: string(log.Mode)}
		if v.Retrain == retrain.ModeCPTLoRA {
			c.Name += " (" + string(log.Mode) + ")"
		}
		for _, s := range log.Steps {
			c.Steps, c.Loss, c.Tokens = append(c.Steps, s.Step), append(c.Loss, s.Loss), append(c.Tokens, s.Tokens)
		}
		b.rep.Training = append(b.rep.Training, c)
	}
}

// speed reads the speed stage and gives each row its architecture's throughput ratio to the
// original at the largest batch size: the median of the run-by-run ratios (runs of the same
// round are paired), with min and max.
func (b *builder) speed(dir string) {
	var sr SpeedResult
	if dir == "" || !b.stage(dir, "result.json", &sr) || len(sr.Archs) == 0 || len(sr.Archs[0].Points) == 0 {
		return
	}
	orig := sr.Archs[0].Points
	last := len(orig) - 1
	b.rep.Speed = &SpeedSummary{Backend: sr.Backend, Device: sr.Device, Batch: orig[last].BatchSize, Archs: sr.Archs}
	for i := range b.rep.Rows {
		r := &b.rep.Rows[i]
		for _, a := range sr.Archs {
			if slices.Contains(a.PruneDirs, r.pruneDir) && len(a.Points) == len(orig) {
				s := PairedRatio(a.Points[last], orig[last])
				r.Speed = &s
			}
		}
	}
}

// PairedRatio is the throughput ratio of p to base run by run (latency of base over latency of
// p, runs of the same round paired), summarised as median, min and max. Without per-run
// latencies it is the ratio of the medians.
func PairedRatio(p, base eval.SpeedPoint) Spread {
	n := min(len(p.Latencies), len(base.Latencies))
	if n == 0 {
		x := p.Throughput / base.Throughput
		return Spread{x, x, x}
	}
	ratios := make([]float64, n)
	for i := range n {
		ratios[i] = base.Latencies[i] / p.Latencies[i]
	}
	return Spread{Median: medianOf(ratios), Min: slices.Min(ratios), Max: slices.Max(ratios)}
}

func medianOf(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func containsCol(cols []PPLColumn, c PPLColumn) bool {
	return slices.Contains(cols, c)
}
