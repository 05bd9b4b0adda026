package safetensors

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/x448/float16"
)

func TestF16DecodeExhaustive(t *testing.T) {
	for h := range 1 << 16 {
		got := f16ToF32(uint16(h))
		want := float16.Frombits(uint16(h)).Float32()
		if math.Float32bits(got) != math.Float32bits(want) && !(isNaN(got) && isNaN(want)) {
			t.Fatalf("f16 %#04x: got %v (%#08x), want %v (%#08x)", h, got, math.Float32bits(got), want, math.Float32bits(want))
		}
	}
}

func TestF16EncodeRoundTripsEveryHalf(t *testing.T) {
	for h := range 1 << 16 {
		x := f16ToF32(uint16(h))
		got := f32ToF16(x)
		if isNaN(x) {
			if !isNaN(f16ToF32(got)) {
				t.Fatalf("NaN %#04x encoded to non-NaN %#04x", h, got)
			}
			continue
		}
		if got != uint16(h) {
			t.Fatalf("half %#04x -> %v -> %#04x", h, x, got)
		}
	}
}

// x448/float16 is an independent IEEE round-to-nearest-even implementation.
func TestF16EncodeMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 300_000 {
		x := math.Float32frombits(rng.Uint32())
		got, want := f32ToF16(x), float16.Fromfloat32(x).Bits()
		if isNaN(x) {
			if got&0x7C00 != 0x7C00 || got&0x3FF == 0 {
				t.Fatalf("NaN %#08x encoded to %#04x", math.Float32bits(x), got)
			}
			continue
		}
		if got != want {
			t.Fatalf("%v (%#08x): got %#04x, want %#04x", x, math.Float32bits(x), got, want)
		}
	}
}

func TestF16SpecialValues(t *testing.T) {
	p := func(e int) float32 { return float32(math.Ldexp(1, e)) }
	cases := []struct {
		name string
		in   float32
		want uint16
	}{
		{"one", 1, 0x3C00},
		{"tie to even down", 1 + p(-11), 0x3C00},
		{"tie to even up", 1 + 3*p(-11), 0x3C02},
		{"above tie", 1 + p(-11) + p(-20), 0x3C01},
		{"max", 65504, 0x7BFF},
		{"tie to inf", 65520, 0x7C00},
		{"below tie to inf", 65519.99, 0x7BFF},
		{"min normal", p(-14), 0x0400},
		{"max subnormal", p(-14) - p(-24), 0x03FF},
		{"min subnormal", p(-24), 0x0001},
		{"half min subnormal ties to zero", p(-25), 0x0000},
		{"1.5 min subnormal ties to even", 3 * p(-25), 0x0002},
		{"just above half min subnormal", p(-25) * (1 + p(-20)), 0x0001},
		{"subnormal rounds up into normal", p(-14) - p(-26), 0x0400},
		{"f32 subnormal", math.Float32frombits(1), 0x0000},
		{"neg zero", float32(math.Copysign(0, -1)), 0x8000},
		{"neg one", -1, 0xBC00},
		{"+inf", float32(math.Inf(1)), 0x7C00},
		{"-inf", float32(math.Inf(-1)), 0xFC00},
		{"NaN", float32(math.NaN()), 0x7E00},
	}
	for _, c := range cases {
		if got := f32ToF16(c.in); got != c.want {
			t.Errorf("%s: f32ToF16(%g) = %#04x, want %#04x", c.name, c.in, got, c.want)
		}
	}
}

// Expected values follow torch's c10::BFloat16 round_to_nearest_even.
func TestBF16SpecialValues(t *testing.T) {
	bits := math.Float32frombits
	cases := []struct {
		name string
		in   float32
		want uint16
	}{
		{"one", 1, 0x3F80},
		{"tie to even down", bits(0x3F808000), 0x3F80},
		{"tie to even up", bits(0x3F818000), 0x3F82},
		{"above tie", bits(0x3F808001), 0x3F81},
		{"max f32 overflows to inf", math.MaxFloat32, 0x7F80},
		{"largest finite bf16", bits(0x7F7F7FFF), 0x7F7F},
		{"f32 min subnormal", bits(1), 0x0000},
		{"subnormal tie even", bits(0x00008000), 0x0000},
		{"subnormal tie odd", bits(0x00018000), 0x0002},
		{"neg zero", float32(math.Copysign(0, -1)), 0x8000},
		{"+inf", float32(math.Inf(1)), 0x7F80},
		{"-inf", float32(math.Inf(-1)), 0xFF80},
		{"NaN", float32(math.NaN()), 0x7FC0},
		{"negative NaN", bits(0xFFC00001), 0x7FC0},
	}
	for _, c := range cases {
		if got := f32ToBF16(c.in); got != c.want {
			t.Errorf("%s: f32ToBF16(%#08x) = %#04x, want %#04x", c.name, math.Float32bits(c.in), got, c.want)
		}
	}
}

// big.Float rounding to 8 significant bits is an independent reference for normal values.
func TestBF16MatchesBigFloat(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 100_000 {
		x := math.Float32frombits(rng.Uint32())
		if isNaN(x) || math.IsInf(float64(x), 0) || math.Abs(float64(x)) < 0x1p-126 {
			continue
		}
		r, _ := new(big.Float).SetPrec(8).SetMode(big.ToNearestEven).SetFloat64(float64(x)).Float32()
		if got := f32ToBF16(x); got != uint16(math.Float32bits(r)>>16) {
			t.Fatalf("%g: got %#04x, want %#04x", x, got, math.Float32bits(r)>>16)
		}
	}
}

func TestEncodeDecodeFloat32(t *testing.T) {
	v := []float32{0, 1, -2.5, 3.140625, 1e-3, 65504, float32(math.Inf(-1))}
	for _, dt := range []DType{F32, F64, F16, BF16} {
		raw, err := EncodeFloat32(v, dt)
		if err != nil {
			t.Fatal(err)
		}
		if len(raw) != len(v)*dt.Size() {
			t.Fatalf("%s: %d bytes", dt, len(raw))
		}
		got, err := DecodeFloat32(raw, dt)
		if err != nil {
			t.Fatal(err)
		}
		for i := range v {
			want := v[i]
			switch dt {
			case F16:
				want = f16ToF32(f32ToF16(v[i]))
			case BF16:
				want = math.Float32frombits(uint32(f32ToBF16(v[i])) << 16)
			}
			if got[i] != want {
				t.Errorf("%s[%d]: got %v, want %v", dt, i, got[i], want)
			}
		}
	}
	if _, err := EncodeFloat32(v, I32); err == nil {
		t.Error("EncodeFloat32 to I32 succeeded")
	}
	if _, err := DecodeFloat32([]byte{1, 2, 3}, F16); err == nil {
		t.Error("DecodeFloat32 of 3 bytes as F16 succeeded")
	}
}

func isNaN(x float32) bool { return x != x }
