package retrain

import (
	"math"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph code reads like maths
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/shortllm/shortllm/internal/backend"
)

// refAdamW is torch.optim.AdamW + clip_grad_norm_ in float64, one step.
func refAdamW(o AdamW, t int, lr float64, p, g, m, v [][]float64, decay []bool) float64 {
	var sq float64
	for _, gi := range g {
		for _, x := range gi {
			sq += x * x
		}
	}
	norm := math.Sqrt(sq)
	coef := 1.0
	if o.ClipNorm > 0 {
		coef = math.Min(1, o.ClipNorm/(norm+1e-6))
	}
	bc1, bc2 := 1-math.Pow(o.Beta1, float64(t)), 1-math.Pow(o.Beta2, float64(t))
	for i := range p {
		for j := range p[i] {
			gr := g[i][j] * coef
			if decay[i] {
				p[i][j] *= 1 - lr*o.WeightDecay
			}
			m[i][j] = o.Beta1*m[i][j] + (1-o.Beta1)*gr
			v[i][j] = o.Beta2*v[i][j] + (1-o.Beta2)*gr*gr
			p[i][j] -= lr / bc1 * m[i][j] / (math.Sqrt(v[i][j])/math.Sqrt(bc2) + o.Eps)
		}
	}
	return norm
}

// TestAdamW_MatchesTorchFormula runs five updates with decay (on one tensor only), clipping
// that bites and a changing lr, against the float64 reference.
func TestAdamW_MatchesTorchFormula(t *testing.T) {
	b, err := backend.New("go", nil)
	if err != nil {
		t.Fatal(err)
	}
	o := AdamW{LR: 1e-2, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1, ClipNorm: 0.5}
	decay := []bool{true, false}
	p := [][]float64{{0.5, -1, 2}, {0.1, 0.2}}
	m := [][]float64{{0, 0, 0}, {0, 0}}
	v := [][]float64{{0, 0, 0}, {0, 0}}
	exec, err := NewExec(b, func(in []*Node) []*Node {
		np, nm, nv, norm := adamWUpdate(in[0:2], in[2:4], in[4:6], in[6:8], decay, in[8])
		return append(append(append(np, nm...), nv...), norm)
	})
	if err != nil {
		t.Fatal(err)
	}
	state := make([]*tensors.Tensor, 0, 6)
	for _, set := range [][][]float64{p, m, v} {
		for _, x := range set {
			state = append(state, tensors.FromFlatDataAndDimensions(f32(x), len(x)))
		}
	}
	for step := 1; step <= 5; step++ {
		g := [][]float64{{float64(step), -0.5, 0.25}, {-2, 0.01 * float64(step)}}
		lr := o.LR * float64(6-step) / 5
		args := []any{state[0], state[1]}
		for _, x := range g {
			args = append(args, tensors.FromFlatDataAndDimensions(f32(x), len(x)))
		}
		args = append(args, state[2], state[3], state[4], state[5], o.hyperParams(step, lr))
		out, err := exec.Exec(args...)
		if err != nil {
			t.Fatal(err)
		}
		norm := refAdamW(o, step, lr, p, g, m, v, decay)
		if got := float64(tensors.MustCopyFlatData[float32](out[6])[0]); math.Abs(got-norm) > 1e-5*norm {
			t.Fatalf("step %d: grad norm %g, want %g", step, got, norm)
		}
		state = out[:6]
		for i, want := range append(append(append([][]float64{}, p...), m...), v...) {
			got := tensors.MustCopyFlatData[float32](state[i])
			for j := range want {
				if math.Abs(float64(got[j])-want[j]) > 1e-6+1e-5*math.Abs(want[j]) {
					t.Fatalf("step %d: state %d[%d] = %g, want %g", step, i, j, got[j], want[j])
				}
			}
		}
	}
}

func f32(x []float64) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(v)
	}
	return out
}

// TestSchedule_HFValues checks get_scheduler's lambdas at known points.
func TestSchedule_HFValues(t *testing.T) {
	cases := []struct {
		kind string
		step int
		want float64
	}{
		{"linear", 0, 0}, {"linear", 5, 0.5}, {"linear", 10, 1}, {"linear", 55, 0.5}, {"linear", 100, 0},
		{"cosine", 0, 0}, {"cosine", 10, 1}, {"cosine", 55, 0.5}, {"cosine", 100, 0},
		{"constant", 5, 0.5}, {"constant", 10, 1}, {"constant", 99, 1},
	}
	for _, c := range cases {
		got := Schedule{Kind: c.kind, Warmup: 10, Total: 100}.Factor(c.step)
		if math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%s(%d) = %g, want %g", c.kind, c.step, got, c.want)
		}
	}
	if f := (Schedule{Kind: "linear", Total: 4}).Factor(0); f != 1 {
		t.Errorf("no warmup: first update factor %g, want 1", f)
	}
}
