package width

// LoRAPrune (Zhang et al., "LoRAPrune: Structured Pruning Meets Low-Rank Parameter-Efficient
// Fine-Tuning", 2023; aim-uofa/LoRAPrune loraprune/utils.py). The frozen weights' gradient is
// never formed: it is estimated from the LoRA factors' gradients,
//
//	Ĝ = G_B·A + B·G_A − G_B·G_A,   I = |Ĝ ⊙ (W + s·B·A)|        (compute_sensitivity, 'lora')
//
// summed per output row (per input column for o_proj and down_proj, per head over head_dim
// rows), normalised per module (I/‖I‖₂), summed over the modules of a group (q/k/v/o for a
// head, gate/up/down for a channel), and smoothed over evaluations, S ← 0.9·S + 0.1·I
// (update_sensitivity_dict). Pruning is progressive while the LoRA trains: the share follows
// the cubic schedule (schedule_sparsity_ratio), each pruned block loses the same share
// (local_prune), units stay pruned, and the first 10% of blocks and the last are kept
// (freeze). Differences from the released trainer, which re-estimates and prunes every few
// optimizer steps: here each round trains the LoRA for a number of steps (AdamW restarts),
// then evaluates I once on the calibration windows; pruned units are zeroed in the weights
// and in the LoRA factors (B rows, A columns for o/down), as lora_mask does.

import (
	"fmt"
	"math"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph code reads like maths
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/prune"
	"github.com/shortllm/shortllm/internal/retrain"
)

// LoRAPruneName is LoRAPrune's criterion name (it trains, so it has its own entry point).
const LoRAPruneName = "loraprune"

// LoRAPruneOptions configure the progressive LoRAPrune run besides Options.
type LoRAPruneOptions struct {
	Rounds        int             // pruning rounds (default 4)
	StepsPerRound int             // LoRA updates before each pruning (default 10)
	FinalSteps    int             // LoRA updates after the last pruning (default StepsPerRound)
	Train         retrain.Options // LoRA training loop (MaxSteps is set per round)
	LoRA          retrain.LoRAConfig
	Data          *retrain.Dataset // LoRA training data
}

// LoRAPrune prunes r's model to o.Ratio while training a LoRA, and returns the plan, the
// smoothed importances, and the model with the trained adapter merged and the units zeroed
// (Apply the plan to it for the pruned checkpoint). r's model is not changed.
func LoRAPrune(r *model.Runner, o Options, lp LoRAPruneOptions) (*Result, *model.Model, error) {
	o.Criterion = LoRAPruneName
	cfg := r.Model.Config
	if err := o.checkCommon(cfg); err != nil {
		return nil, nil, err
	}
	if lp.Rounds <= 0 {
		lp.Rounds = 4
	}
	if lp.StepsPerRound <= 0 {
		lp.StepsPerRound = 10
	}
	if lp.FinalSteps <= 0 {
		lp.FinalSteps = lp.StepsPerRound
	}
	L := cfg.NumHiddenLayers
	first, last := int(float64(L)*0.1), 1
	if o.KeepFirst != nil {
		first = *o.KeepFirst
	}
	if o.KeepLast != nil {
		last = *o.KeepLast
	}
	var blocks []int
	for b := first; b < L-last; b++ {
		blocks = append(blocks, b)
	}
	work := shallowCopy(r.Model)
	wr := model.NewRunner(r.Backend, work)
	a, err := retrain.NewAdapter(cfg, lp.LoRA, lp.Train.Seed)
	if err != nil {
		return nil, nil, err
	}
	total := prune.CountParams(cfg).Total
	smooth := newScores("loraprune", o.HeadUnit, L)
	plan := EmptyPlan(L)
	for k := 1; k <= lp.Rounds; k++ {
		if err := trainLoRA(wr, a, lp, lp.StepsPerRound); err != nil {
			return nil, nil, err
		}
		now, err := loraImportance(wr, a, o.Windows, blocks, o.HeadUnit, o.BatchSize)
		if err != nil {
			return nil, nil, err
		}
		smoothInto(smooth, now, blocks)
		// Cubic schedule from 0 to the target share (initial and final warmup 0).
		share := o.Ratio * (1 - math.Pow(1-float64(k)/float64(lp.Rounds), 3))
		cnt, err := uniformCounts(cfg, blocks, o.HeadUnit, int64(share*float64(total)), share)
		if err != nil {
			return nil, nil, err
		}
		ranked := keepPruned(smooth, plan, cfg)
		for _, b := range blocks {
			plan.Layers[b] = chooseBlock(cfg, ranked, b, cnt[b])
			if err := maskInPlace(work, plan.Layers[b], b); err != nil {
				return nil, nil, err
			}
			if err := maskAdapter(a, cfg, plan.Layers[b], b); err != nil {
				return nil, nil, err
			}
		}
		o.progress("loraprune")(k, lp.Rounds)
	}
	if err := trainLoRA(wr, a, lp, lp.FinalSteps); err != nil {
		return nil, nil, err
	}
	if err := retrain.Merge(work, a); err != nil {
		return nil, nil, err
	}
	res := &Result{Scores: smooth, Plan: plan, Ratio: o.Ratio}
	if err := Check(cfg, plan, o.AllowWithinGroups); err != nil {
		return nil, nil, fmt.Errorf("loraprune: %w", err)
	}
	res.Record = record(cfg, plan, o, blocks, AllocUniform)
	return res, work, nil
}

