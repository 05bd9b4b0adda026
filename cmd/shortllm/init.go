package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/stage"
)

type initOptions struct {
	config, out, tokenizer, saveDType string
	seed                              uint64
	std                               float64
	maxShard                          string
	force                             bool
}

func newInitCmd(a *app) *cobra.Command {
	o := &initOptions{}
	cmd := &cobra.Command{
		Use:   "init --config config.json --out DIR",
		Short: "Write a randomly initialised LLaMA checkpoint for a config (to train from scratch or to benchmark)",
		Example: `  shortllm init --config testdata/demo/config.json --tokenizer testdata/demo --out /tmp/demo-init --seed 1
  shortllm init --config llama-1b.json --out /tmp/llama-1b-random --save-dtype bf16 --max-shard-size 2GB`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runInit(a, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.config, "config", "", "Hugging Face config.json describing the model")
	f.StringVar(&o.out, "out", "", "output model directory")
	f.StringVar(&o.tokenizer, "tokenizer", "", "directory whose tokenizer files are copied into the output")
	f.StringVar(&o.saveDType, "save-dtype", "f32", "stored dtype: f32, bf16 or f16")
	// --dtype was init's name for the stored dtype before --dtype meant the compute dtype.
	f.StringVar(&o.saveDType, "dtype", "f32", "stored dtype (old name of --save-dtype)")
	_ = f.MarkDeprecated("dtype", "use --save-dtype")
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
	dt, err := model.ParseSaveDType(o.saveDType, "--save-dtype")
	if err != nil || dt == "" {
		return fmt.Errorf("--save-dtype %q: want f32, bf16 or f16", o.saveDType)
	}
	shard, err := parseShardSize(o.maxShard)
	if err != nil {
		return err
	}
	if o.std < 0 {
		return fmt.Errorf("--std %g: must not be negative", o.std)
	}
	if o.tokenizer != "" {
		if st, err := os.Stat(o.tokenizer); err != nil || !st.IsDir() {
			return fmt.Errorf("--tokenizer %s: not a directory", o.tokenizer)
		}
	}
	m, err := stage.Init(stage.InitJob{Config: o.config, Out: o.out, Tokenizer: o.tokenizer, Seed: o.seed, Std: o.std,
		SaveDType: dt, MaxShardSize: shard, Force: o.force})
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(map[string]any{"out": o.out, "params": m.NumParams(), "num_layers": m.Config.NumHiddenLayers, "seed": o.seed})
	}
	fmt.Fprintf(a.out, "wrote %s: %d layers, %d parameters (seed %d)\n", o.out, m.Config.NumHiddenLayers, m.NumParams(), o.seed)
	return nil
}
