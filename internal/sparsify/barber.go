package sparsify

// LLM-Barber (Su et al., 2024; github.com/YupengSu/LLM-Barber lib/llama.py prune_barber,
// mask_rebuild; lib/blockgpt.py): a one-shot rebuild of the masks of a block's self-attention
// and then its MLP, each as one unit. For every calibration window, the loss is the MSE
// between the sparse sub-block's output and the dense sub-block's output on the same
// (sparse-path) input; its gradient G with respect to the dense weights gives the score
// |W|·sqrt(mean over windows of G²) (--prune_metric WD). Per output row (--prune_granularity
// output1, the default), pruned weights are sorted by score descending and kept ones
// ascending; k = int(threshold·#{i : grown_i > pruned_i}) of the best pruned weights are
// regrown and as many of the worst kept ones pruned, so the sparsity is unchanged. For N:M the
// row's grown weights are matched by pruning the lowest-scoring kept weights of their own
// groups. As released (no --retain_reconstruction), the rebuilt matrices are dense ⊙ mask.
// The attention sub-block's output is isolated by zeroing down_proj in both the sparse and
// the dense forward; the MLP's is the block output with the rebuilt attention in both.

import (
	"fmt"
	"math"
	"sort"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph code reads like maths
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/shortllm/shortllm/internal/capture"
	"github.com/shortllm/shortllm/internal/model"
)

// barberPhases are the sub-blocks rebuilt in order, by their modules (indices in blockModules).
var barberPhases = []struct {
	name    string
	modules []int
}{
	{"attn", []int{0, 1, 2, 3}},
	{"mlp", []int{4, 5, 6}},
}

// barber rebuilds block b's masks; the sparse weights are in r.Model, the dense ones in dense.
func barber(r *model.Runner, sess *capture.Session, b int, dense map[string]Matrix, masks map[string]Mask, o Options) error {
	windows, err := splitWindows(sess.Hidden())
	if err != nil {
		return err
	}
	for _, ph := range barberPhases {
		scalers, err := barberScalers(r, b, ph.name, ph.modules, dense, windows)
		if err != nil {
			return err
		}
		for i, mi := range ph.modules {
			mod := blockModules[mi].name
			d := dense[mod]
			score := make([]float64, len(d.W))
			for j, w := range d.W {
				score[j] = math.Abs(w) * math.Sqrt(scalers[i][j])
			}
			rebuildMask(score, d.Rows, d.Cols, masks[mod], o.Pattern, o.BarberThreshold)
			if err := storeMatrix(r.Model, weightName(b, mod), maskedCopy(d, masks[mod])); err != nil {
				return err
			}
		}
	}
	return nil
}

// splitWindows turns the per-batch hidden states [b, T, D] into one [1, T, D] tensor per
// window: the scores average squared per-window gradients.
func splitWindows(batches []*tensors.Tensor) ([]*tensors.Tensor, error) {
	var out []*tensors.Tensor
	for _, h := range batches {
		dims := h.Shape().Dimensions
		v := model.Float32Values(h)
		per := dims[1] * dims[2]
		for w := 0; w < dims[0]; w++ {
			t, err := model.TensorFromFloat32(v[w*per:(w+1)*per], []int{1, dims[1], dims[2]}, h.DType())
			if err != nil {
				return nil, err
			}
			out = append(out, t)
		}
	}
	return out, nil
}

