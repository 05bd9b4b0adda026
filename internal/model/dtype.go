package model

// Compute dtypes other than float32. On GPUs the weights are held in bfloat16 (half the memory
// and bandwidth, tensor-core matmuls); the forward pass already upcasts the numerically
// delicate parts — RMSNorm, softmax, log-softmax and the losses built on it — to float32, as
// transformers does, so only matmuls, residual adds and the KV cache run in bfloat16.

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/dtypes/bfloat16"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph code reads like maths
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/shortllm/shortllm/internal/safetensors"
)

// dtypeRow is one entry of the dtype table every flag reads: --dtype picks the compute dtype
// (what weights and activations are held in while a stage runs), --save-dtype the stored one
// (what a written checkpoint holds). Not every stored dtype can compute: SimpleGo has no
// float16.
type dtypeRow struct {
	names   []string // first is the short name reports use
	compute dtypes.DType
	stored  safetensors.DType
}

func dtypeTable() []dtypeRow {
	return []dtypeRow{
		{[]string{"f32", "fp32", "float32"}, dtypes.Float32, safetensors.F32},
		{[]string{"bf16", "bfloat16"}, dtypes.BFloat16, safetensors.BF16},
		{[]string{"f16", "fp16", "float16"}, dtypes.InvalidDType, safetensors.F16},
		{[]string{"f64", "fp64", "float64"}, dtypes.Float64, safetensors.F64},
	}
}

func lookupDType(s string) (dtypeRow, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	for _, r := range dtypeTable() {
		if slices.Contains(r.names, s) {
			return r, true
		}
	}
	return dtypeRow{}, false
}

// ParseDType maps a --dtype value (f32, bf16, f64 and their long spellings; "" is f32) to the
// compute dtype Load takes. flag names the flag in errors.
func ParseDType(s, flag string) (dtypes.DType, error) {
	if strings.TrimSpace(s) == "" {
		return dtypes.Float32, nil
	}
	r, ok := lookupDType(s)
	if !ok || r.compute == dtypes.InvalidDType {
		return dtypes.InvalidDType, fmt.Errorf("%s %q: want f32, bf16 or f64", flag, s)
	}
	return r.compute, nil
}

// ParseSaveDType maps a --save-dtype value to the stored dtype: "keep" (or "") keeps each
// tensor's stored dtype and returns "".
func ParseSaveDType(s, flag string) (safetensors.DType, error) {
	if v := strings.ToLower(strings.TrimSpace(s)); v == "" || v == "keep" {
		return "", nil
	}
	r, ok := lookupDType(s)
	if !ok || r.stored == safetensors.F64 {
		return "", fmt.Errorf("%s %q: want keep, bf16, f16 or f32", flag, s)
	}
	return r.stored, nil
}

// DTypeName is the short name ParseDType accepts for dt (used in reports).
func DTypeName(dt dtypes.DType) string {
	if dt == dtypes.InvalidDType {
		return "f32"
	}
	for _, r := range dtypeTable() {
		if r.compute == dt {
			return r.names[0]
		}
	}
	return dt.String()
}

// ComputeDType is the dtype the model's weights are held in.
func (m *Model) ComputeDType() dtypes.DType {
	if w, ok := m.Weights["model.norm.weight"]; ok {
		return w.DType()
	}
	return dtypes.Float32
}

// bf16Tensor rounds host float32 values to bfloat16 (round-to-nearest-even, as torch's
// .to(torch.bfloat16)), so a BF16 checkpoint loads bit-exactly.
func bf16Tensor(vals []float32, shape []int) *tensors.Tensor {
	t := tensors.FromShape(shapes.Make(dtypes.BFloat16, shape...))
	tensors.MustMutableFlatData(t, func(out []bfloat16.BFloat16) {
		for i, v := range vals {
			out[i] = roundBF16(v)
		}
	})
	return t
}

// roundBF16 rounds to nearest, ties to even; bfloat16.FromFloat32 truncates, which would bias
// every weight of an F32 checkpoint towards zero.
func roundBF16(v float32) bfloat16.BFloat16 {
	b := math.Float32bits(v)
	if v != v { // NaN: keep it a (quiet) NaN
		return bfloat16.FromBits(uint16(b>>16) | 0x40)
	}
	b += 0x7fff + (b>>16)&1
	return bfloat16.FromBits(uint16(b >> 16))
}

// bf16Values widens a bfloat16 tensor to host float32 values (exact).
func bf16Values(t *tensors.Tensor) []float32 {
	src := tensors.MustCopyFlatData[bfloat16.BFloat16](t)
	out := make([]float32, len(src))
	for i, v := range src {
		out[i] = v.Float32()
	}
	return out
}

// WithComputeDType returns m with every weight held in dt: tensors already in dt are shared,
// the others converted (rounded to nearest even for bfloat16). m itself is not changed, so a
// model loaded for copying (KeepBF16) can be scored in bf16 and still be written from its
// loaded tensors.
func (m *Model) WithComputeDType(dt dtypes.DType) (*Model, error) {
	out := *m
	out.Weights = make(map[string]*tensors.Tensor, len(m.Weights))
	for name, t := range m.Weights {
		if t.DType() == dt {
			out.Weights[name] = t
			continue
		}
		c, err := TensorFromFloat32(Float32Values(t), t.Shape().Dimensions, dt)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out.Weights[name] = c
	}
	return &out, nil
}

// RoundToBF16 converts float32 x to bfloat16 rounding to nearest, in the graph. XLA's convert
// rounds to nearest even; SimpleGo's truncates (bfloat16.FromFloat32), which would pull every
// re-cast weight towards zero, so there x is first rounded to 8 significant bits in float32
// by Veltkamp's split (c = x·(2¹⁶+1), x_hi = c − (c − x)) and the convert is then exact.
// Values beyond ±2¹¹¹ would overflow the split; weights never come near.
func RoundToBF16(x *Node) *Node {
	if x.DType() == dtypes.Float32 && strings.HasPrefix(x.Graph().Backend().Name(), "SimpleGo") {
		c := MulScalar(x, 65537)
		x = Sub(c, Sub(c, x))
	}
	return ConvertDType(x, dtypes.BFloat16)
}

// RoundValue returns v as a tensor of dtype dt holds it: bfloat16 rounds to nearest even,
// float32 and float64 keep v.
func RoundValue(v float32, dt dtypes.DType) float32 {
	if dt == dtypes.BFloat16 {
		return roundBF16(v).Float32()
	}
	return v
}
