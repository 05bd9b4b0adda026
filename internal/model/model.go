package model

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/shortllm/shortllm/internal/safetensors"
)

// ErrWeights marks a checkpoint whose tensors do not match its config.
var ErrWeights = errors.New("invalid model weights")

// Model is a loaded checkpoint: its config and its weights in the compute dtype, by HF name.
type Model struct {
	Dir    string
	Config *Config
	// Weights hold every tensor the forward pass uses, in the compute dtype.
	Weights map[string]*tensors.Tensor
	// StoredDTypes is each tensor's dtype on disk, so saving writes what was loaded.
	StoredDTypes map[string]safetensors.DType
	// StoredLMHead records that a tied model also stored lm_head.weight (saved back as it was).
	StoredLMHead bool
	// Sharded records that the checkpoint was split over several files, and ShardSize the
	// largest shard in bytes, so a save keeps the same style.
	Sharded   bool
	ShardSize int64
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// shapeInt32 is the shape of an int32 tensor with the given dimensions.
func shapeInt32(dims ...int) shapes.Shape { return shapes.Make(dtypes.Int32, dims...) }

// ExpectedShapes lists every tensor name the config implies and its shape.
func (c *Config) ExpectedShapes() map[string][]int {
	D, V := c.HiddenSize, c.VocabSize
	m := map[string][]int{
		"model.embed_tokens.weight": {V, D},
		"model.norm.weight":         {D},
	}
	if !c.TieWordEmbeddings {
		m["lm_head.weight"] = []int{V, D}
	}
	for i := 0; i < c.NumHiddenLayers; i++ {
		for name, shape := range c.blockShapes(i) {
			m[layerPrefix(i)+name] = shape
		}
	}
	return m
}

// blockShapes lists block i's tensors (names relative to "model.layers.{i}."), with the
// block's own widths (width-pruned models differ per block).
func (c *Config) blockShapes(i int) map[string][]int {
	w := c.Width(i)
	D, F := c.HiddenSize, w.IntermediateSize
	qOut, kvOut := w.NumAttentionHeads*c.HeadDim, w.NumKeyValueHeads*c.HeadDim
	m := map[string][]int{
		"input_layernorm.weight":          {D},
		"post_attention_layernorm.weight": {D},
		"self_attn.q_proj.weight":         {qOut, D},
		"self_attn.k_proj.weight":         {kvOut, D},
		"self_attn.v_proj.weight":         {kvOut, D},
		"self_attn.o_proj.weight":         {D, qOut},
		"mlp.gate_proj.weight":            {F, D},
		"mlp.up_proj.weight":              {F, D},
		"mlp.down_proj.weight":            {D, F},
	}
	if c.AttentionBias {
		m["self_attn.q_proj.bias"] = []int{qOut}
		m["self_attn.k_proj.bias"] = []int{kvOut}
		m["self_attn.v_proj.bias"] = []int{kvOut}
		if c.ModelType != "qwen2" { // Qwen2's o_proj has no bias
			m["self_attn.o_proj.bias"] = []int{D}
		}
	}
	if c.MLPBias {
		m["mlp.gate_proj.bias"] = []int{F}
		m["mlp.up_proj.bias"] = []int{F}
		m["mlp.down_proj.bias"] = []int{D}
	}
	return m
}

// BlockTensorNames lists block i's tensor names in a fixed order.
func (c *Config) BlockTensorNames(i int) []string {
	var names []string
	for n := range c.blockShapes(i) {
		names = append(names, layerPrefix(i)+n)
	}
	sort.Strings(names)
	return names
}

// LoadOptions controls Load.
type LoadOptions struct {
	// DType is the compute dtype; zero means float32.
	DType dtypes.DType
	// KeepBF16 holds tensors stored in BF16 as bfloat16 whatever DType says: for commands that
	// only copy tensors (prune without scoring), half the memory and no conversion. The
	// weights may then mix dtypes, so such a model is not for computing.
	KeepBF16 bool
}

// Load reads dir/config.json and the safetensors weights (single file or sharded). Every
// tensor the config implies must be present with its shape; unknown tensors are an error too,
// so a checkpoint of a different architecture is never half-loaded.
func Load(dir string, opts LoadOptions) (*Model, error) {
	cfg, err := LoadConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	ckpt, err := safetensors.OpenCheckpoint(dir)
	if err != nil {
		return nil, err
	}
	defer ckpt.Close()
	dt := opts.DType
	if dt == dtypes.InvalidDType {
		dt = dtypes.Float32
	}
	if err := CheckMemory(cfg, dt.Size(), "load "+dir); err != nil {
		return nil, err
	}
	m := &Model{Dir: dir, Config: cfg, Weights: map[string]*tensors.Tensor{},
		StoredDTypes: map[string]safetensors.DType{}, Sharded: ckpt.Sharded()}
	if err := m.checkNames(ckpt); err != nil {
		return nil, err
	}
	for name, shape := range cfg.ExpectedShapes() {
		t, sdt, err := readTensor(ckpt, dir, name, shape, dt, opts.KeepBF16)
		if err != nil {
			return nil, err
		}
		m.Weights[name] = t
		m.StoredDTypes[name] = sdt
	}
	if m.Sharded {
		m.ShardSize = largestShard(dir)
	}
	if cfg.TieWordEmbeddings && m.StoredLMHead {
		m.StoredDTypes["lm_head.weight"] = m.StoredDTypes["model.embed_tokens.weight"]
	}
	return m, nil
}

// checkNames rejects missing and unexpected tensors, naming them and the checkpoint.
func (m *Model) checkNames(ckpt *safetensors.Checkpoint) error {
	want := m.Config.ExpectedShapes()
	for _, n := range ckpt.Names() {
		if _, ok := want[n]; ok {
			continue
		}
		switch {
		case n == "lm_head.weight" && m.Config.TieWordEmbeddings:
			m.StoredLMHead = true // HF ignores it for tied models; kept for a faithful save
		case filepath.Ext(n) == ".inv_freq" || isRotaryBuffer(n):
			// Old checkpoints stored rotary buffers; they are recomputed from the config.
		default:
			return fmt.Errorf("model %s: unexpected tensor %q for this config (num_hidden_layers=%d, attention_bias=%v): %w",
				m.Dir, n, m.Config.NumHiddenLayers, m.Config.AttentionBias, ErrWeights)
		}
	}
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if _, ok := ckpt.Info(n); !ok {
			return fmt.Errorf("model %s: missing tensor %q: %w", m.Dir, n, ErrWeights)
		}
	}
	return nil
}

