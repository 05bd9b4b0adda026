package retrain

// AdamW (torch.optim.AdamW, amsgrad=False) with global-norm clipping, as one GoMLX graph,
// and the learning-rate schedules of transformers' get_scheduler.

import (
	"fmt"
	"math"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph code reads like maths
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// AdamW holds the optimizer's hyper-parameters.
type AdamW struct {
	LR          float64
	Beta1       float64
	Beta2       float64
	Eps         float64
	WeightDecay float64
	// ClipNorm is clip_grad_norm_'s max_norm; ≤ 0 disables clipping.
	ClipNorm float64
}

// Positions in the per-step hyper-parameter vector the step graph reads, so one compiled
// graph serves every step (lr and the bias corrections change each step).
const (
	hpDecay    = iota // 1 − lr·weight_decay
	hpStepSize        // lr / (1 − β₁ᵗ)
	hpBC2Sqrt         // √(1 − β₂ᵗ)
	hpBeta1
	hpBeta2
	hpEps
	hpClip   // max_norm, +Inf without clipping
	hpLength // vector length
)

// hyperParams computes the scalars of update t (1-based) at learning rate lr, in float64 as
// torch does on the host, rounded once to float32.
func (o AdamW) hyperParams(t int, lr float64) *tensors.Tensor {
	hp := make([]float32, hpLength)
	hp[hpDecay] = float32(1 - lr*o.WeightDecay)
	hp[hpStepSize] = float32(lr / (1 - math.Pow(o.Beta1, float64(t))))
	hp[hpBC2Sqrt] = float32(math.Sqrt(1 - math.Pow(o.Beta2, float64(t))))
	hp[hpBeta1] = float32(o.Beta1)
	hp[hpBeta2] = float32(o.Beta2)
	hp[hpEps] = float32(o.Eps)
	hp[hpClip] = float32(math.Inf(1))
	if o.ClipNorm > 0 {
		hp[hpClip] = float32(o.ClipNorm)
	}
	return tensors.FromFlatDataAndDimensions(hp, hpLength)
}

// adamWUpdate applies one AdamW step to params given their gradients and moments. decay[i]
// says whether param i gets weight decay (HF exempts biases and norm weights). It returns
// the new params and moments and the gradient norm before clipping.
//
// torch's step, per parameter:
//
//	g *= min(1, max_norm / (‖all g‖ + 1e-6))          (clip_grad_norm_)
//	p *= 1 − lr·wd
//	m.lerp_(g, 1−β₁);  v = β₂·v + (1−β₂)·g²
//	p −= lr/(1−β₁ᵗ) · m / (√v / √(1−β₂ᵗ) + eps)
func adamWUpdate(params, grads, m, v []*Node, decay []bool, hp *Node) (newP, newM, newV []*Node, norm *Node) {
	at := func(i int) *Node { return Reshape(Slice(hp, AxisElem(i)), 1) }
	sq := make([]*Node, len(grads))
	for i, g := range grads {
		sq[i] = Reshape(ReduceAllSum(Square(g)), 1)
	}
	norm = Sqrt(ReduceAllSum(Concatenate(sq, 0)))
	coef := Min(Div(Reshape(at(hpClip), 1), AddScalar(Reshape(norm, 1), 1e-6)), OnesLike(Reshape(norm, 1)))
	coef = Reshape(coef)
	b1, b2 := Reshape(at(hpBeta1)), Reshape(at(hpBeta2))
	for i, p := range params {
		g := Mul(grads[i], coef)
		if decay[i] {
			p = Mul(p, Reshape(at(hpDecay)))
		}
		// torch's lerp for weight < 0.5: m + w·(g − m).
		mi := Add(m[i], Mul(OneMinus(b1), Sub(g, m[i])))
		vi := Add(Mul(v[i], b2), Mul(OneMinus(b2), Mul(g, g)))
		denom := Add(Div(Sqrt(vi), Reshape(at(hpBC2Sqrt))), Reshape(at(hpEps)))
		p = Sub(p, Mul(Reshape(at(hpStepSize)), Div(mi, denom)))
		newP, newM, newV = append(newP, p), append(newM, mi), append(newV, vi)
	}
	return newP, newM, newV, norm
}

// Schedule is the learning-rate multiplier of transformers' get_scheduler at update index
// step (0-based: the first update uses lambda(0), as LambdaLR does).
type Schedule struct {
	Kind   string // linear, cosine or constant (with warmup when Warmup > 0)
	Warmup int
	Total  int
}

// ValidSchedule names the accepted schedule kinds.
func ValidSchedule(kind string) error {
	switch kind {
	case "linear", "cosine", "constant":
		return nil
	}
	return fmt.Errorf("unknown schedule %q (want linear, cosine or constant)", kind)
}

// Factor returns lambda(step).
func (s Schedule) Factor(step int) float64 {
	if step < s.Warmup {
		return float64(step) / float64(max(1, s.Warmup))
	}
	progress := float64(step-s.Warmup) / float64(max(1, s.Total-s.Warmup))
	switch s.Kind {
	case "linear":
		return math.Max(0, float64(s.Total-step)/float64(max(1, s.Total-s.Warmup)))
	case "cosine":
		return math.Max(0, 0.5*(1+math.Cos(math.Pi*progress)))
	}
	return 1
}

// DefaultAdamW is a phase's optimiser unless told otherwise: the paper's CPT settings (betas
// 0.9/0.95, weight decay 0.1) and HF Trainer's for LoRA (0.9/0.999, no decay); both use eps
// 1e-8 and clip the global gradient norm at 1. The retrain verb and the pipeline both start
// from it.
func DefaultAdamW(phase Mode, lr float64) AdamW {
	o := AdamW{LR: lr, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, ClipNorm: 1}
	if phase == ModeCPT {
		o.Beta2, o.WeightDecay = 0.95, 0.1
	}
	return o
}
