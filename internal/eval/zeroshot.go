package eval

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
)

// Protocol describes the zero-shot rules this package implements; it is
// recorded in every report.
const Protocol = "lm-evaluation-harness v0.4 multiple_choice loglikelihood, num_fewshot=0, no BOS, target_delimiter ' '"

// ZeroShotOptions configures RunZeroShot.
type ZeroShotOptions struct {
	ModelDir string // recorded in the report's config only
	// MaxLen is lm-eval's max_length; 0 means lm.MaxLen()
	// (max_position_embeddings), the harness default for HF models.
	MaxLen int
	// Samples, if set, receives one JSON line per item (--log-samples); see
	// SampleRecord.
	Samples io.Writer
	// BatchSize is the number of items whose choices go to one LM.Score call (< 1 means 1).
	BatchSize int
	// Progress, if set, is called after every batch of items.
	Progress func(task string, done, total int)
}

// TaskResult is one task's entry in ZeroShotReport.Results. AccNorm is
// nil for tasks whose lm-eval yaml reports acc only (boolq, winogrande).
// In JSON it is the harness's results[task] object ("acc,none", ...); N,
// Original and PaperMetric travel in the document's n-samples and
// paper_metrics (harness.go).
type TaskResult struct {
	Alias         string
	Acc           float64
	AccStderr     float64
	AccNorm       *float64
	AccNormStderr *float64
	N             int    // items evaluated
	Original      int    // items in the task file
	PaperMetric   string // MetricAcc or MetricAccNorm
	Paper         float64
}

// PaperStderr is the standard error of the paper metric.
func (r TaskResult) PaperStderr() float64 {
	if r.PaperMetric == MetricAccNorm && r.AccNormStderr != nil {
		return *r.AccNormStderr
	}
	return r.AccStderr
}

// ZeroShotReport is the result document, in lm-evaluation-harness v0.4's
// results layout (see harness.go).
type ZeroShotReport struct {
	Results map[string]TaskResult
	Configs map[string]TaskConfig
	// PaperAverage is the mean of every task's Paper value, the "Average"
	// column of the Shortened LLaMA tables when all seven tasks ran.
	PaperAverage float64
	Config       ZeroShotConfig
}

// ZeroShotConfig records what produced a ZeroShotReport; it is the harness's
// top-level "config" (model, model_args, batch_size, limit) with shortllm's
// provenance added.
type ZeroShotConfig struct {
	Model      string     `json:"model"`      // "shortllm" (the harness's model type)
	ModelArgs  string     `json:"model_args"` // "pretrained=DIR"
	BatchSize  int        `json:"batch_size"`
	ModelDir   string     `json:"model_dir"`
	Tasks      []TaskData `json:"tasks"`
	Limit      int        `json:"limit"` // of the first task; 0 = all
	NumFewshot int        `json:"num_fewshot"`
	MaxLength  int        `json:"max_length"`
	BOS        bool       `json:"bos"`
	Protocol   string     `json:"protocol"`
}

// TaskData is the provenance of one task's data.
type TaskData struct {
	Name     string `json:"name"`
	DataFile string `json:"data_file"`
	SHA256   string `json:"sha256"`
	Limit    int    `json:"limit"`
}

// SampleRecord is one --log-samples line; the field names match the golden
// items files in ../shared/goldens/zeroshot.
type SampleRecord struct {
	Task          string         `json:"task"`
	DocIndex      int            `json:"doc_index"`
	Gold          int            `json:"gold"`
	MultipleInput bool           `json:"multiple_input"`
	Choices       []ChoiceRecord `json:"choices"`
	Pred          int            `json:"pred"`
	PredNorm      int            `json:"pred_norm"`
	Acc           float64        `json:"acc"`
	AccNorm       float64        `json:"acc_norm"`
	Margin        float64        `json:"margin"`      // best loglik minus the runner-up's
	MarginNorm    float64        `json:"margin_norm"` // the same for length-normalised logliks
}

// ChoiceRecord is one choice of a SampleRecord.
type ChoiceRecord struct {
	Context             string    `json:"context"`
	Continuation        string    `json:"continuation"`
	ContextWSMoved      string    `json:"context_ws_moved"`
	ContinuationWSMoved string    `json:"continuation_ws_moved"`
	ContextIDs          []int     `json:"context_ids"`
	ContinuationIDs     []int     `json:"continuation_ids"`
	InputLen            int       `json:"input_len"`
	Truncated           bool      `json:"truncated"`
	Loglik              float64   `json:"loglik"`
	TokenLogprobs       []float64 `json:"token_logprobs"`
	IsGreedy            bool      `json:"is_greedy"`
	CompletionLen       int       `json:"completion_len"` // len(choice) in code points
}

