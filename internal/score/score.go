package score

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/shortllm/shortllm/internal/model"
)

// ErrCriterion marks an unknown criterion or an option it cannot use.
var ErrCriterion = errors.New("invalid scoring criterion")

// optionError is an option's one-line message; errors.Is matches it to ErrCriterion without
// appending that sentinel's text ("batch size -1 … invalid scoring criterion" read wrong).
type optionError struct{ msg string }

func (e *optionError) Error() string        { return e.msg }
func (e *optionError) Is(target error) bool { return target == ErrCriterion }

func optionErr(format string, args ...any) error {
	return &optionError{msg: fmt.Sprintf(format, args...)}
}

// criteria maps every accepted name to the score it computes. The "+" names are the paper's
// protected variants: the policy belongs to pruning, the scores are the base criterion's.
var criteria = map[string]string{
	"taylor": "taylor", "taylor+": "taylor",
	"ppl": "ppl", "ppl+": "ppl",
	"magnitude": "magnitude", "mag+": "magnitude",
	"bi":      "bi",
	"angular": "angular",
}

// Criteria lists the accepted criterion names.
func Criteria() []string {
	return []string{"taylor", "taylor+", "ppl", "ppl+", "magnitude", "mag+", "bi", "angular"}
}

// BaseCriteria are what "all" means: each distinct score once.
func BaseCriteria() []string { return []string{"taylor", "ppl", "magnitude", "bi", "angular"} }

// BaseCriterion maps a criterion name to the score it computes ("taylor+" → "taylor",
// "mag+" → "magnitude"); unknown names come back unchanged.
func BaseCriterion(c string) string {
	if b, ok := criteria[c]; ok {
		return b
	}
	return c
}

// NeedsData reports whether criterion runs the model on calibration windows.
func NeedsData(criterion string) bool {
	base, ok := criteria[criterion]
	return ok && base != "magnitude"
}

// ParseCriteria splits a comma-separated list ("all" expands to BaseCriteria) and checks each name.
func ParseCriteria(s string) ([]string, error) {
	var out []string
	for _, c := range strings.Split(s, ",") {
		c = strings.TrimSpace(c)
		switch {
		case c == "all":
			out = append(out, BaseCriteria()...)
		case criteria[c] != "":
			out = append(out, c)
		default:
			return nil, unknownCriterion(c)
		}
	}
	return out, nil
}

func unknownCriterion(c string) error {
	return fmt.Errorf("unknown criterion %q (want %s or all): %w", c, strings.Join(Criteria(), ", "), ErrCriterion)
}

// Options tune Compute; the zero value is Shortened LLaMA's defaults.
type Options struct {
	// BatchSize windows run per graph execution: it bounds activation memory and never
	// changes a score. 0 → DefaultBatchSize.
	BatchSize int
	// WeightReduction folds a weight tensor's per-output-row scores (taylor, magnitude):
	// sum, mean, max or prod, as anal_block_sensitivity_*.py's --weight_reduction.
	WeightReduction string
	// NormPower p raises each |w·g| (or |w|) to p before the reductions. 0 → 1.
	NormPower float64
	// Span is angular's number of consecutive blocks. 0 → 1.
	Span int
	// SkipBlocks are already removed: they score null and are left out of Order.
	SkipBlocks []int
	// Remat recomputes block activations in taylor's backward pass (one block's activations
	// alive instead of all of them; about one more forward of compute). Scores do not change.
	Remat bool
	// Progress, if set, is called as work finishes.
	Progress func(done, total int)
}

// DefaultBatchSize is the scripts' --batch_size.
const DefaultBatchSize = 10

func (o Options) withDefaults() Options {
	o.BatchSize = orDefault(o.BatchSize, DefaultBatchSize)
	if o.WeightReduction == "" {
		o.WeightReduction = "sum"
	}
	if o.NormPower == 0 {
		o.NormPower = 1
	}
	o.Span = orDefault(o.Span, 1)
	if o.Progress == nil {
		o.Progress = func(int, int) {}
	}
	return o
}

