package width

import (
	"fmt"
	"slices"
	"strings"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/prune"
)

// Head units. A KV group is one key/value head with the query heads that read it (with
// multi-head attention, one head): removing it keeps repeat_kv's layout. Query heads within
// a group may go only with AllowWithinGroups, and only where every surviving group keeps the
// same number of query heads (repeat_kv repeats each KV head equally).
const (
	UnitKVGroup   = "kv_group"
	UnitQueryHead = "query_head"
)

// Plan is what width pruning removes from each block (original indices) and, with FLAP's
// bias compensation, what each block's o_proj and down_proj biases gain ([D] per block; nil
// where nothing is added).
type Plan struct {
	Layers   []prune.LayerUnits
	OBias    [][]float32
	DownBias [][]float32
}

// Compensated reports whether the plan adds to any output bias.
func (p *Plan) Compensated() bool {
	for i := range p.Layers {
		if (p.OBias != nil && p.OBias[i] != nil) || (p.DownBias != nil && p.DownBias[i] != nil) {
			return true
		}
	}
	return false
}

// groupHeads lists KV group g's query heads.
func groupHeads(w model.LayerWidth, g int) []int {
	G := w.KVGroups()
	out := make([]int, G)
	for j := range out {
		out[j] = g*G + j
	}
	return out
}

// HeadsFromUnits turns removed head units of block b into removed query and KV heads.
func HeadsFromUnits(w model.LayerWidth, unit string, units []int) (heads, kv []int) {
	if unit == UnitKVGroup {
		for _, g := range units {
			heads = append(heads, groupHeads(w, g)...)
			kv = append(kv, g)
		}
		slices.Sort(heads)
		slices.Sort(kv)
		return heads, kv
	}
	heads = slices.Sorted(slices.Values(units))
	for g := 0; g < w.NumKeyValueHeads; g++ {
		all := true
		for _, h := range groupHeads(w, g) {
			all = all && slices.Contains(heads, h)
		}
		if all {
			kv = append(kv, g)
		}
	}
	return heads, kv
}

// Check validates a plan against the model's widths: indices in range, no block left without
// heads or channels, and a head layout repeat_kv can run. allowWithin permits removing query
// heads of a KV group that keeps others.
func Check(cfg *model.Config, p *Plan, allowWithin bool) error {
	if len(p.Layers) != cfg.NumHiddenLayers {
		return fmt.Errorf("width plan has %d blocks, the model %d", len(p.Layers), cfg.NumHiddenLayers)
	}
	for b, u := range p.Layers {
		if err := checkLayer(cfg.Width(b), b, u, allowWithin); err != nil {
			return err
		}
	}
	return nil
}

func checkLayer(w model.LayerWidth, b int, u prune.LayerUnits, allowWithin bool) error {
	if err := checkIndices(u.Heads, w.NumAttentionHeads, b, "query head"); err != nil {
		return err
	}
	if err := checkIndices(u.KVHeads, w.NumKeyValueHeads, b, "key/value head"); err != nil {
		return err
	}
	if err := checkIndices(u.Channels, w.IntermediateSize, b, "FFN channel"); err != nil {
		return err
	}
	if len(u.Heads) == w.NumAttentionHeads {
		return fmt.Errorf("block %d: removing all %d attention heads leaves none (lower the ratio or keep the block unpruned)", b, w.NumAttentionHeads)
	}
	if len(u.Channels) == w.IntermediateSize {
		return fmt.Errorf("block %d: removing all %d FFN channels leaves none (lower the ratio or keep the block unpruned)", b, w.IntermediateSize)
	}
	var kept []string
	keptCount := map[int]bool{}
	for g := 0; g < w.NumKeyValueHeads; g++ {
		n := 0
		for _, h := range groupHeads(w, g) {
			if !slices.Contains(u.Heads, h) {
				n++
			}
		}
		kvGone := slices.Contains(u.KVHeads, g)
		switch {
		case kvGone && n > 0:
			return fmt.Errorf("block %d: key/value head %d is removed but %d of its query heads stay", b, g, n)
		case !kvGone && n == 0:
			return fmt.Errorf("block %d: every query head of key/value head %d is removed but the key/value head stays", b, g)
		case !kvGone && n < w.KVGroups() && !allowWithin:
			return fmt.Errorf("block %d: removing query heads %v breaks GQA group %d (heads %v); remove whole groups or pass --within-groups",
				b, intersect(u.Heads, groupHeads(w, g)), g, groupHeads(w, g))
		case !kvGone:
			keptCount[n] = true
			kept = append(kept, fmt.Sprint(n))
		}
	}
	if len(keptCount) > 1 {
		return fmt.Errorf("block %d: the KV groups would keep %s query heads; repeat_kv needs the same number in every group", b, strings.Join(kept, ", "))
	}
	return nil
}

func checkIndices(v []int, n, b int, what string) error {
	seen := map[int]bool{}
	for _, i := range v {
		if i < 0 || i >= n || seen[i] {
			return fmt.Errorf("block %d: %s %d is out of range [0, %d) or repeated", b, what, i, n)
		}
		seen[i] = true
	}
	return nil
}

func intersect(a, b []int) []int {
	var out []int
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// WidthsAfter returns every block's widths once the plan is applied.
func WidthsAfter(cfg *model.Config, p *Plan) []model.LayerWidth {
	out := cfg.Widths()
	for b, u := range p.Layers {
		out[b].NumAttentionHeads -= len(u.Heads)
		out[b].NumKeyValueHeads -= len(u.KVHeads)
		out[b].IntermediateSize -= len(u.Channels)
	}
	return out
}

// EmptyPlan removes nothing from a model with L blocks.
func EmptyPlan(L int) *Plan {
	return &Plan{Layers: make([]prune.LayerUnits, L)}
}
