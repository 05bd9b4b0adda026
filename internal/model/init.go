package model

import (
	"math/rand/v2"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/shortllm/shortllm/internal/safetensors"
)

// Init returns a randomly initialised model for cfg, as transformers' _init_weights does:
// linear and embedding weights ~ N(0, std²) (initializer_range, 0.02 by default), biases 0,
// norm weights 1. The same seed always gives the same weights.
func Init(cfg *Config, seed uint64, std float64, dt dtypes.DType) (*Model, error) {
	if dt == dtypes.InvalidDType {
		dt = dtypes.Float32
	}
	if err := CheckMemory(cfg, dt.Size(), "init"); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 0x1a17))
	m := &Model{Config: cfg, Weights: map[string]*tensors.Tensor{}, StoredDTypes: map[string]safetensors.DType{}}
	want := cfg.ExpectedShapes()
	var buf []float32 // reused: float32Tensor copies, and fresh pages cost more than the copy
	for _, name := range sortedKeys(want) {
		shape := want[name]
		n := 1
		for _, d := range shape {
			n *= d
		}
		if n > len(buf) {
			buf = make([]float32, n)
		}
		vals := buf[:n]
		switch {
		case strings.HasSuffix(name, "norm.weight"):
			for i := range vals {
				vals[i] = 1
			}
		case strings.HasSuffix(name, ".bias"):
			clear(vals)
		default:
			for i := range vals {
				vals[i] = float32(rng.NormFloat64() * std)
			}
		}
		t, err := float32Tensor(vals, shape, dt)
		if err != nil {
			return nil, err
		}
		m.Weights[name] = t
		m.StoredDTypes[name] = storedDType(cfg.TorchDtype)
	}
	return m, nil
}

// storedDType maps config.json's torch_dtype to the safetensors dtype written on save.
func storedDType(torchDtype string) safetensors.DType {
	switch torchDtype {
	case "bfloat16":
		return safetensors.BF16
	case "float16":
		return safetensors.F16
	}
	return safetensors.F32
}
