package safetensors

import (
	"encoding/binary"
	"math"
)

// DType is a safetensors element type, spelled as in the file header.
type DType string

// Element types recognised in headers. Only the floating-point ones convert to float32.
const (
	F64    DType = "F64"
	F32    DType = "F32"
	F16    DType = "F16"
	BF16   DType = "BF16"
	F8E4M3 DType = "F8_E4M3"
	F8E5M2 DType = "F8_E5M2"
	I64    DType = "I64"
	I32    DType = "I32"
	I16    DType = "I16"
	I8     DType = "I8"
	U64    DType = "U64"
	U32    DType = "U32"
	U16    DType = "U16"
	U8     DType = "U8"
	Bool   DType = "BOOL"
)

// invalid is the Size of an unknown dtype.
const invalid = 0

// Size returns the number of bytes per element, or 0 for an unknown dtype.
func (d DType) Size() int {
	switch d {
	case F64, I64, U64:
		return 8
	case F32, I32, U32:
		return 4
	case F16, BF16, I16, U16:
		return 2
	case F8E4M3, F8E5M2, I8, U8, Bool:
		return 1
	}
	return invalid
}

// Known reports whether d is a dtype this package recognises.
func (d DType) Known() bool { return d.Size() != invalid }

// IsFloat reports whether d converts to float32 with ReadFloat32 / DecodeFloat32.
func (d DType) IsFloat() bool {
	return d == F32 || d == F16 || d == BF16 || d == F64
}

// decodeInto converts n = len(dst) elements of src to float32. It reads element i
// before writing dst[i] and never touches a later source element, so src may be
// the tail of dst's own memory (see ReadFloat32), which saves a second buffer.
func decodeInto(dst []float32, src []byte, dt DType) {
	le := binary.LittleEndian
	switch dt {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(le.Uint32(src[4*i:]))
		}
	case BF16:
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(le.Uint16(src[2*i:])) << 16)
		}
	case F16:
		for i := range dst {
			dst[i] = f16ToF32(le.Uint16(src[2*i:]))
		}
	case F64:
		for i := range dst {
			dst[i] = float32(math.Float64frombits(le.Uint64(src[8*i:])))
		}
	}
}

// DecodeInto converts raw little-endian data of a floating-point dtype to float32 in dst,
// which must hold exactly len(raw)/dt.Size() elements (a tensor's own storage, say: loading
// then needs no float32 copy of its own).
func DecodeInto(dst []float32, raw []byte, dt DType) error {
	if !dt.IsFloat() {
		return newError("", ErrDType, "cannot convert %q to float32", string(dt))
	}
	if len(raw) != len(dst)*dt.Size() {
		return newError("", ErrShape, "%d bytes of %s for %d elements", len(raw), dt, len(dst))
	}
	decodeInto(dst, raw, dt)
	return nil
}

// DecodeFloat32 converts raw little-endian data of a floating-point dtype to float32.
func DecodeFloat32(raw []byte, dt DType) ([]float32, error) {
	if !dt.IsFloat() {
		return nil, newError("", ErrDType, "cannot convert %q to float32", string(dt))
	}
	if len(raw)%dt.Size() != 0 {
		return nil, newError("", ErrShape, "%d bytes is not a whole number of %s elements", len(raw), dt)
	}
	out := make([]float32, len(raw)/dt.Size())
	decodeInto(out, raw, dt)
	return out, nil
}

// EncodeFloat32 converts v to little-endian bytes of dt (F32, F64, F16 or BF16).
// F16 and BF16 round to nearest, ties to even, as torch's Tensor.to does.
func EncodeFloat32(v []float32, dt DType) ([]byte, error) {
	if !dt.IsFloat() {
		return nil, newError("", ErrDType, "cannot encode float32 as %q", string(dt))
	}
	out := make([]byte, len(v)*dt.Size())
	le := binary.LittleEndian
	switch dt {
	case F32:
		for i, x := range v {
			le.PutUint32(out[4*i:], math.Float32bits(x))
		}
	case F64:
		for i, x := range v {
			le.PutUint64(out[8*i:], math.Float64bits(float64(x)))
		}
	case BF16:
		for i, x := range v {
			le.PutUint16(out[2*i:], f32ToBF16(x))
		}
	case F16:
		for i, x := range v {
			le.PutUint16(out[2*i:], f32ToF16(x))
		}
	}
	return out, nil
}

// f32ToBF16 follows c10::BFloat16's round_to_nearest_even, NaN included, so
// files we write match what torch would have written bit for bit.
func f32ToBF16(x float32) uint16 {
	if x != x {
		return 0x7FC0
	}
	u := math.Float32bits(x)
	bias := (u>>16)&1 + 0x7FFF
	return uint16((u + bias) >> 16)
}

// f32ToF16 rounds to nearest, ties to even; overflow goes to ±Inf and NaN stays
// a quiet NaN carrying the top payload bits, as IEEE conversions do.
func f32ToF16(x float32) uint16 {
	u := math.Float32bits(x)
	sign := uint16(u>>16) & 0x8000
	exp := int(u>>23) & 0xFF
	mant := u & 0x7FFFFF
	if exp == 0xFF {
		if mant != 0 {
			return sign | 0x7E00 | uint16(mant>>13)
		}
		return sign | 0x7C00
	}
	e := exp - 127 + 15
	switch {
	case e >= 0x1F:
		return sign | 0x7C00
	case e <= 0:
		return sign | f16Subnormal(mant|0x800000, e)
	}
	h := uint32(e)<<10 | mant>>13
	// A carry out of the mantissa bumps the exponent, up to Inf: that is correct rounding.
	return sign | uint16(roundEven(h, mant&0x1FFF, 0x1000))
}

// f16Subnormal rounds the 24-bit significand m (with implicit bit) of a value with
// biased half exponent e <= 0 to a half subnormal in units of 2^-24.
func f16Subnormal(m uint32, e int) uint16 {
	shift := uint(14 - e)
	if shift > 24 {
		return 0 // below half the smallest subnormal
	}
	return uint16(roundEven(m>>shift, m&(1<<shift-1), 1<<(shift-1)))
}

// roundEven adds one to the truncated value h when the dropped remainder is above
// half, or exactly half and h is odd.
func roundEven(h, rem, half uint32) uint32 {
	if rem > half || (rem == half && h&1 == 1) {
		return h + 1
	}
	return h
}

func f16ToF32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1F
	mant := uint32(h & 0x3FF)
	switch exp {
	case 0:
		// Subnormals are exact in float32: mant × 2^-24.
		v := float32(mant) * (1.0 / (1 << 24))
		return math.Float32frombits(math.Float32bits(v) | sign)
	case 0x1F:
		return math.Float32frombits(sign | 0x7F800000 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}