func trainLoRA(r *model.Runner, a *retrain.Adapter, lp LoRAPruneOptions, steps int) error {
	to := lp.Train
	to.Mode, to.Adapter, to.MaxSteps = retrain.ModeLoRA, a, steps
	to.CheckpointDir, to.SaveEvery, to.Resume = "", 0, false
	t, err := retrain.NewTrainer(r, to)
	if err != nil {
		return err
	}
	_, err = t.Run(lp.Data)
	return err
}

// smoothInto is update_sensitivity_dict: S ← 0.9·S + 0.1·I.
func smoothInto(s, now *Scores, blocks []int) {
	for _, b := range blocks {
		if s.Heads[b] == nil {
			s.Heads[b], s.Channels[b] = make([]float64, len(now.Heads[b])), make([]float64, len(now.Channels[b]))
		}
		for i, v := range now.Heads[b] {
			s.Heads[b][i] = 0.9*s.Heads[b][i] + 0.1*v
		}
		for i, v := range now.Channels[b] {
			s.Channels[b][i] = 0.9*s.Channels[b][i] + 0.1*v
		}
	}
}

// keepPruned ranks already pruned units first (local_prune multiplies by the mask), so a
// growing share only adds units.
func keepPruned(s *Scores, p *Plan, cfg *model.Config) *Scores {
	out := newScores(s.Criterion, s.HeadUnit, len(s.Heads))
	for b := range s.Heads {
		if s.Heads[b] == nil {
			continue
		}
		out.Heads[b] = append([]float64(nil), s.Heads[b]...)
		out.Channels[b] = append([]float64(nil), s.Channels[b]...)
		u := p.Layers[b]
		if s.HeadUnit == UnitKVGroup {
			for _, g := range u.KVHeads {
				out.Heads[b][g] = math.Inf(-1)
			}
		} else {
			for _, h := range u.Heads {
				out.Heads[b][h] = math.Inf(-1)
			}
		}
		for _, c := range u.Channels {
			out.Channels[b][c] = math.Inf(-1)
		}
	}
	return out
}

// loraModules are the LoRA targets LoRAPrune scores, with whether units own rows.
var loraModules = taylorModules

