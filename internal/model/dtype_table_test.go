package model

import (
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"

	"github.com/shortllm/shortllm/internal/safetensors"
)

// One table serves --dtype (compute) and --save-dtype (stored): every spelling maps the same
// way in both, and each flag refuses what it cannot do.
func TestDTypeTable(t *testing.T) {
	compute := map[string]dtypes.DType{"": dtypes.Float32, "f32": dtypes.Float32, "FP32": dtypes.Float32, "float32": dtypes.Float32,
		"bf16": dtypes.BFloat16, " bfloat16 ": dtypes.BFloat16, "f64": dtypes.Float64}
	for in, want := range compute {
		if got, err := ParseDType(in, "--dtype"); err != nil || got != want {
			t.Errorf("ParseDType(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"f16", "fp16", "int8", "bf17"} {
		if _, err := ParseDType(bad, "--dtype"); err == nil {
			t.Errorf("ParseDType(%q) accepted (no compute in it)", bad)
		}
	}
	stored := map[string]safetensors.DType{"": "", "keep": "", "KEEP": "", "f32": safetensors.F32, "bfloat16": safetensors.BF16,
		"bf16": safetensors.BF16, "fp16": safetensors.F16, "float16": safetensors.F16}
	for in, want := range stored {
		if got, err := ParseSaveDType(in, "--save-dtype"); err != nil || got != want {
			t.Errorf("ParseSaveDType(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"f64", "int8"} {
		if _, err := ParseSaveDType(bad, "--save-dtype"); err == nil {
			t.Errorf("ParseSaveDType(%q) accepted", bad)
		}
	}
	for dt, want := range map[dtypes.DType]string{dtypes.Float32: "f32", dtypes.BFloat16: "bf16", dtypes.Float64: "f64", dtypes.InvalidDType: "f32"} {
		if got := DTypeName(dt); got != want {
			t.Errorf("DTypeName(%v) = %q, want %q", dt, got, want)
		}
		if dt != dtypes.InvalidDType {
			if back, err := ParseDType(DTypeName(dt), "x"); err != nil || back != dt {
				t.Errorf("ParseDType(DTypeName(%v)) = %v, %v", dt, back, err)
			}
		}
	}
}
