package retrain

// Training with the rematerialised backward (Options.Remat): each micro-batch runs
// model.Runner.RematTrain, whose block graphs add their gradients into the accumulators (one
// per trained tensor) in place of the whole-model Gradient; one more graph applies AdamW.

import (
	"fmt"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph code reads like maths
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/shortllm/shortllm/internal/memplan"
	"github.com/shortllm/shortllm/internal/model"
)

// RematDefault is the `--remat auto` choice for training m at micro-batches of microBatch
// rows of seqLen tokens: on when the activations a whole-graph backward saves would outweigh
// the weights (memplan.RematDefault, in the model's compute dtype).
func RematDefault(m *model.Model, microBatch, seqLen int) bool {
	return memplan.RematDefault(m.Config, m.ComputeDType().Size(), max(microBatch, 1), max(seqLen, 1))
}

// rematPlan maps the trained tensors onto RematTrain's graphs.
type rematPlan struct {
	// blocks[i]: indices into names of block i's trained tensors — LoRA: A, B of each of the
	// block's modules (modules[i] lists them, as indices into Adapter.Modules); CPT: the
	// block's weights in BlockTensorNames order.
	blocks  [][]int
	modules [][]int
	outer   []string // CPT: trained weights outside the blocks
}

func (t *Trainer) planRemat() (*rematPlan, error) {
	L := t.cfg.NumHiddenLayers
	rp := &rematPlan{blocks: make([][]int, L), modules: make([][]int, L)}
	covered := 0
	if t.o.Mode == ModeLoRA {
		for j, mod := range t.o.Adapter.Modules {
			i := -1
			if _, err := fmt.Sscanf(mod, "model.layers.%d.", &i); err != nil || i < 0 || i >= L {
				return nil, fmt.Errorf("remat: adapter module %s is not in a block: %w", mod, ErrOptions)
			}
			rp.modules[i] = append(rp.modules[i], j)
			rp.blocks[i] = append(rp.blocks[i], 2*j, 2*j+1)
		}
		return rp, nil
	}
	for i := range L {
		for _, n := range t.cfg.BlockTensorNames(i) {
			k, ok := t.index[n]
			if !ok {
				return nil, fmt.Errorf("remat: block tensor %s is not among the model's weights: %w", n, ErrOptions)
			}
			rp.blocks[i] = append(rp.blocks[i], k)
			covered++
		}
	}
	for _, n := range t.names {
		switch {
		case strings.HasPrefix(n, "model.layers."):
		case n == "model.embed_tokens.weight" || n == "model.norm.weight" || n == "lm_head.weight":
			rp.outer = append(rp.outer, n)
			covered++
		default:
			return nil, fmt.Errorf("remat: no rematerialised gradient for tensor %s: %w", n, ErrOptions)
		}
	}
	if covered != len(t.names) {
		return nil, fmt.Errorf("remat: %d of %d trained tensors have a rematerialised gradient: %w", covered, len(t.names), ErrOptions)
	}
	return rp, nil
}

// addGrads is the accumulation every remat graph does: acc + g, g widened to float32.
func addGrads(grads, acc []*Node) []*Node {
	out := make([]*Node, len(grads))
	for k, g := range grads {
		out[k] = Add(acc[k], widen(g))
	}
	return out
}