// loraImportance evaluates I for every candidate block's units on the windows.
func loraImportance(r *model.Runner, a *retrain.Adapter, windows [][]int, blocks []int, unit string, batch int) (*Scores, error) {
	cfg := r.Model.Config
	var mods []string
	for _, b := range blocks {
		for _, m := range loraModules {
			mod := layerName(b) + m.name
			if a.A[mod] == nil {
				return nil, fmt.Errorf("loraprune needs a LoRA on %s (target all seven linear layers)", mod)
			}
			mods = append(mods, mod)
		}
	}
	var gA, gB [][]float64
	for _, part := range split(windows, batch) {
		ga, gb, err := loraGrads(r, a, mods, part)
		if err != nil {
			return nil, err
		}
		gA, gB = addAll(gA, ga), addAll(gB, gb)
	}
	tokens := float64(len(windows) * (len(windows[0]) - 1))
	s := newScores("loraprune", unit, cfg.NumHiddenLayers)
	for bi, b := range blocks {
		lines := make([][]float64, len(loraModules))
		for k, m := range loraModules {
			i := bi*len(loraModules) + k
			mod := mods[i]
			lines[k] = sensitivity(model.Float32Values(r.Model.Weights[mod+".weight"]), r.Model.Weights[mod+".weight"].Shape().Dimensions,
				tensors.MustCopyFlatData[float32](a.A[mod]), tensors.MustCopyFlatData[float32](a.B[mod]), scaleAll(gA[i], 1/tokens), scaleAll(gB[i], 1/tokens),
				a.Config.R, a.Config.Scale(), m.rows)
		}
		s.Heads[b], s.Channels[b] = groupLines(cfg, b, unit, lines)
	}
	return s, checkFinite(s)
}

// sensitivity is compute_sensitivity for one module: |Ĝ ⊙ (W + s·BA)| summed per unit line
// (rows, or columns when !rows), normalised to unit L2 norm.
func sensitivity(w []float32, dims []int, A, B []float32, gA, gB []float64, r int, scale float64, rows bool) []float64 {
	out, in := dims[0], dims[1]
	n := out
	if !rows {
		n = in
	}
	line := make([]float64, n)
	for o := 0; o < out; o++ {
		for i := 0; i < in; i++ {
			var ba, g float64
			for k := 0; k < r; k++ {
				bok, aki := float64(B[o*r+k]), float64(A[k*in+i])
				ba += bok * aki
				g += gB[o*r+k]*aki + bok*gA[k*in+i] - gB[o*r+k]*gA[k*in+i]
			}
			v := math.Abs(g * (float64(w[o*in+i]) + scale*ba))
			if rows {
				line[o] += v
			} else {
				line[i] += v
			}
		}
	}
	var norm float64
	for _, v := range line {
		norm += v * v
	}
	norm = math.Sqrt(norm) + 1e-8
	for j := range line {
		line[j] /= norm
	}
	return line
}

// groupLines sums module lines (q, k, v, o, gate, up, down) into head units and channels.
func groupLines(cfg *model.Config, b int, unit string, l [][]float64) (heads, chans []float64) {
	w := cfg.Width(b)
	heads = make([]float64, headUnits(w, unit))
	for u := range heads {
		for _, h := range unitHeads(w, unit, u) {
			heads[u] += sumRange(l[0], h*cfg.HeadDim, (h+1)*cfg.HeadDim) + sumRange(l[3], h*cfg.HeadDim, (h+1)*cfg.HeadDim)
		}
		if unit == UnitKVGroup {
			heads[u] += sumRange(l[1], u*cfg.HeadDim, (u+1)*cfg.HeadDim) + sumRange(l[2], u*cfg.HeadDim, (u+1)*cfg.HeadDim)
		}
	}
	chans = make([]float64, w.IntermediateSize)
	for c := range chans {
		chans[c] = l[4][c] + l[5][c] + l[6][c]
	}
	return heads, chans
}

