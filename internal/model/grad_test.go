package model

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// tinyConfig exercises every branch of the block: GQA, biases, llama3 rope scaling.
func tinyConfig(t testing.TB) *Config {
	t.Helper()
	cfg, err := ParseConfig([]byte(`{"model_type":"llama","hidden_size":16,"intermediate_size":24,
	"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"head_dim":6,
	"vocab_size":20,"max_position_embeddings":64,"rms_norm_eps":1e-5,"rope_theta":10000,
	"attention_bias":true,"tie_word_embeddings":false,
	"rope_scaling":{"rope_type":"llama3","factor":4,"low_freq_factor":1,"high_freq_factor":4,"original_max_position_embeddings":8}}`))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func randomTensor(rng *rand.Rand, dt dtypes.DType, dims ...int) *tensors.Tensor {
	n := shapes.Make(dt, dims...).Size()
	v := make([]float64, n)
	for i := range v {
		v[i] = rng.NormFloat64()
	}
	if dt == dtypes.Float32 {
		f := make([]float32, n)
		for i := range v {
			f[i] = float32(v[i])
		}
		return tensors.FromFlatDataAndDimensions(f, dims...)
	}
	return tensors.FromFlatDataAndDimensions(v, dims...)
}

// TestFastDotGeneralVJP_MatchesStock compares the two-DotGeneral gradient with GoMLX's own on
// every contraction pattern the model, LoRA and the KV cache use.
func TestFastDotGeneralVJP_MatchesStock(t *testing.T) {
	RegisterFastDotGeneralVJP()
	cases := []struct {
		name           string
		lhs, rhs       []int
		lc, lb, rc, rb []int
	}{
		{"linear", []int{2, 3, 5}, []int{4, 5}, []int{2}, nil, []int{1}, nil},
		{"lora_A", []int{2, 3, 5}, []int{2, 5}, []int{2}, nil, []int{1}, nil},
		{"scores", []int{2, 3, 2, 2, 4}, []int{2, 5, 2, 4}, []int{4}, []int{0, 2}, []int{3}, []int{0, 2}},
		{"probs_v", []int{2, 2, 3, 2, 5}, []int{2, 5, 2, 4}, []int{4}, []int{0, 1}, []int{1}, []int{0, 2}},
		{"rotate_half", []int{2, 3, 2, 2, 3}, []int{2, 2}, []int{3}, nil, []int{1}, nil},
		{"kv_write", []int{3, 7}, []int{2, 3, 2, 4}, []int{0}, nil, []int{1}, nil},
		{"multi_contract_swapped", []int{3, 4, 5}, []int{5, 2, 4}, []int{1, 2}, nil, []int{2, 0}, nil},
	}
	b := testBackend(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := randomTensor(rng, dtypes.Float64, c.lhs...)
			bb := randomTensor(rng, dtypes.Float64, c.rhs...)
			e := MustNewExec(b, func(x, y *Node) []*Node {
				out := DotGeneral(x, c.lc, c.lb, y, c.rc, c.rb)
				v := IotaFull(x.Graph(), out.Shape())
				v = Sin(v) // an adjoint without structure
				fast := fastDotGeneralVJP(out, []*Node{v}, shapes.Shape{})
				stock := StockDotGeneralVJP()(out, []*Node{v}, shapes.Shape{})
				return []*Node{fast[0], fast[1], stock[0], stock[1]}
			})
			res := e.MustExec(a, bb)
			for i := 0; i < 2; i++ {
				got := tensors.MustCopyFlatData[float64](res[i])
				want := tensors.MustCopyFlatData[float64](res[i+2])
				if !res[i].Shape().Equal(res[i+2].Shape()) {
					t.Fatalf("operand %d: shape %s, stock %s", i, res[i].Shape(), res[i+2].Shape())
				}
				for j := range want {
					if math.Abs(got[j]-want[j]) > 1e-12*(1+math.Abs(want[j])) {
						t.Fatalf("operand %d element %d: %g, stock %g", i, j, got[j], want[j])
					}
				}
			}
		})
	}
}

// TestGradients_FiniteDifferences checks autodiff of the mean NLL against central differences
// for sampled coordinates of every weight tensor, in float64.
func TestGradients_FiniteDifferences(t *testing.T) {
	cfg := tinyConfig(t)
	m, err := Init(cfg, 7, 0.3, dtypes.Float64)
	if err != nil {
		t.Fatal(err)
	}
	r := NewRunner(testBackend(t), m)
	ids := [][]int{{1, 5, 7, 3, 19, 2, 8}, {4, 4, 11, 0, 6, 13, 9}}
	in := make([][]int, len(ids))
	lab := make([][]int, len(ids))
	for i, s := range ids {
		in[i], lab[i] = append([]int(nil), s[:len(s)-1]...), append([]int(nil), s[1:]...)
	}
	lab[1][2] = IgnoreIndex
	inT, _ := IDsTensor(in)
	labT, _ := IDsTensor(lab)
	names := m.Names()
	lossFn := func(p Params, x []*Node) *Node {
		res := Forward(cfg, p, x[0], ForwardOptions{})
		sum, count := NLLSum(res.Logits, x[1])
		return Div(sum, count)
	}
	out, err := r.Run("grad", func(p Params, x []*Node) []*Node {
		loss := lossFn(p, x)
		nodes := make([]*Node, len(names))
		for i, n := range names {
			nodes[i] = p[n]
		}
		return append([]*Node{loss}, Gradient(loss, nodes...)...)
	}, inT, labT)
	if err != nil {
		t.Fatal(err)
	}
	lossAt := func() float64 {
		o, err := r.Run("loss", func(p Params, x []*Node) []*Node { return []*Node{lossFn(p, x)} }, inT, labT)
		if err != nil {
			t.Fatal(err)
		}
		return tensors.MustCopyFlatData[float64](o[0])[0]
	}
	rng := rand.New(rand.NewPCG(3, 4))
	const h = 1e-5
	for k, name := range names {
		grad := tensors.MustCopyFlatData[float64](out[k+1])
		w := m.Weights[name]
		for trial := 0; trial < 3; trial++ {
			j := rng.IntN(len(grad))
			orig := tensors.MustCopyFlatData[float64](w)
			perturb := func(d float64) float64 {
				v := append([]float64(nil), orig...)
				v[j] += d
				m.Weights[name] = tensors.FromFlatDataAndDimensions(v, w.Shape().Dimensions...)
				return lossAt()
			}
			fd := (perturb(h) - perturb(-h)) / (2 * h)
			m.Weights[name] = w
			if diff := math.Abs(fd - grad[j]); diff > 1e-6+1e-4*math.Abs(fd) {
				t.Errorf("%s[%d]: autodiff %.9g, finite difference %.9g", name, j, grad[j], fd)
			}
		}
	}
}