func (o Options) validate(numLayers int) error {
	switch o.WeightReduction {
	case "sum", "mean", "max", "prod":
	default:
		return optionErr("--weight-reduction %q: want sum, mean, max or prod", o.WeightReduction)
	}
	if o.NormPower < 0 || math.IsNaN(o.NormPower) || math.IsInf(o.NormPower, 0) {
		return optionErr("--norm-power %g: want a positive number", o.NormPower)
	}
	if o.BatchSize < 1 {
		return optionErr("--batch-size %d: want at least 1", o.BatchSize)
	}
	for _, b := range o.SkipBlocks {
		if b < 0 || b >= numLayers {
			return optionErr("--skip-blocks: block %d is outside 0..%d (the model has %d blocks)", b, numLayers-1, numLayers)
		}
	}
	kept := numLayers - len(uniq(o.SkipBlocks))
	if kept == 0 {
		return optionErr("--skip-blocks: all %d blocks are skipped", numLayers)
	}
	if o.Span < 1 || o.Span > kept {
		return optionErr("--span %d: want 1 to %d (the blocks left)", o.Span, kept)
	}
	return nil
}

// Result is one criterion's scores, in the JSON layout of `shortllm score`.
type Result struct {
	Model      string `json:"model"`
	ConfigHash string `json:"config_hash"`
	// WeightsDigest fingerprints the scored weights (model.WeightsDigest): scores of other
	// weights with the same config are refused by prune.
	WeightsDigest string `json:"weights_digest,omitempty"`
	NumLayers     int    `json:"num_layers"`
	Criterion     string `json:"criterion"`
	// Scores has one entry per block (for angular: per span start); nil where a block is
	// skipped or a span does not fit. Higher means more important.
	Scores []*float64 `json:"scores"`
	// Order lists the scored blocks least important (lowest score) first.
	Order []int `json:"order"`
	// Baseline is the unpruned model on the criterion's scale, where it has one: for ppl the
	// perplexity of the calibration windows with every block in place.
	Baseline    *float64       `json:"baseline,omitempty"`
	Calibration *Calibration   `json:"calibration"`
	Options     map[string]any `json:"options"`
	ToolVersion string         `json:"tool_version"`
}

// Score returns block i's score and whether it has one.
func (r *Result) Score(i int) (float64, bool) {
	if i < 0 || i >= len(r.Scores) || r.Scores[i] == nil {
		return 0, false
	}
	return *r.Scores[i], true
}

