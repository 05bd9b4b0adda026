package width

import (
	"fmt"
	"slices"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/prune"
)

// Criteria are the width-pruning criteria Run knows.
func Criteria() []string { return []string{"llm-pruner", "wanda-sp", "flap"} }

// IsCriterion reports whether c is a width criterion.
func IsCriterion(c string) bool { return slices.Contains(Criteria(), c) }

// Options configure Run. Zero values take each criterion's released defaults.
type Options struct {
	Criterion string
	// Ratio is the share of all parameters to remove (as for blocks); 0 only scores.
	Ratio float64
	// Windows are the calibration windows (equal-length token ids).
	Windows [][]int
	// BatchSize windows per forward pass (memory only). 0 → 10.
	BatchSize int
	// HeadUnit is UnitKVGroup (default) or UnitQueryHead (needs AllowWithinGroups where a KV
	// head has several query heads).
	HeadUnit          string
	AllowWithinGroups bool
	// KeepFirst/KeepLast blocks are never pruned; nil takes the criterion's default
	// (LLM-Pruner: the first 4 and last 2, as its README's LLaMA-7B command; Wanda-sp and
	// FLAP prune every block).
	KeepFirst, KeepLast *int
	// NoBiasCompensation turns off FLAP's bias compensation.
	NoBiasCompensation bool
	// Progress, if set, returns a progress callback for one stage of work.
	Progress func(stage string) func(done, total int)
}

func (o Options) progress(stage string) func(int, int) {
	if o.Progress == nil {
		return func(int, int) {}
	}
	return o.Progress(stage)
}

// Result is a scoring and, with a ratio, the plan and its record.
type Result struct {
	Scores *Scores
	Plan   *Plan // nil when only scoring
	Record *prune.WidthRecord
	Ratio  float64
	// Trained is LoRAPrune's fine-tuned model (adapter merged, units zeroed): Write applies
	// the plan to it instead of the original.
	Trained *model.Model
}

// candidates lists the blocks a criterion may prune.
func (o Options) candidates(L int) []int {
	first, last := 0, 0
	if o.Criterion == "llm-pruner" {
		first, last = prune.DefaultPolicy.KeepFirst, prune.DefaultPolicy.KeepLast
	}
	if o.KeepFirst != nil {
		first = *o.KeepFirst
	}
	if o.KeepLast != nil {
		last = *o.KeepLast
	}
	var out []int
	for b := first; b < L-last; b++ {
		out = append(out, b)
	}
	return out
}

func (o *Options) check(cfg *model.Config) error {
	if !IsCriterion(o.Criterion) {
		return fmt.Errorf("unknown width criterion %q (want %s)", o.Criterion, strings.Join(Criteria(), ", "))
	}
	return o.checkCommon(cfg)
}

// checkCommon validates what every criterion (LoRAPrune included) needs.
func (o *Options) checkCommon(cfg *model.Config) error {
	if o.HeadUnit == "" {
		o.HeadUnit = UnitKVGroup
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 10
	}
	switch {
	case o.HeadUnit != UnitKVGroup && o.HeadUnit != UnitQueryHead:
		return fmt.Errorf("head unit %q: want %s or %s", o.HeadUnit, UnitKVGroup, UnitQueryHead)
	case o.HeadUnit == UnitQueryHead && cfg.KVGroups() > 1 && !o.AllowWithinGroups:
		return fmt.Errorf("query-head units split GQA groups (%d query heads per KV head): pass --within-groups", cfg.KVGroups())
	case o.Ratio < 0 || o.Ratio >= 1:
		return fmt.Errorf("--ratio %g: want a share between 0 and 1", o.Ratio)
	case len(o.Windows) == 0 || len(o.Windows[0]) < 2:
		return fmt.Errorf("%s needs calibration windows of at least 2 tokens", o.Criterion)
	case len(o.candidates(cfg.NumHiddenLayers)) == 0:
		return fmt.Errorf("--keep-first/--keep-last leave no block to prune")
	}
	if cfg.LayerWidths != nil {
		return fmt.Errorf("the model is already width-pruned with per-block widths; prune the original model instead")
	}
	return nil
}