// RunZeroShot evaluates every task with lm and returns the report.
// Items are scored BatchSize at a time; an item's choices always share one LM.Score call.
func RunZeroShot(lm LM, tok Tokenizer, tasks []*Task, opts ZeroShotOptions) (*ZeroShotReport, error) {
	maxLen := opts.MaxLen
	if maxLen <= 0 {
		maxLen = lm.MaxLen()
	}
	rep := &ZeroShotReport{
		Results: map[string]TaskResult{}, Configs: map[string]TaskConfig{},
		Config: ZeroShotConfig{
			Model: "shortllm", ModelArgs: "pretrained=" + opts.ModelDir, BatchSize: max(opts.BatchSize, 1),
			ModelDir: opts.ModelDir, MaxLength: maxLen, Protocol: Protocol,
		},
	}
	for _, t := range tasks {
		recs, err := runTask(lm, tok, t, maxLen, opts)
		if err != nil {
			return nil, err
		}
		spec, _ := lookupTask(t.Name)
		res := Summarize(recs, spec.paperMetric, spec.reportsNorm)
		res.Alias, res.Original = t.Name, t.Total
		rep.Results[t.Name] = res
		rep.Configs[t.Name] = taskConfig(t, spec.reportsNorm)
		rep.Config.Tasks = append(rep.Config.Tasks, TaskData{Name: t.Name, DataFile: t.Path, SHA256: t.SHA256, Limit: t.Limit})
	}
	if len(tasks) > 0 {
		rep.Config.Limit = tasks[0].Limit
	}
	rep.PaperAverage = paperAverage(rep.Results)
	return rep, nil
}

// runTask scores one task and returns its per-item records, writing them to
// opts.Samples as it goes so a long run leaves usable logs.
func runTask(lm LM, tok Tokenizer, t *Task, maxLen int, opts ZeroShotOptions) ([]SampleRecord, error) {
	if _, ok := lookupTask(t.Name); !ok {
		return nil, fmt.Errorf("unknown task %q", t.Name)
	}
	reqs, err := BuildRequests(t, tok, maxLen)
	if err != nil {
		return nil, err
	}
	recs := make([]SampleRecord, len(t.Docs))
	var enc *json.Encoder
	if opts.Samples != nil {
		enc = json.NewEncoder(opts.Samples)
		enc.SetEscapeHTML(false)
	}
	batch := max(opts.BatchSize, 1)
	for start := 0; start < len(t.Docs); start += batch {
		end := min(start+batch, len(t.Docs))
		scored, err := scoreDocs(lm, t.Name, t.Docs[start:end], reqs[start:end])
		if err != nil {
			return nil, fmt.Errorf("task %s: %w", t.Name, &LineError{Path: t.Path, Line: t.Docs[start].Line, Err: err})
		}
		for i, rec := range scored {
			recs[start+i] = rec
			if enc != nil {
				if err := enc.Encode(rec); err != nil {
					return nil, fmt.Errorf("write samples for task %s item %d: %w", t.Name, rec.DocIndex, err)
				}
			}
		}
		if opts.Progress != nil {
			opts.Progress(t.Name, end, len(t.Docs))
		}
	}
	return recs, nil
}

// locate maps the index of a sequence in the flattened requests to (item, choice).
func locate(reqs [][]Request, seq int) (int, int) {
	for d, rs := range reqs {
		if seq < len(rs) {
			return d, seq
		}
		seq -= len(rs)
	}
	return 0, 0
}

// scoreDocs runs several items' requests through lm in one call (every choice of an item
// shares its context, and batching items fills the forward pass) and scores each item.
func scoreDocs(lm LM, task string, docs []Doc, reqs [][]Request) ([]SampleRecord, error) {
	var seqs [][]int
	for _, rs := range reqs {
		for _, r := range rs {
			seqs = append(seqs, r.Input)
		}
	}
	scored, err := scoreChecked(lm, seqs)
	var nf *NotFiniteError
	if errors.As(err, &nf) {
		d, c := locate(reqs, nf.Seq)
		return nil, fmt.Errorf("task %s item %d choice %d: %w", task, docs[d].Index, c, err)
	}
	if err != nil {
		return nil, err
	}
	recs := make([]SampleRecord, len(docs))
	k := 0
	for d, doc := range docs {
		rec := SampleRecord{Task: task, DocIndex: doc.Index, Gold: doc.Gold, MultipleInput: doc.MultipleInput}
		for i, r := range reqs[d] {
			rec.Choices = append(rec.Choices, choiceRecord(r, scored[k], pyLen(doc.Choices[i])))
			k++
		}
		ScoreItem(&rec)
		recs[d] = rec
	}
	return recs, nil
}