func isRotaryBuffer(name string) bool {
	return len(name) > len("rotary_emb.inv_freq") && name[len(name)-len("rotary_emb.inv_freq"):] == "rotary_emb.inv_freq"
}

func readTensor(ckpt *safetensors.Checkpoint, dir, name string, shape []int, dt dtypes.DType, keepBF16 bool) (*tensors.Tensor, safetensors.DType, error) {
	info, _ := ckpt.Info(name)
	if !slices.Equal(info.Shape, shape) {
		return nil, "", fmt.Errorf("model %s: tensor %q has shape %v, config implies %v: %w",
			dir, name, info.Shape, shape, ErrWeights)
	}
	switch info.DType {
	case safetensors.F32, safetensors.F16, safetensors.BF16, safetensors.F64:
	default:
		return nil, "", fmt.Errorf("model %s: tensor %q has dtype %s, want F32, F16 or BF16: %w",
			dir, name, info.DType, ErrWeights)
	}
	if keepBF16 && info.DType == safetensors.BF16 {
		dt = dtypes.BFloat16
	}
	raw, err := ckpt.ReadRaw(name)
	if err != nil {
		return nil, "", err
	}
	t, err := decodeTensor(raw, info.DType, shape, dt)
	if err != nil {
		return nil, "", fmt.Errorf("model %s: tensor %q: %w", dir, name, err)
	}
	return t, info.DType, nil
}

