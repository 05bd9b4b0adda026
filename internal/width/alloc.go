package width

import (
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/prune"
)

// Allocations: how the removed parameters are spread over blocks.
const (
	// AllocUniform removes the same share of head units and of channels from every candidate
	// block (LLM-Pruner's per-layer ch_sparsity, Wanda-sp's "UL-UM").
	AllocUniform = "uniform"
	// AllocGlobal ranks every unit of every block together (FLAP's "AL-AM").
	AllocGlobal = "global"
)

// headUnitParams counts the weights (and biases) one head unit of block b holds.
func headUnitParams(cfg *model.Config, b int, unit string) int64 {
	w := cfg.Width(b)
	D, dh := int64(cfg.HiddenSize), int64(cfg.HeadDim)
	q := int64(len(unitHeads(w, unit, 0)))
	n := 2 * q * dh * D // q rows and o columns
	if cfg.AttentionBias {
		n += q * dh
	}
	if unit == UnitKVGroup {
		n += 2 * dh * D // k and v rows
		if cfg.AttentionBias {
			n += 2 * dh
		}
	}
	return n
}

// channelParams counts the weights (and biases) one FFN channel holds.
func channelParams(cfg *model.Config) int64 {
	n := 3 * int64(cfg.HiddenSize)
	if cfg.MLPBias {
		n += 2
	}
	return n
}

// counts is how many head units and channels a block loses.
type counts struct{ heads, channels int }

// uniformCounts spreads target parameters over the candidate blocks: the same share p of
// every block's attention and FFN parameters, heads rounded to whole units (with query-head
// units: the same number from every KV group), the remainder of each block's share taken in
// channels. The paper's ratio counts all parameters, so the count follows the target, not p
// alone (LLM-Pruner and FLAP's Wanda-sp apply p per layer and report the resulting ratio).
func uniformCounts(cfg *model.Config, blocks []int, unit string, target int64, ratio float64) (map[int]counts, error) {
	var prunable int64
	for _, b := range blocks {
		w := cfg.Width(b)
		prunable += int64(headUnits(w, unit))*headUnitParams(cfg, b, unit) + int64(w.IntermediateSize)*channelParams(cfg)
	}
	if prunable == 0 {
		return nil, fmt.Errorf("no candidate blocks to prune")
	}
	p := float64(target) / float64(prunable)
	out := map[int]counts{}
	for _, b := range blocks {
		w := cfg.Width(b)
		per := float64(int64(headUnits(w, unit))*headUnitParams(cfg, b, unit)+int64(w.IntermediateSize)*channelParams(cfg)) * p
		var h int
		if unit == UnitKVGroup {
			h = int(math.Round(p * float64(w.NumKeyValueHeads)))
		} else {
			h = int(math.Round(p*float64(w.KVGroups()))) * w.NumKeyValueHeads
		}
		if h >= w.NumAttentionHeads || (unit == UnitKVGroup && h >= w.NumKeyValueHeads) {
			return nil, fmt.Errorf("--ratio %s removes every attention head of block %d (%.0f%% of each pruned block's units); lower the ratio or prune more blocks",
				prune.FormatPercent(ratio), b, 100*p)
		}
		c := int(math.Round((per - float64(int64(h)*headUnitParams(cfg, b, unit))) / float64(channelParams(cfg))))
		c = max(c, 0)
		if c >= w.IntermediateSize {
			return nil, fmt.Errorf("--ratio %s removes every FFN channel of block %d; lower the ratio or prune more blocks", prune.FormatPercent(ratio), b)
		}
		out[b] = counts{heads: h, channels: c}
	}
	return out, nil
}

// lowest returns the indices of the k lowest values among idx (ties: lower index first).
func lowest(v []float64, idx []int, k int) []int {
	s := slices.Clone(idx)
	sort.SliceStable(s, func(a, b int) bool { return v[s[a]] < v[s[b]] })
	out := slices.Clone(s[:k])
	slices.Sort(out)
	return out
}

func indices(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// chooseBlock picks block b's units to remove from its scores: the c lowest channels and the
// h lowest head units (with query-head units, h/Hkv lowest in every KV group).
func chooseBlock(cfg *model.Config, s *Scores, b int, c counts) prune.LayerUnits {
	w := cfg.Width(b)
	var units []int
	if s.HeadUnit == UnitKVGroup {
		units = lowest(s.Heads[b], indices(w.NumKeyValueHeads), c.heads)
	} else {
		for g := 0; g < w.NumKeyValueHeads; g++ {
			units = append(units, lowest(s.Heads[b], groupHeads(w, g), c.heads/w.NumKeyValueHeads)...)
		}
	}
	heads, kv := HeadsFromUnits(w, s.HeadUnit, units)
	return prune.LayerUnits{Heads: heads, KVHeads: kv, Channels: lowest(s.Channels[b], indices(w.IntermediateSize), c.channels)}
}

// globalPlan ranks every head unit and channel of the candidate blocks by score and removes
// the lowest until the removed parameters come closest to target — FLAP's AL-AM threshold,
// where each unit weighs its parameter count (FLAP's compression_weight: a LLaMA head is
// 512/3 channels).
func globalPlan(cfg *model.Config, s *Scores, blocks []int, target int64) *Plan {
	type unitRef struct {
		b, i   int
		head   bool
		score  float64
		params int64
	}
	var all []unitRef
	for _, b := range blocks {
		for i, v := range s.Heads[b] {
			all = append(all, unitRef{b, i, true, v, headUnitParams(cfg, b, s.HeadUnit)})
		}
		for i, v := range s.Channels[b] {
			all = append(all, unitRef{b, i, false, v, channelParams(cfg)})
		}
	}
	sort.SliceStable(all, func(a, b int) bool { return all[a].score < all[b].score })
	n, best, cum := 0, math.Abs(float64(target)), int64(0)
	for k, u := range all {
		cum += u.params
		if d := math.Abs(float64(cum - target)); d < best {
			n, best = k+1, d
		}
	}
	units := map[int][]int{}
	chans := map[int][]int{}
	for _, u := range all[:n] {
		if u.head {
			units[u.b] = append(units[u.b], u.i)
		} else {
			chans[u.b] = append(chans[u.b], u.i)
		}
	}
	p := EmptyPlan(cfg.NumHiddenLayers)
	for _, b := range blocks {
		heads, kv := HeadsFromUnits(cfg.Width(b), s.HeadUnit, units[b])
		ch := chans[b]
		slices.Sort(ch)
		p.Layers[b] = prune.LayerUnits{Heads: heads, KVHeads: kv, Channels: ch}
	}
	return p
}
