package width

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph code reads like maths
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/prune"
	"github.com/shortllm/shortllm/internal/retrain"
	"github.com/shortllm/shortllm/internal/testutil"
)

// randomAdapter is a LoRA on every linear layer with random A and B (B is zero after PEFT's
// init, which would make the estimate trivially W-free).
func randomAdapter(t *testing.T, cfg *model.Config) *retrain.Adapter {
	t.Helper()
	a, err := retrain.NewAdapter(cfg, retrain.NewLoRAConfig(4, 8, 0, retrain.DefaultTargetModules, false), 3)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for m, b := range a.B {
		v := tensors.MustCopyFlatData[float32](b)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * 0.02)
		}
		a.B[m] = tensors.FromFlatDataAndDimensions(v, b.Shape().Dimensions...)
	}
	return a
}

// TestLoRAImportance_MatchesFloat64Reference: Ĝ = G_B·A + B·G_A − G_B·G_A from float64
// gradients of the mean loss w.r.t. the LoRA factors (one batch), I = |Ĝ ⊙ (W + s·BA)| per
// row (column for o/down), normalised per module, summed per KV group and channel.
func TestLoRAImportance_MatchesFloat64Reference(t *testing.T) {
	windows := calibWindows(t, 2)
	m := loadShared(t, "deep16")
	cfg := m.Config
	a := randomAdapter(t, cfg)
	blocks := []int{1, 9}
	got, err := loraImportance(model.NewRunner(testBackend(t), m), a, windows, blocks, UnitKVGroup, 1)
	if err != nil {
		t.Fatal(err)
	}
	m64, err := model.Load(m.Dir, model.LoadOptions{DType: dtypes.Float64})
	if err != nil {
		t.Fatal(err)
	}
	var mods []string
	for _, b := range blocks {
		for _, mm := range taylorModules {
			mods = append(mods, layerName(b)+mm.name)
		}
	}
	in, lab := make([][]int, len(windows)), make([][]int, len(windows))
	for i, w := range windows {
		in[i], lab[i] = w[:len(w)-1], w[1:]
	}
	inT, _ := model.IDsTensor(in)
	labT, _ := model.IDsTensor(lab)
	args := []*tensors.Tensor{inT, labT}
	f64 := func(t *tensors.Tensor) []float64 {
		v := tensors.MustCopyFlatData[float32](t)
		out := make([]float64, len(v))
		for i, x := range v {
			out[i] = float64(x)
		}
		return out
	}
	for _, mod := range mods {
		args = append(args, tensors.FromFlatDataAndDimensions(f64(a.A[mod]), a.A[mod].Shape().Dimensions...),
			tensors.FromFlatDataAndDimensions(f64(a.B[mod]), a.B[mod].Shape().Dimensions...))
	}
	s := a.Config.Scale()
	grads, err := model.NewRunner(testBackend(t), m64).Run("test/lora64", func(p model.Params, x []*Node) []*Node {
		ad := map[string]model.Adapter{}
		var vars []*Node
		for i, mod := range mods {
			A, B := x[2+2*i], x[3+2*i]
			vars = append(vars, A, B)
			ad[mod] = func(h *Node) *Node { // s · (h Aᵀ) Bᵀ, contracting over in then r
				ha := DotGeneral(h, []int{2}, nil, A, []int{1}, nil)
				return MulScalar(DotGeneral(ha, []int{2}, nil, B, []int{1}, nil), s)
			}
		}
		res := model.Forward(m64.Config, p, x[0], model.ForwardOptions{Adapters: ad})
		sum, n := model.NLLSum(res.Logits, x[1])
		return Gradient(Div(sum, n), vars...)
	}, args...)
	if err != nil {
		t.Fatal(err)
	}
	r := a.Config.R
	for bi, b := range blocks {
		var lines [][]float64
		for k, mm := range taylorModules {
			i := bi*7 + k
			mod := mods[i]
			W := tensors.MustCopyFlatData[float64](m64.Weights[mod+".weight"])
			A, B := f64(a.A[mod]), f64(a.B[mod])
			gA, gB := tensors.MustCopyFlatData[float64](grads[2*i]), tensors.MustCopyFlatData[float64](grads[2*i+1])
			out := len(B) / r
			inDim := len(A) / r
			n := out
			if !mm.rows {
				n = inDim
			}
			line := make([]float64, n)
			for o := 0; o < out; o++ {
				for j := 0; j < inDim; j++ {
					var ghat, ba float64
					for q := 0; q < r; q++ {
						ghat += gB[o*r+q]*A[q*inDim+j] + B[o*r+q]*gA[q*inDim+j] - gB[o*r+q]*gA[q*inDim+j]
						ba += B[o*r+q] * A[q*inDim+j]
					}
					v := math.Abs(ghat * (W[o*inDim+j] + s*ba))
					if mm.rows {
						line[o] += v
					} else {
						line[j] += v
					}
				}
			}
			var norm float64
			for _, v := range line {
				norm += v * v
			}
			for j := range line {
				line[j] /= math.Sqrt(norm) + 1e-8
			}
			lines = append(lines, line)
		}
		dh, G := cfg.HeadDim, cfg.KVGroups()
		heads := make([]float64, cfg.NumKeyValueHeads)
		for g := range heads {
			for j := g * G * dh; j < (g+1)*G*dh; j++ {
				heads[g] += lines[0][j] + lines[3][j]
			}
			for j := g * dh; j < (g+1)*dh; j++ {
				heads[g] += lines[1][j] + lines[2][j]
			}
		}
		chans := make([]float64, cfg.IntermediateSize)
		for c := range chans {
			chans[c] = lines[4][c] + lines[5][c] + lines[6][c]
		}
		checkScores(t, "loraprune heads", b, got.Heads[b], heads)
		checkScores(t, "loraprune channels", b, got.Channels[b], chans)
	}
}