// Compute scores every block of r's model by criterion. calib may be nil for magnitude.
func Compute(r *model.Runner, calib *Calibration, criterion string, opts Options) (*Result, error) {
	base, ok := criteria[criterion]
	if !ok {
		return nil, unknownCriterion(criterion)
	}
	cfg := r.Model.Config
	opts = opts.withDefaults()
	if err := opts.validate(cfg.NumHiddenLayers); err != nil {
		return nil, err
	}
	if NeedsData(criterion) {
		if err := checkCalibration(cfg, calib); err != nil {
			return nil, err
		}
	} else {
		calib = nil
	}
	scores, baseline, err := computeScores(r, calib, base, opts)
	if err == nil {
		err = checkFinite(scores, base, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("score %s: %w", criterion, err)
	}
	digest := ""
	if r.Model.Dir != "" {
		digest, _ = model.WeightsDigest(r.Model.Dir) // none for a model that has no files
	}
	return &Result{
		Model: r.Model.Dir, ConfigHash: cfg.Hash(), WeightsDigest: digest, NumLayers: cfg.NumHiddenLayers,
		Criterion: criterion, Scores: scores, Order: order(scores), Baseline: baseline, Calibration: calib,
		Options: optionsRecord(base, opts),
	}, nil
}

// computeScores returns the scores and, for ppl, the unpruned model's perplexity.
func computeScores(r *model.Runner, calib *Calibration, base string, opts Options) ([]*float64, *float64, error) {
	var s []*float64
	var err error
	switch base {
	case "taylor":
		s, err = taylor(r, calib.IDs, opts)
	case "magnitude":
		s = magnitude(r.Model, opts)
	case "ppl":
		return pplRemoved(r, calib.IDs, opts)
	case "bi":
		s, err = blockInfluence(r, calib.IDs, opts)
	default:
		s, err = angular(r, calib.IDs, opts)
	}
	return s, nil, err
}

// checkCalibration rejects windows the model cannot run, before any graph is built.
func checkCalibration(cfg *model.Config, c *Calibration) error {
	if c == nil {
		return fmt.Errorf("calibration data required: %w", ErrCalibration)
	}
	if err := checkWindows(c.IDs); err != nil {
		return fmt.Errorf("calib %s: %w", c.Source, err)
	}
	if T := len(c.IDs[0]); T > cfg.MaxPositionEmbeddings {
		return fmt.Errorf("calib %s: windows of %d tokens exceed max_position_embeddings (%d): %w",
			c.Source, T, cfg.MaxPositionEmbeddings, ErrCalibration)
	}
	for i, w := range c.IDs {
		for _, id := range w {
			if id >= cfg.VocabSize {
				return fmt.Errorf("calib %s: window %d: token id %d outside the vocabulary [0, %d): %w",
					c.Source, i, id, cfg.VocabSize, ErrCalibration)
			}
		}
	}
	return nil
}

// checkFinite refuses scores JSON cannot carry and no ranking can use. The hint depends on
// the cause: for taylor/magnitude a prod reduction or a large norm power overflows easily;
// otherwise the model itself produced NaN or infinite activations.
func checkFinite(scores []*float64, base string, o Options) error {
	for i, s := range scores {
		if s == nil || (!math.IsNaN(*s) && !math.IsInf(*s, 0)) {
			continue
		}
		hint := "the model's weights or activations are not finite (broken checkpoint?)"
		if (base == "taylor" || base == "magnitude") && (o.WeightReduction == "prod" || o.NormPower > 1) {
			hint = fmt.Sprintf("--weight-reduction %s / --norm-power %g overflow: try sum or a smaller power", o.WeightReduction, o.NormPower)
		}
		return fmt.Errorf("block %d scores %g: %s: %w", i, *s, hint, ErrNotFinite)
	}
	return nil
}

// ErrNotFinite marks a score that is NaN or infinite.
var ErrNotFinite = errors.New("score is not finite")

// optionsRecord keeps the options that shaped this criterion's scores.
func optionsRecord(base string, o Options) map[string]any {
	m := map[string]any{"skip_blocks": sortedOrEmpty(o.SkipBlocks)}
	switch base {
	case "taylor", "magnitude":
		m["weight_reduction"], m["norm_power"], m["block_reduction"] = o.WeightReduction, o.NormPower, "sum"
	case "angular":
		m["span"] = o.Span
	}
	if base != "magnitude" {
		m["batch_size"] = o.BatchSize
	}
	return m
}

// order sorts the scored entries by score, least important first; ties keep block order.
func order(scores []*float64) []int {
	var idx []int
	for i, s := range scores {
		if s != nil {
			idx = append(idx, i)
		}
	}
	sort.SliceStable(idx, func(a, b int) bool { return *scores[idx[a]] < *scores[idx[b]] })
	return idx
}

func uniq(v []int) []int {
	s := slices.Clone(v)
	slices.Sort(s)
	return slices.Compact(s)
}

func sortedOrEmpty(v []int) []int {
	s := uniq(v)
	if s == nil {
		s = []int{}
	}
	return s
}

// kept lists the blocks that are not skipped.
func kept(numLayers int, skip []int) []int {
	var out []int
	for i := 0; i < numLayers; i++ {
		if !slices.Contains(skip, i) {
			out = append(out, i)
		}
	}
	return out
}

// batches splits windows into micro-batches of at most n.
func batches(ids [][]int, n int) [][][]int {
	var out [][][]int
	for i := 0; i < len(ids); i += n {
		out = append(out, ids[i:min(i+n, len(ids))])
	}
	return out
}

func ptr(v float64) *float64 { return &v }