// choiceRecord keeps the continuation's targets: the last
// len(ContinuationIDs) positions of the scored input.
func choiceRecord(r Request, s Scored, completionLen int) ChoiceRecord {
	k := len(s.LogProbs) - len(r.ContinuationIDs)
	c := ChoiceRecord{
		Context: r.Context, Continuation: r.Continuation,
		ContextWSMoved: r.ContextMoved, ContinuationWSMoved: r.ContinuationMoved,
		ContextIDs: r.ContextIDs, ContinuationIDs: r.ContinuationIDs,
		InputLen: r.InputLen(), Truncated: r.Truncated,
		TokenLogprobs: s.LogProbs[k:], IsGreedy: true, CompletionLen: completionLen,
	}
	for i, lp := range c.TokenLogprobs {
		c.Loglik += lp
		c.IsGreedy = c.IsGreedy && s.Greedy[k+i]
	}
	return c
}

// ScoreItem fills rec's predictions and metrics from its choices' Loglik
// and CompletionLen, as lm-eval's multiple_choice process_results does:
// pred = argmax(lls), pred_norm = argmax(lls / completion_len).
func ScoreItem(rec *SampleRecord) {
	lls := make([]float64, len(rec.Choices))
	norm := make([]float64, len(rec.Choices))
	for i, c := range rec.Choices {
		lls[i] = c.Loglik
		norm[i] = c.Loglik / float64(c.CompletionLen)
	}
	rec.Pred, rec.Margin = argmaxMargin(lls)
	rec.PredNorm, rec.MarginNorm = argmaxMargin(norm)
	rec.Acc = indicator(rec.Pred == rec.Gold)
	rec.AccNorm = indicator(rec.PredNorm == rec.Gold)
}

// argmaxMargin returns numpy's argmax (first maximum; a NaN wins) and how far
// the maximum is above the runner-up.
func argmaxMargin(xs []float64) (int, float64) {
	best := 0
	for i, x := range xs {
		if math.IsNaN(x) {
			best = i
			break
		}
		if x > xs[best] {
			best = i
		}
	}
	second := math.Inf(-1)
	for i, x := range xs {
		if i != best && x > second {
			second = x
		}
	}
	return best, xs[best] - second
}

func indicator(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Summarize aggregates item records into a task result: means and lm-eval's
// mean_stderr, sqrt(p(1-p)/(n-1)) for 0/1 scores.
func Summarize(recs []SampleRecord, paperMetric string, reportsNorm bool) TaskResult {
	accs := make([]float64, len(recs))
	norms := make([]float64, len(recs))
	for i, r := range recs {
		accs[i], norms[i] = r.Acc, r.AccNorm
	}
	res := TaskResult{N: len(recs), PaperMetric: paperMetric}
	res.Acc, res.AccStderr = meanStderr(accs)
	normMean, normStderr := meanStderr(norms)
	if reportsNorm {
		res.AccNorm, res.AccNormStderr = &normMean, &normStderr
	}
	res.Paper = res.Acc
	if paperMetric == MetricAccNorm {
		res.Paper = normMean
	}
	return res
}

// meanStderr is lm-eval's mean and mean_stderr (sample standard deviation
// over sqrt(n)); the stderr is 0 when n < 2, where lm-eval has none.
func meanStderr(xs []float64) (mean, stderr float64) {
	n := float64(len(xs))
	if len(xs) == 0 {
		return 0, 0
	}
	for _, x := range xs {
		mean += x
	}
	mean /= n
	if len(xs) < 2 {
		return mean, 0
	}
	var ss float64
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(ss/(n-1)) / math.Sqrt(n)
}

// paperAverage averages the paper metric over tasks in TaskNames order, so
// the float result does not depend on map iteration order.
func paperAverage(results map[string]TaskResult) float64 {
	var sum float64
	var n int
	for _, name := range TaskNames() {
		if r, ok := results[name]; ok {
			sum += r.Paper
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}