// Run scores r's model by o.Criterion and, with a ratio, plans which heads and channels to
// remove. r's model is not changed (Wanda-sp prunes a working copy block by block).
func Run(r *model.Runner, o Options) (*Result, error) {
	cfg := r.Model.Config
	if err := o.check(cfg); err != nil {
		return nil, err
	}
	blocks := o.candidates(cfg.NumHiddenLayers)
	target := int64(o.Ratio * float64(prune.CountParams(cfg).Total))
	alloc := AllocUniform
	if o.Criterion == "flap" {
		alloc = AllocGlobal
	}
	var cnt map[int]counts
	if o.Ratio > 0 && alloc == AllocUniform {
		var err error
		if cnt, err = uniformCounts(cfg, blocks, o.HeadUnit, target, o.Ratio); err != nil {
			return nil, err
		}
	}
	res := &Result{Ratio: o.Ratio}
	var err error
	switch o.Criterion {
	case "llm-pruner":
		res.Scores, err = llmPruner(r, o.Windows, blocks, o.HeadUnit, o.BatchSize, o.progress("llm-pruner"))
		if err == nil && cnt != nil {
			res.Plan = EmptyPlan(cfg.NumHiddenLayers)
			for _, b := range blocks {
				res.Plan.Layers[b] = chooseBlock(cfg, res.Scores, b, cnt[b])
			}
		}
	case "wanda-sp":
		work := model.NewRunner(r.Backend, shallowCopy(r.Model))
		res.Scores, res.Plan, err = wandaSP(work, o.Windows, o.HeadUnit, cnt, o)
		if cnt == nil {
			res.Plan = nil
		}
	case "flap":
		var st *flapStats
		res.Scores, st, err = flap(r, o.Windows, o.HeadUnit, o)
		if err == nil && o.Ratio > 0 {
			res.Plan = globalPlan(cfg, res.Scores, blocks, target+addedBiasParams(cfg, !o.NoBiasCompensation))
			if !o.NoBiasCompensation {
				compensate(r.Model, res.Plan, st)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	if res.Plan != nil {
		if err := Check(cfg, res.Plan, o.AllowWithinGroups); err != nil {
			return nil, fmt.Errorf("%s at --ratio %s: %w", o.Criterion, prune.FormatPercent(o.Ratio), err)
		}
		res.Record = record(cfg, res.Plan, o, blocks, alloc)
	}
	return res, nil
}

// addedBiasParams counts the zero biases a compensated model gains (at the original widths:
// slightly more than after pruning), so the parameter target holds with them.
func addedBiasParams(cfg *model.Config, comp bool) int64 {
	if !comp {
		return 0
	}
	var n int64
	for b := 0; b < cfg.NumHiddenLayers; b++ {
		w := cfg.Width(b)
		if !cfg.AttentionBias {
			n += int64((w.NumAttentionHeads+2*w.NumKeyValueHeads)*cfg.HeadDim + cfg.HiddenSize)
		}
		if !cfg.MLPBias {
			n += int64(2*w.IntermediateSize + cfg.HiddenSize)
		}
	}
	return n
}

func shallowCopy(m *model.Model) *model.Model {
	cp := *m
	cp.Weights = make(map[string]*tensors.Tensor, len(m.Weights))
	for k, v := range m.Weights {
		cp.Weights[k] = v
	}
	return &cp
}

func record(cfg *model.Config, p *Plan, o Options, blocks []int, alloc string) *prune.WidthRecord {
	layers := make([]prune.LayerUnits, len(p.Layers))
	for b, u := range p.Layers {
		layers[b] = prune.LayerUnits{Heads: orEmpty(u.Heads), KVHeads: orEmpty(u.KVHeads), Channels: orEmpty(u.Channels)}
	}
	return &prune.WidthRecord{Criterion: o.Criterion, Allocation: alloc, PrunedBlocks: blocks, HeadUnit: o.HeadUnit,
		BiasCompensation: p.Compensated(), Layers: layers, WidthsBefore: cfg.Widths(), WidthsAfter: WidthsAfter(cfg, p)}
}

func orEmpty(v []int) []int {
	if v == nil {
		return []int{}
	}
	return v
}

func layerName(b int) string { return fmt.Sprintf("model.layers.%d.", b) }

// Write saves m without the planned units to opts.Out with shortllm_prune.json (Method
// "width", Record.Width the units). m is not changed.
func Write(m *model.Model, res *Result, opts prune.WriteOptions, calibration []byte) (*prune.Record, error) {
	if res.Plan == nil {
		return nil, fmt.Errorf("width pruning needs a ratio")
	}
	if err := prune.CheckOut(m.Dir, opts.Out, opts.Force); err != nil {
		return nil, err
	}
	pruned, err := Apply(m, res.Plan, res.Record.HeadUnit == UnitQueryHead)
	if err != nil {
		return nil, err
	}
	rec := prune.NewWidthRecord(m, pruned, res.Record, res.Ratio, opts)
	rec.Calibration = calibration
	return rec, prune.SaveWithRecord(pruned, rec, opts)
}
