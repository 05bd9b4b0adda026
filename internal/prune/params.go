package prune

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/shortllm/shortllm/internal/model"
)

// ParamCounts splits a model's parameters the way depth pruning sees them: the blocks are
// what it removes, everything else stays. A tied lm_head shares the embedding matrix and is
// counted once, as Hugging Face's num_parameters() does.
type ParamCounts struct {
	Embeddings int64 `json:"embeddings"`
	PerBlock   int64 `json:"per_block"`
	Blocks     int64 `json:"blocks"`
	FinalNorm  int64 `json:"final_norm"`
	LMHead     int64 `json:"lm_head"`
	Total      int64 `json:"total"`
}

// CountParams counts from the shapes the config implies (per block: width-pruned blocks differ).
func CountParams(cfg *model.Config) ParamCounts {
	shapes := cfg.ExpectedShapes()
	size := func(name string) int64 {
		dims, ok := shapes[name]
		if !ok {
			return 0 // e.g. lm_head of a tied model
		}
		n := int64(1)
		for _, d := range dims {
			n *= int64(d)
		}
		return n
	}
	c := ParamCounts{
		Embeddings: size("model.embed_tokens.weight"),
		FinalNorm:  size("model.norm.weight"),
		LMHead:     size("lm_head.weight"),
	}
	for b := 0; b < cfg.NumHiddenLayers; b++ {
		for _, name := range cfg.BlockTensorNames(b) {
			c.Blocks += size(name)
		}
	}
	if cfg.NumHiddenLayers > 0 {
		// Width-pruned blocks differ in size: PerBlock is their mean, so ratios stay exact
		// for uniform models and approximate for non-uniform ones.
		c.PerBlock = c.Blocks / int64(cfg.NumHiddenLayers)
	}
	c.Total = c.Embeddings + c.Blocks + c.FinalNorm + c.LMHead
	return c
}

// RemovedShare is the fraction of all parameters that removing n blocks takes away.
func (c ParamCounts) RemovedShare(n int) float64 {
	return float64(c.PerBlock*int64(n)) / float64(c.Total)
}

// ratioSlack is how far the removed share may exceed the requested ratio. The paper names a
// pruning by its parameter share in whole percents and never above what was removed by more
// than rounding: on LLaMA-7B, 6 blocks (18.0%) are its "20%", 11 (33.0%) its "35%", and 15
// blocks (45.06%) its "45%". Nearest-share rounding would pick 7 and 12 blocks instead.
const ratioSlack = 0.005

// BlocksForRatio returns the number of blocks to remove for a parameter ratio: the largest n
// whose removed share is at most ratio + ½ percentage point (see ratioSlack).
func BlocksForRatio(cfg *model.Config, ratio float64) (int, error) {
	c := CountParams(cfg)
	n := 0
	for n < cfg.NumHiddenLayers && c.RemovedShare(n+1) <= ratio+ratioSlack+1e-12 {
		n++
	}
	switch {
	case n == 0:
		return 0, fmt.Errorf("--ratio %s removes no block: one block is %s of the parameters",
			FormatPercent(ratio), FormatPercent(c.RemovedShare(1)))
	case n == cfg.NumHiddenLayers:
		return 0, fmt.Errorf("--ratio %s would remove all %d blocks", FormatPercent(ratio), n)
	}
	return n, nil
}

// ParseRatio reads --ratio written as a percentage ("35%") or a fraction ("0.35"); it must
// lie strictly between 0 and 1.
func ParseRatio(s string) (float64, error) {
	t := strings.TrimSpace(s)
	pct := strings.HasSuffix(t, "%")
	v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(t, "%")), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("--ratio %q: want a percentage like 35%% or a fraction like 0.35", s)
	}
	if pct {
		v /= 100
	}
	if !(v > 0 && v < 1) {
		return 0, fmt.Errorf("--ratio %q: the share of parameters to remove must be between 0 and 1 (0%% and 100%%), exclusive", s)
	}
	return v, nil
}

// FormatPercent renders a share with one decimal, e.g. 0.3588 → "35.9%".
func FormatPercent(v float64) string { return strconv.FormatFloat(100*v, 'f', 1, 64) + "%" }
