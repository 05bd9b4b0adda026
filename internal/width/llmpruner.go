package width

// LLM-Pruner (Ma, Fang and Wang, "LLM-Pruner: On the Structural Pruning of Large Language
// Models", NeurIPS 2023), element-wise first-order Taylor importance ("Element¹"; the released
// hf_prune.py's --taylor param_first, the variant its README commands use):
//
//	I(W_k) = |W_k · ∂L/∂W_k|,   I(group) = Σ_{k ∈ group} I(W_k)   (--grouping_strategy sum)
//
// with L the mean next-token cross-entropy of the calibration windows. A head unit's group is
// its q/k/v rows and its o_proj columns (for a KV group: all its query heads' q rows and
// o columns and its k/v rows; for a single query head within a group: its q rows and o
// columns); a channel's group is its gate_proj and up_proj rows and its down_proj column.
// Only weights are scored (the released TaylorImportance reads layer.weight), so biases add
// nothing. Which blocks are candidates is the caller's (hf_prune's README keeps the first 4
// and the last 2 of LLaMA-7B's 32 blocks: --block_*_layer_start 4 --block_*_layer_end 30).

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph code reads like maths
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/shortllm/shortllm/internal/model"
)

// taylorModules are the scored linear layers; rows says whether a unit owns rows (output
// channels) of the weight or columns (input channels).
var taylorModules = []struct {
	name string
	rows bool
}{
	{"self_attn.q_proj", true}, {"self_attn.k_proj", true}, {"self_attn.v_proj", true}, {"self_attn.o_proj", false},
	{"mlp.gate_proj", true}, {"mlp.up_proj", true}, {"mlp.down_proj", false},
}

// llmPruner scores the head units and channels of the candidate blocks.
func llmPruner(r *model.Runner, windows [][]int, blocks []int, unit string, batch int, progress func(int, int)) (*Scores, error) {
	cfg := r.Model.Config
	var names []string
	for _, b := range blocks {
		for _, m := range taylorModules {
			names = append(names, fmt.Sprintf("model.layers.%d.%s.weight", b, m.name))
		}
	}
	var acc []*tensors.Tensor
	parts := split(windows, batch)
	for k, part := range parts {
		var err error
		if acc, err = accumulateWG(r, names, part, acc); err != nil {
			return nil, err
		}
		progress(k+1, len(parts))
	}
	tokens := float64(len(windows) * (len(windows[0]) - 1))
	lines, err := foldSalience(r, acc, tokens)
	if err != nil {
		return nil, err
	}
	s := newScores("llm-pruner", unit, cfg.NumHiddenLayers)
	for bi, b := range blocks {
		l := lines[bi*len(taylorModules) : (bi+1)*len(taylorModules)] // q, k, v, o, gate, up, down
		w := cfg.Width(b)
		heads := make([]float64, headUnits(w, unit))
		for u := range heads {
			for _, h := range unitHeads(w, unit, u) {
				heads[u] += sumRange(l[0], h*cfg.HeadDim, (h+1)*cfg.HeadDim) + sumRange(l[3], h*cfg.HeadDim, (h+1)*cfg.HeadDim)
			}
			if unit == UnitKVGroup {
				heads[u] += sumRange(l[1], u*cfg.HeadDim, (u+1)*cfg.HeadDim) + sumRange(l[2], u*cfg.HeadDim, (u+1)*cfg.HeadDim)
			}
		}
		ch := make([]float64, w.IntermediateSize)
		for c := range ch {
			ch[c] = l[4][c] + l[5][c] + l[6][c]
		}
		s.Heads[b], s.Channels[b] = heads, ch
	}
	return s, checkFinite(s)
}

func sumRange(v []float64, from, to int) float64 {
	s := 0.0
	for _, x := range v[from:to] {
		s += x
	}
	return s
}

// accumulateWG returns acc + w ⊙ ∇_w(Σ NLL) of one micro-batch per tensor, kept on the device
// in float32 (the old accumulators are donated). |·| is taken only after all batches: the
// gradient is that of the whole calibration set's loss, as LLM-Pruner's single backward.
func accumulateWG(r *model.Runner, names []string, part [][]int, acc []*tensors.Tensor) ([]*tensors.Tensor, error) {
	in, lab := make([][]int, len(part)), make([][]int, len(part))
	for i, w := range part {
		in[i], lab[i] = w[:len(w)-1], w[1:]
	}
	inT, err := model.IDsTensor(in)
	if err != nil {
		return nil, err
	}
	labT, _ := model.IDsTensor(lab)
	cfg := r.Model.Config
	first := acc == nil
	key := fmt.Sprintf("width/llm-pruner/%d/%v", len(names), first)
	args := append([]*tensors.Tensor{inT, labT}, acc...)
	donate := make([]bool, len(args))
	for i := 2; i < len(donate); i++ {
		donate[i] = true
	}
	return r.RunDonating(key, func(p model.Params, x []*Node) []*Node {
		res := model.Forward(cfg, p, x[0], model.ForwardOptions{})
		nll, _ := model.NLLSum(res.Logits, x[1])
		ws := make([]*Node, len(names))
		for i, n := range names {
			ws[i] = p[n]
		}
		grads := Gradient(nll, ws...)
		for i := range grads {
			grads[i] = Mul(ConvertDType(ws[i], dtypes.Float32), ConvertDType(grads[i], dtypes.Float32))
			if !first {
				grads[i] = Add(x[2+i], grads[i])
			}
		}
		return grads
	}, donate, args...)
}

// foldSalience turns each accumulated w⊙g [out, in] into |·/tokens| summed per unit line:
// per output row for row-owning modules, per input column for o_proj and down_proj (tensors
// come in taylorModules order per block).
func foldSalience(r *model.Runner, acc []*tensors.Tensor, tokens float64) ([][]float64, error) {
	key := fmt.Sprintf("width/llm-pruner-fold/%d/%g", len(acc), tokens)
	out, err := r.Run(key, func(_ model.Params, x []*Node) []*Node {
		outs := make([]*Node, len(x))
		for i, a := range x {
			s := Abs(DivScalar(ConvertDType(a, dtypes.Float64), tokens))
			axis := 1 // sum over inputs: one value per row
			if !taylorModules[i%len(taylorModules)].rows {
				axis = 0
			}
			outs[i] = ReduceSum(s, axis)
		}
		return outs
	}, acc...)
	if err != nil {
		return nil, err
	}
	lines := make([][]float64, len(out))
	for i, t := range out {
		lines[i] = tensors.MustCopyFlatData[float64](t)
	}
	return lines, nil
}

func split(ids [][]int, n int) [][][]int {
	var out [][][]int
	for i := 0; i < len(ids); i += n {
		out = append(out, ids[i:min(i+n, len(ids))])
	}
	return out
}