// TestLoRAPrune_ProgressiveSmoke: two rounds of two LoRA updates reach the ratio; blocks
// 0 (10% of 16 rounds down to 1) and 15 stay whole; the pruned checkpoint computes what the
// masked, merged model does.
func TestLoRAPrune_ProgressiveSmoke(t *testing.T) {
	m := loadShared(t, "deep16")
	data, err := retrain.LoadDataset(testutil.SharedDir(t, "data", "stories", "lora_batch4x128.json"), nil, retrain.DataOptions{SeqLen: 128})
	if err != nil {
		t.Fatal(err)
	}
	lp := LoRAPruneOptions{Rounds: 2, StepsPerRound: 2, FinalSteps: 1, Data: data,
		LoRA: retrain.NewLoRAConfig(4, 8, 0, retrain.DefaultTargetModules, false),
		Train: retrain.Options{Optim: retrain.AdamW{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}, Schedule: "constant",
			BatchSize: 4, MicroBatchSize: 4, Seed: 1}}
	res, merged, err := LoRAPrune(model.NewRunner(testBackend(t), m), Options{Ratio: 0.2, Windows: calibWindows(t, 2)}, lp)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []int{0, 15} {
		if u := res.Plan.Layers[b]; len(u.Heads)+len(u.Channels) > 0 {
			t.Errorf("block %d is kept by LoRAPrune's freeze but lost %v", b, u)
		}
	}
	pruned, err := Apply(merged, res.Plan, false)
	if err != nil {
		t.Fatal(err)
	}
	before, after := prune.CountParams(m.Config).Total, prune.CountParams(pruned.Config).Total
	if share := float64(before-after) / float64(before); math.Abs(share-0.2) > 0.01 {
		t.Errorf("removed %.3f of the parameters, want 0.20", share)
	}
	rows := [][]int{{1, 5, 9, 13, 200, 7, 42, 3}}
	if e := relErr(logits(t, pruned, rows), logits(t, merged, rows)); e > 1e-5 {
		t.Errorf("pruned vs masked merged model: relative error %.3g", e)
	}
}