// barberScalers returns, per module of the phase, the mean over windows of (∂L/∂W)² at the
// dense weights.
func barberScalers(r *model.Runner, b int, phase string, modules []int, dense map[string]Matrix, windows []*tensors.Tensor) ([][]float64, error) {
	cfg := r.Model.Config
	names := make([]string, len(modules))
	extra := []*tensors.Tensor{nil}
	for i, mi := range modules {
		names[i] = weightName(b, blockModules[mi].name)
		d := dense[blockModules[mi].name]
		v := make([]float32, len(d.W))
		for j, x := range d.W {
			v[j] = float32(x)
		}
		t, err := model.TensorFromFloat32(v, []int{d.Rows, d.Cols}, r.Model.Weights[names[i]].DType())
		if err != nil {
			return nil, err
		}
		extra = append(extra, t)
	}
	down := weightName(b, "mlp.down_proj")
	fn := func(p model.Params, x []*Node) []*Node {
		sparse, full := clone(p), clone(p)
		for i, n := range names {
			full[n] = x[1+i]
		}
		if phase == "attn" { // no MLP: the block output is h + attention
			zero := ZerosLike(p[down])
			sparse[down], full[down] = zero, zero
		}
		opts := model.ForwardOptions{FromBlock: b, Until: b + 1, InputHidden: x[0], NoHead: true}
		target := StopGradient(model.Forward(cfg, sparse, nil, opts).Last)
		out := model.Forward(cfg, full, nil, opts).Last
		loss := ReduceAllMean(Square(Sub(ConvertDType(out, dtypes.Float32), ConvertDType(target, dtypes.Float32))))
		return Gradient(loss, x[1:]...)
	}
	scalers := make([][]float64, len(modules))
	for i, mi := range modules {
		d := dense[blockModules[mi].name]
		scalers[i] = make([]float64, len(d.W))
	}
	key := fmt.Sprintf("sparsify/barber/%d/%s", b, phase)
	for _, h := range windows {
		extra[0] = h
		grads, err := r.Run(key, fn, extra...)
		if err != nil {
			return nil, fmt.Errorf("barber gradients: %w", err)
		}
		for i, g := range grads {
			for j, v := range model.Float32Values(g) {
				scalers[i][j] += float64(v) * float64(v) / float64(len(windows))
			}
			g.FinalizeAll()
		}
	}
	return scalers, nil
}

func clone(p model.Params) model.Params {
	c := make(model.Params, len(p))
	for k, v := range p {
		c[k] = v
	}
	return c
}

// barberThresholds is find_threshold: k = int(threshold·#{i : grow_i > prune_i}) over the
// paired sorted lists; it returns the k-th best pruned score and k-th worst kept score (the
// last one when k reaches a list's end), strictly beyond which weights swap.
func barberThresholds(grow, prune []float64, threshold float64) (g, p float64) {
	if len(grow) == 0 || len(prune) == 0 {
		return math.Inf(1), math.Inf(-1)
	}
	sort.Sort(sort.Reverse(sort.Float64Slice(grow)))
	sort.Float64s(prune)
	recons := 0
	for i := 0; i < min(len(grow), len(prune)); i++ {
		if grow[i] > prune[i] {
			recons++
		}
	}
	k := int(float64(recons) * threshold)
	return grow[min(k, len(grow)-1)], prune[min(k, len(prune)-1)]
}

// rebuildMask swaps weights of each row as mask_rebuild does (output1 granularity).
func rebuildMask(score []float64, rows, cols int, mask Mask, p Pattern, threshold float64) {
	for r := 0; r < rows; r++ {
		sc, mk := score[r*cols:(r+1)*cols], mask[r*cols:(r+1)*cols]
		var grow, prune []float64
		for j, pruned := range mk {
			if pruned {
				grow = append(grow, sc[j])
			} else {
				prune = append(prune, sc[j])
			}
		}
		gt, pt := barberThresholds(grow, prune, threshold)
		if p.Unstructured() {
			for j := range mk { // growth first, then pruning, as mask_rebuild assigns them
				if sc[j] > gt {
					mk[j] = false
				}
				if sc[j] < pt {
					mk[j] = true
				}
			}
			continue
		}
		for g := 0; g < cols; g += p.M {
			grown := 0
			for j := g; j < g+p.M; j++ {
				if mk[j] && sc[j] > gt {
					grown++
				}
			}
			kept := []float64{}
			for j := g; j < g+p.M; j++ {
				if !mk[j] {
					kept = append(kept, sc[j])
				}
			}
			sort.Float64s(kept)
			cut := math.Inf(1) // the grown-th lowest kept score; kept weights strictly below it go
			if grown < len(kept) {
				cut = kept[grown]
			}
			old := append(Mask(nil), mk[g:g+p.M]...)
			for j := g; j < g+p.M; j++ {
				if old[j-g] && sc[j] > gt {
					mk[j] = false
				}
				if !old[j-g] && sc[j] < cut {
					mk[j] = true
				}
			}
		}
	}
}
