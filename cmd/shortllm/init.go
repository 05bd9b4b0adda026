package main

import (
	"fmt"
	"os"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/spf13/cobra"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/outdir"
	"github.com/shortllm/shortllm/internal/safetensors"
)

type initOptions struct {
	config, out, tokenizer, dtype string
	seed                          uint64
	std                           float64
	maxShard                      string
	force                         bool
}

func newInitCmd(a *app) *cobra.Command {
	o := &initOptions{}
	cmd := &cobra.Command{
		Use:   "init --config config.json --out DIR",
		Short: "Write a randomly initialised LLaMA checkpoint for a config (to train from scratch or to benchmark)",
		Example: `  shortllm init --config testdata/demo/config.json --tokenizer testdata/demo --out /tmp/demo-init --seed 1
  shortllm init --config llama-1b.json --out /tmp/llama-1b-random --dtype bf16 --max-shard-size 2GB`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runInit(a, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.config, "config", "", "Hugging Face config.json describing the model")
	f.StringVar(&o.out, "out", "", "output model directory")
	f.StringVar(&o.tokenizer, "tokenizer", "", "directory whose tokenizer files are copied into the output")
	f.StringVar(&o.dtype, "dtype", "f32", "stored dtype: f32, bf16 or f16")
	f.Uint64Var(&o.seed, "seed", 0, "random seed")
	f.Float64Var(&o.std, "std", 0, "weight standard deviation (default: initializer_range from the config, else 0.02)")
	f.StringVar(&o.maxShard, "max-shard-size", "", "shard the weights (e.g. 2GB); default one file")
	f.BoolVar(&o.force, "force", false, "replace an existing --out")
	return cmd
}

func runInit(a *app, o *initOptions) error {
	if o.config == "" || o.out == "" {
		return fmt.Errorf("--config and --out are required")
	}
	dt, err := parseStoredDType(o.dtype)
	if err != nil {
		return err
	}
	var shard int64
	if o.maxShard != "" {
		if shard, err = safetensors.ParseSize(o.maxShard); err != nil || shard <= 0 {
			return fmt.Errorf("--max-shard-size %q: want a positive size such as 2GB", o.maxShard)
		}
	}
	if o.std < 0 {
		return fmt.Errorf("--std %g: must not be negative", o.std)
	}
	if o.tokenizer != "" {
		if st, err := os.Stat(o.tokenizer); err != nil || !st.IsDir() {
			return fmt.Errorf("--tokenizer %s: not a directory", o.tokenizer)
		}
	}
	cfg, err := model.LoadConfig(o.config)
	if err != nil {
		return err
	}
	stage, err := outdir.Begin(o.out, outdir.Options{Inputs: []string{o.config, o.tokenizer}, Force: o.force})
	if err != nil {
		return err
	}
	defer stage.Close()
	std := o.std
	if std == 0 {
		std = cfg.InitializerRange()
	}
	hold := dtypes.Float32
	if dt == safetensors.BF16 {
		hold = dtypes.BFloat16 // same rounding as the save would do, half the memory
	}
	m, err := model.Init(cfg, o.seed, std, hold)
	if err != nil {
		return err
	}
	m.Dir = o.tokenizer // WriteDir copies tokenizer and generation files from here
	if err := m.WriteDir(stage.Path(), model.SaveOptions{DType: dt, MaxShardSize: shard, NoProvenance: true}); err != nil {
		return fmt.Errorf("save %s: %w", o.out, err)
	}
	if err := stage.Commit(); err != nil {
		return err
	}
	if a.json {
		return a.printJSON(map[string]any{"out": o.out, "params": m.NumParams(), "num_layers": cfg.NumHiddenLayers, "seed": o.seed})
	}
	fmt.Fprintf(a.out, "wrote %s: %d layers, %d parameters (seed %d)\n", o.out, cfg.NumHiddenLayers, m.NumParams(), o.seed)
	return nil
}

// parseStoredDType maps --dtype values to safetensors dtypes.
func parseStoredDType(s string) (safetensors.DType, error) {
	switch s {
	case "f32", "fp32", "float32":
		return safetensors.F32, nil
	case "bf16", "bfloat16":
		return safetensors.BF16, nil
	case "f16", "fp16", "float16":
		return safetensors.F16, nil
	}
	return "", fmt.Errorf("--dtype %q: want f32, bf16 or f16", s)
}