// decodeTensor converts stored bytes straight into the storage of a tensor of the compute
// dtype: one buffer besides the raw bytes, as a 7B checkpoint in float32 is 28 GB.
func decodeTensor(raw []byte, stored safetensors.DType, shape []int, dt dtypes.DType) (*tensors.Tensor, error) {
	switch {
	case dt == dtypes.Float32:
		t := tensors.FromShape(shapes.Make(dt, shape...))
		var err error
		tensors.MustMutableFlatData(t, func(flat []float32) { err = safetensors.DecodeInto(flat, raw, stored) })
		return t, err
	case dt == dtypes.BFloat16 && stored == safetensors.BF16:
		t := tensors.FromShape(shapes.Make(dt, shape...))
		var n int
		if err := t.MutableBytes(func(data []byte) { n = copy(data, raw) }); err != nil {
			return nil, err
		}
		if n != len(raw) {
			return nil, fmt.Errorf("%d bytes of BF16 for shape %v", len(raw), shape)
		}
		return t, nil
	}
	vals, err := safetensors.DecodeFloat32(raw, stored)
	if err != nil {
		return nil, err
	}
	return float32Tensor(vals, shape, dt)
}

// TensorFromFloat32 converts host float32 values to a tensor of dtype dt (float32, bfloat16
// with round-to-nearest-even, or float64).
func TensorFromFloat32(vals []float32, shape []int, dt dtypes.DType) (*tensors.Tensor, error) {
	return float32Tensor(vals, shape, dt)
}

// float32Tensor converts host float32 values to a tensor of the compute dtype.
func float32Tensor(vals []float32, shape []int, dt dtypes.DType) (*tensors.Tensor, error) {
	switch dt {
	case dtypes.Float32:
		return tensors.FromFlatDataAndDimensions(vals, shape...), nil
	case dtypes.Float64:
		f := make([]float64, len(vals))
		for i, v := range vals {
			f[i] = float64(v)
		}
		return tensors.FromFlatDataAndDimensions(f, shape...), nil
	case dtypes.BFloat16:
		return bf16Tensor(vals, shape), nil
	}
	return nil, fmt.Errorf("compute dtype %s is not supported on load (float32, bfloat16, float64)", dt)
}

// Float32Values copies a weight tensor to host float32 values.
func Float32Values(t *tensors.Tensor) []float32 {
	switch t.DType() {
	case dtypes.Float32:
		return tensors.MustCopyFlatData[float32](t)
	case dtypes.Float64:
		f := tensors.MustCopyFlatData[float64](t)
		out := make([]float32, len(f))
		for i, v := range f {
			out[i] = float32(v)
		}
		return out
	case dtypes.BFloat16:
		return bf16Values(t)
	}
	panic(fmt.Sprintf("Float32Values: unsupported dtype %s", t.DType()))
}

// NumParams counts the parameters the forward pass uses (tied heads counted once).
func (m *Model) NumParams() int64 {
	var n int64
	for _, t := range m.Weights {
		n += int64(t.Shape().Size())
	}
	return n
}

// Names returns the weight names sorted, the order graph parameters are passed in.
func (m *Model) Names() []string {
	names := make([]string, 0, len(m.Weights))
	for n := range m.Weights {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func largestShard(dir string) int64 {
	files, _ := filepath.Glob(filepath.Join(dir, "model-*-of-*.safetensors"))
	var largest int64
	for _, f := range files {
		if st, err := os.Stat(f); err == nil && st.Size() > largest {
			largest = st.Size()
		}
	}
	return largest
}

// IsModelDir reports whether dir looks like an HF model directory.
func IsModelDir(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "config.json"))
	return err == nil
}
