package model

// Compute dtypes other than float32. On GPUs the weights are held in bfloat16 (half the memory
// and bandwidth, tensor-core matmuls); the forward pass already upcasts the numerically
// delicate parts — RMSNorm, softmax, log-softmax and the losses built on it — to float32, as
// transformers does, so only matmuls, residual adds and the KV cache run in bfloat16.

import (
	"fmt"
	"math"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/dtypes/bfloat16"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph code reads like maths
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// ParseDType maps a --dtype value (f32, bf16, f64 and their long spellings) to the compute
// dtype Load takes. flag names the flag in errors.
func ParseDType(s, flag string) (dtypes.DType, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "f32", "fp32", "float32":
		return dtypes.Float32, nil
	case "bf16", "bfloat16":
		return dtypes.BFloat16, nil
	case "f64", "fp64", "float64":
		return dtypes.Float64, nil
	}
	return dtypes.InvalidDType, fmt.Errorf("%s %q: want f32, bf16 or f64", flag, s)
}

// DTypeName is the short name ParseDType accepts for dt (used in reports).
func DTypeName(dt dtypes.DType) string {
	switch dt {
	case dtypes.BFloat16:
		return "bf16"
	case dtypes.Float64:
		return "f64"
	case dtypes.InvalidDType, dtypes.Float32:
		return "f32"
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
