package width

import (
	"fmt"
	"slices"

	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/prune"
	"github.com/shortllm/shortllm/internal/safetensors"
)

// Apply returns the model without the plan's units: rows of q/k/v (and their biases) and
// columns of o_proj for removed heads; rows of gate/up (and biases) and columns of down_proj
// for removed channels. Bias compensation is added to o_proj/down_proj biases; a model that
// had none gains attention_bias/mlp_bias with zero q/k/v (gate/up) biases, the layout
// transformers loads. Untouched tensors are shared with m; m is not changed.
func Apply(m *model.Model, p *Plan, allowWithin bool) (*model.Model, error) {
	return transform(m, p, allowWithin, false)
}

// Mask returns the model with the plan's units zeroed in place of removed (same shapes):
// Apply's model computes the same function, which is what the tests check and what
// sequential pruning (Wanda-sp) runs on.
func Mask(m *model.Model, p *Plan, allowWithin bool) (*model.Model, error) {
	return transform(m, p, allowWithin, true)
}

func transform(m *model.Model, p *Plan, allowWithin, mask bool) (*model.Model, error) {
	cfg := m.Config
	if err := Check(cfg, p, allowWithin); err != nil {
		return nil, err
	}
	out := &model.Model{Dir: m.Dir, Config: cfg.Clone(), StoredLMHead: m.StoredLMHead, Sharded: m.Sharded, ShardSize: m.ShardSize,
		Weights: map[string]*tensors.Tensor{}, StoredDTypes: map[string]safetensors.DType{}}
	for k, v := range m.Weights {
		out.Weights[k] = v
	}
	for k, v := range m.StoredDTypes {
		out.StoredDTypes[k] = v
	}
	attnBias, mlpBias := needBiases(cfg, p)
	if attnBias && cfg.ModelType == "qwen2" {
		return nil, fmt.Errorf("bias compensation for attention needs an o_proj bias, which the qwen2 layout lacks")
	}
	for b, u := range p.Layers {
		e := editor{out: out, dh: cfg.HeadDim, mask: mask, pre: fmt.Sprintf("model.layers.%d.", b)}
		e.addBiases(cfg, b, attnBias && !cfg.AttentionBias, mlpBias && !cfg.MLPBias)
		if err := e.layer(u, p, b); err != nil {
			return nil, err
		}
	}
	if !mask {
		out.Config.EnableBiases(attnBias, mlpBias)
		if err := out.Config.SetLayerWidths(WidthsAfter(cfg, p)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// needBiases reports which bias families the compensation needs.
func needBiases(cfg *model.Config, p *Plan) (attn, mlp bool) {
	for b := range p.Layers {
		attn = attn || (p.OBias != nil && p.OBias[b] != nil)
		mlp = mlp || (p.DownBias != nil && p.DownBias[b] != nil)
	}
	return attn, mlp
}

// editor rewrites one block's tensors in out.
type editor struct {
	out  *model.Model
	pre  string
	dh   int
	mask bool
}

// addBiases creates zero biases for a model gaining attention_bias / mlp_bias.
func (e editor) addBiases(cfg *model.Config, b int, attn, mlp bool) {
	w := cfg.Width(b)
	D, q, kv := cfg.HiddenSize, w.NumAttentionHeads*cfg.HeadDim, w.NumKeyValueHeads*cfg.HeadDim
	var add map[string]int
	if attn {
		add = map[string]int{"self_attn.q_proj": q, "self_attn.k_proj": kv, "self_attn.v_proj": kv, "self_attn.o_proj": D}
	}
	if mlp {
		if add == nil {
			add = map[string]int{}
		}
		add["mlp.gate_proj"], add["mlp.up_proj"], add["mlp.down_proj"] = w.IntermediateSize, w.IntermediateSize, D
	}
	for mod, n := range add {
		like := e.out.Weights[e.pre+mod+".weight"]
		t, _ := model.TensorFromFloat32(make([]float32, n), []int{n}, like.DType())
		e.out.Weights[e.pre+mod+".bias"] = t
		e.out.StoredDTypes[e.pre+mod+".bias"] = e.out.StoredDTypes[e.pre+mod+".weight"]
	}
}

func (e editor) layer(u prune.LayerUnits, p *Plan, b int) error {
	heads, kv := expand(u.Heads, e.dh), expand(u.KVHeads, e.dh)
	edits := []struct {
		name string
		axis int
		drop []int
	}{
		{"self_attn.q_proj.weight", 0, heads}, {"self_attn.q_proj.bias", 0, heads},
		{"self_attn.k_proj.weight", 0, kv}, {"self_attn.k_proj.bias", 0, kv},
		{"self_attn.v_proj.weight", 0, kv}, {"self_attn.v_proj.bias", 0, kv},
		{"self_attn.o_proj.weight", 1, heads},
		{"mlp.gate_proj.weight", 0, u.Channels}, {"mlp.gate_proj.bias", 0, u.Channels},
		{"mlp.up_proj.weight", 0, u.Channels}, {"mlp.up_proj.bias", 0, u.Channels},
		{"mlp.down_proj.weight", 1, u.Channels},
	}
	for _, ed := range edits {
		if err := e.drop(e.pre+ed.name, ed.axis, ed.drop); err != nil {
			return err
		}
	}
	if p.OBias != nil && p.OBias[b] != nil {
		if err := e.addTo(e.pre+"self_attn.o_proj.bias", p.OBias[b]); err != nil {
			return err
		}
	}
	if p.DownBias != nil && p.DownBias[b] != nil {
		return e.addTo(e.pre+"mlp.down_proj.bias", p.DownBias[b])
	}
	return nil
}

// expand turns head indices into their head_dim rows.
func expand(heads []int, dh int) []int {
	var out []int
	for _, h := range heads {
		for j := 0; j < dh; j++ {
			out = append(out, h*dh+j)
		}
	}
	return out
}

// drop removes (or zeroes, when masking) the given indices along axis 0 (rows) or 1
// (columns) of a tensor; absent tensors (biases the model lacks) are skipped.
func (e editor) drop(name string, axis int, idx []int) error {
	t, ok := e.out.Weights[name]
	if !ok || len(idx) == 0 {
		return nil
	}
	dims := t.Shape().Dimensions
	rows, cols := dims[0], 1
	if len(dims) == 2 {
		cols = dims[1]
	}
	vals := model.Float32Values(t)
	gone := make([]bool, []int{rows, cols}[axis])
	for _, i := range idx {
		gone[i] = true
	}
	var out []float32
	var shape []int
	if e.mask {
		out = slices.Clone(vals)
		for r := 0; r < rows; r++ {
			for c := 0; c < cols; c++ {
				if (axis == 0 && gone[r]) || (axis == 1 && gone[c]) {
					out[r*cols+c] = 0
				}
			}
		}
		shape = dims
	} else {
		out, shape = keep(vals, rows, cols, axis, gone), slices.Clone(dims)
		shape[axis] -= len(idx)
	}
	nt, err := model.TensorFromFloat32(out, shape, t.DType())
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	e.out.Weights[name] = nt
	return nil
}

func keep(vals []float32, rows, cols, axis int, gone []bool) []float32 {
	out := make([]float32, 0, len(vals))
	for r := 0; r < rows; r++ {
		if axis == 0 && gone[r] {
			continue
		}
		for c := 0; c < cols; c++ {
			if axis == 1 && gone[c] {
				continue
			}
			out = append(out, vals[r*cols+c])
		}
	}
	return out
}

// addTo adds delta [D] to a bias vector.
func (e editor) addTo(name string, delta []float32) error {
	t, ok := e.out.Weights[name]
	if !ok {
		return fmt.Errorf("%s: bias compensation needs this bias", name)
	}
	vals := model.Float32Values(t)
	if len(vals) != len(delta) {
		return fmt.Errorf("%s: bias compensation has %d values for %d", name, len(delta), len(vals))
	}
	for i, d := range delta {
		vals[i] += d
	}
	nt, err := model.TensorFromFloat32(vals, t.Shape().Dimensions, t.DType())
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	e.out.Weights[name] = nt
	return nil
}