// rematOptions builds RematTrain's options for one micro-batch: acc are the accumulators
// (replaced in place by the caller from the result), rngs the LoRA modules' dropout states.
func (t *Trainer) rematOptions(acc, rngs []*tensors.Tensor, invN *tensors.Tensor) model.RematOptions {
	rp := t.remat
	pick := func(idx []int, from []*tensors.Tensor) []*tensors.Tensor {
		out := make([]*tensors.Tensor, len(idx))
		for k, j := range idx {
			out[k] = from[j]
		}
		return out
	}
	o := model.RematOptions{
		Key:   "/" + t.key("remat"),
		Scale: invN,
		Extra: func(i int) []*tensors.Tensor { return pick(rp.blocks[i], acc) },
		Grad: func(_ int, _ model.Params, _ []string, grads, extra []*Node) []*Node {
			return addGrads(grads, extra)
		},
	}
	if t.o.Mode == ModeLoRA {
		o.Inputs = func(i int) []*tensors.Tensor {
			in := pick(rp.blocks[i], t.st.train)
			if rngs != nil {
				in = append(in, pick(rp.modules[i], rngs)...)
			}
			return in
		}
		o.InputGrads = func(i int) int { return len(rp.blocks[i]) }
		dropout := rngs != nil
		o.Adapters = func(i int, in []*Node) map[string]model.Adapter {
			ad := map[string]model.Adapter{}
			mods := rp.modules[i]
			for k, j := range mods {
				var rng *Node
				if dropout {
					rng = in[2*len(mods)+k]
				}
				ad[t.o.Adapter.Modules[j]] = t.loraDelta(in[2*k], in[2*k+1], rng)
			}
			return ad
		}
		return o
	}
	o.Names = func(i int) []string { return t.cfg.BlockTensorNames(i) }
	o.Outer = rp.outer
	o.OuterExtra = func(name string) *tensors.Tensor { return acc[t.index[name]] }
	o.OuterGrad = func(_ model.Params, _ []string, grads, extra []*Node) []*Node { return addGrads(grads, extra) }
	return o
}

// moduleRNGs splits a micro-batch's dropout state into one per adapter module, in the order
// and by the same splits as adapters does in the whole-graph step (so both draw the same
// masks); nil without dropout.
func (t *Trainer) moduleRNGs(rng *tensors.Tensor) ([]*tensors.Tensor, error) {
	if t.o.Mode != ModeLoRA || t.o.Adapter.Config.LoraDropout <= 0 {
		return nil, nil
	}
	return t.r.Run(t.key("rngs"), func(_ model.Params, x []*Node) []*Node {
		state := x[0]
		out := make([]*Node, len(t.o.Adapter.Modules))
		for j := range out {
			state, out[j] = RNGStateSplit(state)
		}
		return out
	}, rng)
}

// accumulateRemat is accumulateAndStep with RematTrain's gradients: every micro-batch adds
// its gradients of Σ NLL · invN into the accumulators, then one graph applies AdamW.
func (t *Trainer) accumulateRemat(micros []microBatch, hp, invN *tensors.Tensor, step int) (lossSum, norm float64, err error) {
	n := len(t.names)
	acc := t.zeros()
	for i, mb := range micros {
		rng, err := RNGStateFromSeed(rngSeed(t.o.Seed, step, i))
		if err != nil {
			return 0, 0, err
		}
		rngs, err := t.moduleRNGs(rng)
		if err != nil {
			return 0, 0, err
		}
		res, err := t.r.RematTrain(mb.ids, mb.labels, t.rematOptions(acc, rngs, invN))
		if err != nil {
			return 0, 0, err
		}
		for b, idx := range t.remat.blocks {
			for k, j := range idx {
				acc[j] = res.Blocks[b][k]
			}
		}
		for name, v := range res.Outer {
			acc[t.index[name]] = v
		}
		lossSum += res.NLL
	}
	args := append(append(append(append(t.trainArgs(), acc...), t.st.m...), t.st.v...), hp)
	out, err := t.r.RunDonating(t.key("adamw"), t.adamWGraph, t.donate(len(args), 3), args...)
	if err != nil {
		return 0, 0, err
	}
	norm = scalar(out[3*n])
	t.stepped(out[:3*n], out[3*n+1:])
	return lossSum, norm, nil
}

// adamWGraph applies AdamW to accumulated gradients: inputs are the trained tensors (as for
// the step graph), the accumulators, m, v and the hyper-parameters; outputs the new trained
// tensors and moments, the gradient norm and, for a master copy, the bf16 casts.
func (t *Trainer) adamWGraph(p model.Params, extra []*Node) []*Node {
	_, upd, rest := t.splitExtra(p, extra)
	n := len(t.names)
	out, norm := t.adamW(upd, rest[:n], rest[n:2*n], rest[2*n:3*n], rest[3*n])
	out = append(out[:3*n:3*n], ConvertDType(norm, dtypes.Float64))
	return append(out, t.casts(out[:n])...)
}
