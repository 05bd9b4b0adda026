package width

import (
	"fmt"

	"github.com/shortllm/shortllm/internal/model"
)

// Scores are per-unit importances: higher means more important (pruned last). Blocks that
// are not candidates have nil entries.
type Scores struct {
	Criterion string `json:"criterion"`
	HeadUnit  string `json:"head_unit"`
	// Heads[b][u] scores head unit u of block b (a KV group, or a query head).
	Heads [][]float64 `json:"heads"`
	// Channels[b][c] scores FFN channel c of block b.
	Channels [][]float64 `json:"channels"`
}

func newScores(criterion, unit string, L int) *Scores {
	return &Scores{Criterion: criterion, HeadUnit: unit, Heads: make([][]float64, L), Channels: make([][]float64, L)}
}

// headUnits is the number of head units of a block.
func headUnits(w model.LayerWidth, unit string) int {
	if unit == UnitKVGroup {
		return w.NumKeyValueHeads
	}
	return w.NumAttentionHeads
}

// unitHeads lists the query heads of head unit u.
func unitHeads(w model.LayerWidth, unit string, u int) []int {
	if unit == UnitKVGroup {
		return groupHeads(w, u)
	}
	return []int{u}
}

// perHead folds per-channel values of o_proj's input [H·Dh] into per-unit values with fold
// over each unit's channels (sum or mean).
func perHead(v []float64, w model.LayerWidth, dh int, unit string, mean bool) []float64 {
	out := make([]float64, headUnits(w, unit))
	for u := range out {
		n := 0
		for _, h := range unitHeads(w, unit, u) {
			for j := h * dh; j < (h+1)*dh; j++ {
				out[u] += v[j]
				n++
			}
		}
		if mean {
			out[u] /= float64(n)
		}
	}
	return out
}

func checkFinite(s *Scores) error {
	for b := range s.Heads {
		for _, v := range append(append([]float64(nil), s.Heads[b]...), s.Channels[b]...) {
			if v != v || v > 1e308 || v < -1e308 {
				return fmt.Errorf("%s: block %d has a non-finite score", s.Criterion, b)
			}
		}
	}
	return nil
}
