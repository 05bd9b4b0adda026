package width

// Wanda-sp: Wanda's score (Sun et al., "A Simple and Effective Pruning Approach for Large
// Language Models", 2023), |W_ij|·‖X_j‖₂, made structured by An et al. ("Fluctuation-based
// Adaptive Structured Pruning for Large Language Models", AAAI 2024; prune_wanda_sp in
// CASIA-IVA-Lab/FLAP lib/prune.py). Per output projection (o_proj, down_proj) of a block:
//
//	S_j = mean_i |W_ij| · sqrt(s_j),   s_j = Σ_t x_tj² / n_windows   (WrappedGPT.scaler_row)
//
// a channel scores S_j, a head the sum of S_j over its head_dim channels (a KV group: over
// all its query heads' channels). Blocks are pruned in order with the same share each
// ("UL-UM"), and the next block's statistics come from the already pruned blocks' outputs.

import (
	"math"

	"github.com/shortllm/shortllm/internal/capture"
	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/prune"
)

// wandaSP scores (and, with cnt, prunes by masking in r's model as it goes) every block.
// cnt nil scores the unpruned model.
func wandaSP(r *model.Runner, windows [][]int, unit string, cnt map[int]counts, o Options) (*Scores, *Plan, error) {
	cfg := r.Model.Config
	sess, err := capture.Start(r, windows, capture.Options{BatchSize: o.BatchSize})
	if err != nil {
		return nil, nil, err
	}
	s := newScores("wanda-sp", unit, cfg.NumHiddenLayers)
	p := EmptyPlan(cfg.NumHiddenLayers)
	progress := o.progress("wanda-sp")
	n := float64(len(windows))
	for b := 0; b < cfg.NumHiddenLayers; b++ {
		in, err := sess.Capture(capture.SumSq)
		if err != nil {
			return nil, nil, err
		}
		w := cfg.Width(b)
		pre := layerName(b)
		oScore := wandaColumns(model.Float32Values(r.Model.Weights[pre+"self_attn.o_proj.weight"]), in[capture.OIn].SumSq, n)
		s.Heads[b] = perHead(oScore, w, cfg.HeadDim, unit, false)
		s.Channels[b] = wandaColumns(model.Float32Values(r.Model.Weights[pre+"mlp.down_proj.weight"]), in[capture.DownIn].SumSq, n)
		if c, ok := cnt[b]; ok {
			p.Layers[b] = chooseBlock(cfg, s, b, c)
			if err := maskInPlace(r.Model, p.Layers[b], b); err != nil {
				return nil, nil, err
			}
		}
		if err := sess.Advance(); err != nil {
			return nil, nil, err
		}
		progress(b+1, cfg.NumHiddenLayers)
	}
	return s, p, checkFinite(s)
}

// wandaColumns is mean_i |W_ij|·sqrt(sumSq_j / n) for W [out, in].
func wandaColumns(w []float32, sumSq []float64, n float64) []float64 {
	in := len(sumSq)
	rows := len(w) / in
	out := make([]float64, in)
	for i := 0; i < rows; i++ {
		for j, x := range w[i*in : (i+1)*in] {
			out[j] += math.Abs(float64(x))
		}
	}
	for j := range out {
		out[j] = out[j] / float64(rows) * math.Sqrt(sumSq[j]/n)
	}
	return out
}

// maskInPlace zeroes block b's units in m's weights (same shapes), so later blocks see the
// pruned block's outputs.
func maskInPlace(m *model.Model, u prune.LayerUnits, b int) error {
	e := editor{out: m, dh: m.Config.HeadDim, mask: true, pre: layerName(b)}
	return e.layer(u, EmptyPlan(m.Config.NumHiddenLayers), b)
}
