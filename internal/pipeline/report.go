package pipeline

// The report: Shortened LLaMA's tables (parameters, blocks removed, perplexity per dataset
// and BOS mode, zero-shot accuracy and its average, speed) built only from what the stages
// stored, so `shortllm report RUN_DIR` can re-render it at any time, also for a partial run.

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"

	"github.com/shortllm/shortllm/internal/eval"
	"github.com/shortllm/shortllm/internal/prune"
	"github.com/shortllm/shortllm/internal/score"
)

// Report is report.json.
type Report struct {
	Model       string        `json:"model"`
	ModelDigest string        `json:"model_digest"`
	Settings    Config        `json:"settings"`
	PPLColumns  []PPLColumn   `json:"ppl_columns"`
	Tasks       []string      `json:"tasks,omitempty"`
	Rows        []Row         `json:"rows"`
	Scores      []BlockScores `json:"block_scores"`
	Speed       []SpeedRow    `json:"speed,omitempty"`
	// SpeedBatch is the batch size of the rows' speed ratio (the largest measured).
	SpeedBatch int      `json:"speed_batch,omitempty"`
	Missing    []string `json:"missing,omitempty"` // stages not finished yet
	Plots      []string `json:"plots,omitempty"`
	Notes      []string `json:"notes,omitempty"` // statements the tables need (sparse speed)
}

// PPLColumn is one perplexity column: a dataset and a BOS mode.
type PPLColumn struct {
	Name string `json:"name"`
	BOS  string `json:"bos"`
}

func (c PPLColumn) key() string { return c.Name + "/" + c.BOS }

// Row is one model of the main table.
type Row struct {
	Name          string             `json:"name"`
	Criterion     string             `json:"criterion,omitempty"`
	Ratio         string             `json:"ratio,omitempty"`
	RatioValue    float64            `json:"ratio_value"`
	Retrain       string             `json:"retrain,omitempty"`
	Params        int64              `json:"params,omitempty"`
	RemovedShare  float64            `json:"removed_share"`
	NumLayers     int                `json:"num_layers,omitempty"`
	RemovedBlocks []int              `json:"removed_blocks"`
	PPL           map[string]float64 `json:"ppl"` // PPLColumn key → perplexity
	ZeroShot      map[string]float64 `json:"zeroshot,omitempty"`
	ZeroShotAvg   *float64           `json:"zeroshot_average,omitempty"`
	SpeedRatio    *float64           `json:"speed_ratio,omitempty"`
	Done          bool               `json:"done"`
}

// BlockScores is one criterion's scores and the blocks each ratio removed.
type BlockScores struct {
	Criterion string           `json:"criterion"`
	Scores    []*float64       `json:"scores"`
	Order     []int            `json:"order"`
	Removed   map[string][]int `json:"removed"` // ratio → blocks
}

// SpeedRow is one measured architecture.
type SpeedRow struct {
	Name      string            `json:"name"`
	NumLayers int               `json:"num_layers"`
	Params    int64             `json:"params"`
	Points    []eval.SpeedPoint `json:"points"`
}

// Build reads run.json and every stage output under runDir.
func Build(runDir string) (*Report, error) {
	var man Manifest
	if err := readJSON(filepath.Join(runDir, ManifestFile), &man); err != nil {
		return nil, fmt.Errorf("report %s: %w (not a pipeline run directory?)", runDir, err)
	}
	rep := &Report{Model: man.Config.Model, ModelDigest: man.ModelDigest, Settings: man.Config}
	b := &builder{dir: runDir, rep: rep, seenSpeed: map[string]bool{}}
	for _, s := range man.Scores {
		b.scores(s)
	}
	for _, v := range man.Variants {
		b.variant(v)
	}
	b.speedRatios()
	return rep, nil
}

type builder struct {
	dir       string
	rep       *Report
	seenSpeed map[string]bool
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
	b.rep.Scores = append(b.rep.Scores, BlockScores{Criterion: s.Criterion, Scores: list[0].Scores,
		Order: list[0].Order, Removed: map[string][]int{}})
}

func (b *builder) variant(v Variant) {
	row := Row{Name: v.Name, Criterion: v.Criterion, Ratio: v.Ratio, RatioValue: v.RatioVal, Retrain: v.Retrain,
		PPL: map[string]float64{}, RemovedBlocks: []int{}}
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
	b.rep.Rows = append(b.rep.Rows, row)
	if v.SpeedDir != "" && !b.seenSpeed[v.SpeedDir] { // retraining rows share their pruned model's
		b.seenSpeed[v.SpeedDir] = true
		var sr SpeedResult
		if b.stage(v.SpeedDir, "result.json", &sr) {
			b.rep.Speed = append(b.rep.Speed, SpeedRow{Name: speedName(v.Criterion, v.Ratio), NumLayers: sr.NumLayers,
				Params: sr.Params, Points: sr.Points})
		}
	}
}

// speedName names an architecture: the original, or a criterion at a ratio.
func speedName(criterion, ratio string) string {
	if criterion == "" {
		return "original"
	}
	return criterion + " " + ratio
}

func (b *builder) pruneRecord(v Variant, row *Row) {
	rec, ok, err := prune.ReadRecord(filepath.Join(b.dir, v.PruneDir, "model"))
	if err != nil || !ok {
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			b.rep.Missing = append(b.rep.Missing, v.PruneDir+": "+err.Error())
		}
		return
	}
	row.RemovedBlocks, row.RemovedShare = rec.RemovedBlocks, rec.RemovedRatio
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
	row.ZeroShot = map[string]float64{}
	for task, r := range res.ZeroShot.Results {
		row.ZeroShot[task] = r.Paper
		if !containsStr(b.rep.Tasks, task) {
			b.rep.Tasks = append(b.rep.Tasks, task)
			sort.Strings(b.rep.Tasks)
		}
	}
	avg := res.ZeroShot.PaperAverage
	row.ZeroShotAvg = &avg
}

// speedRatios sets each pruned row's throughput over the original's at the largest batch.
func (b *builder) speedRatios() {
	if len(b.rep.Speed) == 0 || b.rep.Speed[0].Name != "original" || len(b.rep.Speed[0].Points) == 0 {
		return
	}
	orig := b.rep.Speed[0].Points
	last := orig[len(orig)-1]
	b.rep.SpeedBatch = last.BatchSize
	byName := map[string]float64{}
	for _, s := range b.rep.Speed {
		if n := len(s.Points); n > 0 && s.Points[n-1].BatchSize == last.BatchSize {
			byName[s.Name] = s.Points[n-1].Throughput / last.Throughput
		}
	}
	for i := range b.rep.Rows {
		r := &b.rep.Rows[i]
		if x, ok := byName[speedName(r.Criterion, r.Ratio)]; ok {
			r.SpeedRatio = &x
		}
	}
}

func containsCol(cols []PPLColumn, c PPLColumn) bool {
	for _, x := range cols {
		if x == c {
			return true
		}
	}
	return false
}

func containsStr(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