// loraGrads returns ∂(Σ NLL)/∂A and ∂(Σ NLL)/∂B of the listed modules on one micro-batch.
func loraGrads(r *model.Runner, a *retrain.Adapter, mods []string, part [][]int) (gA, gB [][]float64, err error) {
	in, lab := make([][]int, len(part)), make([][]int, len(part))
	for i, w := range part {
		in[i], lab[i] = w[:len(w)-1], w[1:]
	}
	inT, err := model.IDsTensor(in)
	if err != nil {
		return nil, nil, err
	}
	labT, _ := model.IDsTensor(lab)
	args := []*tensors.Tensor{inT, labT}
	for _, m := range mods {
		args = append(args, a.A[m], a.B[m])
	}
	cfg, scale := r.Model.Config, a.Config.Scale()
	out, err := r.Run(fmt.Sprintf("width/loraprune/%d", len(mods)), func(p model.Params, x []*Node) []*Node {
		ad := map[string]model.Adapter{}
		var vars []*Node
		for i, m := range mods {
			A, B := x[2+2*i], x[3+2*i]
			vars = append(vars, A, B)
			ad[m] = func(h *Node) *Node {
				t := DotGeneral(h, []int{2}, nil, ConvertDType(A, h.DType()), []int{1}, nil)
				return MulScalar(DotGeneral(t, []int{2}, nil, ConvertDType(B, h.DType()), []int{1}, nil), scale)
			}
		}
		res := model.Forward(cfg, p, x[0], model.ForwardOptions{Adapters: ad})
		nll, _ := model.NLLSum(res.Logits, x[1])
		grads := Gradient(nll, vars...)
		for i := range grads {
			grads[i] = ConvertDType(grads[i], dtypes.Float64)
		}
		return grads
	}, args...)
	if err != nil {
		return nil, nil, err
	}
	for i := 0; i < len(out); i += 2 {
		gA = append(gA, tensors.MustCopyFlatData[float64](out[i]))
		gB = append(gB, tensors.MustCopyFlatData[float64](out[i+1]))
	}
	return gA, gB, nil
}

func addAll(acc, v [][]float64) [][]float64 {
	if acc == nil {
		return v
	}
	for i := range v {
		for j := range v[i] {
			acc[i][j] += v[i][j]
		}
	}
	return acc
}

func scaleAll(v []float64, s float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = x * s
	}
	return out
}

// maskAdapter zeroes the LoRA factors of block b's removed units: B rows of q/k/v/gate/up,
// A columns of o_proj/down_proj, so the merged delta stays zero there.
func maskAdapter(a *retrain.Adapter, cfg *model.Config, u prune.LayerUnits, b int) error {
	heads, kv := expand(u.Heads, cfg.HeadDim), expand(u.KVHeads, cfg.HeadDim)
	edits := []struct {
		mod  string
		isA  bool
		drop []int
	}{
		{"self_attn.q_proj", false, heads}, {"self_attn.k_proj", false, kv}, {"self_attn.v_proj", false, kv},
		{"self_attn.o_proj", true, heads},
		{"mlp.gate_proj", false, u.Channels}, {"mlp.up_proj", false, u.Channels}, {"mlp.down_proj", true, u.Channels},
	}
	for _, e := range edits {
		mod := layerName(b) + e.mod
		t := a.B[mod]
		if e.isA {
			t = a.A[mod]
		}
		if t == nil || len(e.drop) == 0 {
			continue
		}
		dims := t.Shape().Dimensions
		vals := tensors.MustCopyFlatData[float32](t)
		for _, j := range e.drop {
			if e.isA { // A [r, in]: column j
				for k := 0; k < dims[0]; k++ {
					vals[k*dims[1]+j] = 0
				}
			} else { // B [out, r]: row j
				for k := 0; k < dims[1]; k++ {
					vals[j*dims[1]+k] = 0
				}
			}
		}
		nt := tensors.FromFlatDataAndDimensions(vals, dims...)
		if e.isA {
			a.A[mod] = nt
		} else {
			a.B[mod] = nt
		}
	}
	return nil
}
