package stage

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/dtypes"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/outdir"
	"github.com/shortllm/shortllm/internal/safetensors"
)

// InitJob writes a randomly initialised checkpoint for a config.
type InitJob struct {
	Config, Out, Tokenizer string
	Seed                   uint64
	Std                    float64 // 0: the config's initializer_range (else 0.02)
	SaveDType              safetensors.DType
	MaxShardSize           int64
	Force                  bool
}

// Init runs the job and returns the model written (its weights in memory).
func Init(j InitJob) (*model.Model, error) {
	cfg, err := model.LoadConfig(j.Config)
	if err != nil {
		return nil, err
	}
	out, err := outdir.Begin(j.Out, outdir.Options{Inputs: []string{j.Config, j.Tokenizer}, Force: j.Force})
	if err != nil {
		return nil, err
	}
	defer out.Close()
	std := j.Std
	if std == 0 {
		std = cfg.InitializerRange()
	}
	hold := dtypes.Float32
	if j.SaveDType == safetensors.BF16 {
		hold = dtypes.BFloat16 // same rounding as the save would do, half the memory
	}
	m, err := model.Init(cfg, j.Seed, std, hold)
	if err != nil {
		return nil, err
	}
	m.Dir = j.Tokenizer // WriteDir copies tokenizer and generation files from here
	if err := m.WriteDir(out.Path(), model.SaveOptions{DType: j.SaveDType, MaxShardSize: j.MaxShardSize, NoProvenance: true}); err != nil {
		return nil, fmt.Errorf("save %s: %w", j.Out, err)
	}
	return m, out.Commit()
}
