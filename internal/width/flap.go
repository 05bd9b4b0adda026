package width

// FLAP (An, Zhao, Yu, Tang and Wang, "Fluctuation-based Adaptive Structured Pruning for Large
// Language Models", AAAI 2024; CASIA-IVA-Lab/FLAP lib/prune.py prune_flap with its defaults
// --metrics WIFV --structure AL-AM). For the input channels j of o_proj and down_proj:
//
//	fluctuation  F_j = Σ_t (x_tj − x̄_j)² / (N − 1)                 (sample variance over tokens)
//	WIFV         M_j = F_j · ‖W_:,j‖₂²                               (down_proj channels)
//	             M_j = (F_j · ‖W_:,j‖₂²)²                             (o_proj: the code squares it)
//
// standardised per block and module, Z = (M − mean M) / std M (unbiased std, as torch.std);
// a head scores the mean of Z over its head_dim channels (a KV group: over its query heads'
// channels). All blocks' heads and channels are then ranked together and removed lowest first
// until the removed parameters are closest to the target ("AL-AM", each unit weighted by its
// parameters). Bias compensation adds the removed channels' mean contribution to the output
// projection's bias, b_i += Σ_{j removed} W_ij · x̄_j, so the block's mean output is kept.
// FLAP computes every block's statistics on the unpruned model (outputs of unpruned blocks).
// Its BiasGPT accumulates the variance online and drops the first sample's part; with 1024
// samples that is a rounding difference, so the exact sample variance is used here.

import (
	"fmt"
	"math"

	"github.com/shortllm/shortllm/internal/capture"
	"github.com/shortllm/shortllm/internal/model"
)

// flapStats is what FLAP keeps per block: standardised scores and input means.
type flapStats struct {
	oMean, downMean [][]float64
}

func flap(r *model.Runner, windows [][]int, unit string, o Options) (*Scores, *flapStats, error) {
	cfg := r.Model.Config
	sess, err := capture.Start(r, windows, capture.Options{BatchSize: o.BatchSize})
	if err != nil {
		return nil, nil, err
	}
	L := cfg.NumHiddenLayers
	s := newScores("flap", unit, L)
	st := &flapStats{oMean: make([][]float64, L), downMean: make([][]float64, L)}
	progress := o.progress("flap")
	for b := 0; b < L; b++ {
		in, err := sess.Capture(capture.SumSq | capture.Sum)
		if err != nil {
			return nil, nil, err
		}
		pre := layerName(b)
		oIn, dIn := in[capture.OIn], in[capture.DownIn]
		a := wifv(model.Float32Values(r.Model.Weights[pre+"self_attn.o_proj.weight"]), oIn)
		for j := range a {
			a[j] *= a[j]
		}
		za, err := standardise(a)
		if err != nil {
			return nil, nil, fmt.Errorf("flap: block %d o_proj: %w", b, err)
		}
		s.Heads[b] = perHead(za, cfg.Width(b), cfg.HeadDim, unit, true)
		if s.Channels[b], err = standardise(wifv(model.Float32Values(r.Model.Weights[pre+"mlp.down_proj.weight"]), dIn)); err != nil {
			return nil, nil, fmt.Errorf("flap: block %d down_proj: %w", b, err)
		}
		st.oMean[b], st.downMean[b] = oIn.Mean(), dIn.Mean()
		if err := sess.Advance(); err != nil {
			return nil, nil, err
		}
		progress(b+1, L)
	}
	return s, st, checkFinite(s)
}

// wifv is F_j·‖W_:,j‖² for W [out, in] and the input's statistics.
func wifv(w []float32, in *capture.Input) []float64 {
	n := float64(in.Tokens)
	out := make([]float64, in.Dim)
	rows := len(w) / in.Dim
	for i := 0; i < rows; i++ {
		for j, x := range w[i*in.Dim : (i+1)*in.Dim] {
			out[j] += float64(x) * float64(x)
		}
	}
	for j := range out {
		variance := (in.SumSq[j] - in.Sum[j]*in.Sum[j]/n) / (n - 1)
		out[j] *= max(variance, 0)
	}
	return out
}

// standardise is (v − mean) / std with the unbiased std.
func standardise(v []float64) ([]float64, error) {
	n := float64(len(v))
	var mean float64
	for _, x := range v {
		mean += x
	}
	mean /= n
	var ss float64
	for _, x := range v {
		ss += (x - mean) * (x - mean)
	}
	sd := math.Sqrt(ss / (n - 1))
	if !(sd > 0) {
		return nil, fmt.Errorf("every channel scores the same (%g): nothing to rank", mean)
	}
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = (x - mean) / sd
	}
	return out, nil
}

// compensate sets the plan's bias deltas: W[:, removed]·x̄[removed] per block and projection.
func compensate(m *model.Model, p *Plan, st *flapStats) {
	L := m.Config.NumHiddenLayers
	p.OBias, p.DownBias = make([][]float32, L), make([][]float32, L)
	for b, u := range p.Layers {
		pre := layerName(b)
		if len(u.Heads) > 0 {
			p.OBias[b] = meanContribution(model.Float32Values(m.Weights[pre+"self_attn.o_proj.weight"]), st.oMean[b], expand(u.Heads, m.Config.HeadDim))
		}
		if len(u.Channels) > 0 {
			p.DownBias[b] = meanContribution(model.Float32Values(m.Weights[pre+"mlp.down_proj.weight"]), st.downMean[b], u.Channels)
		}
	}
}

// meanContribution is Σ_{j ∈ cols} W[:, j]·mean_j for W [out, in].
func meanContribution(w []float32, mean []float64, cols []int) []float32 {
	in := len(mean)
	rows := len(w) / in
	out := make([]float32, rows)
	for i := 0; i < rows; i++ {
		var acc float64
		for _, j := range cols {
			acc += float64(w[i*in+j]) * mean[j]
		}
		out[i] = float32(acc)
	}
	return out
}
