package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/shortllm/shortllm/internal/pipeline"
)

type pipelineOptions struct {
	cfg        pipeline.Config
	configFile string
	stageDelay time.Duration // hidden: lets tests kill a run between stages
}

func newPipelineCmd(a *app) *cobra.Command {
	o := &pipelineOptions{cfg: pipeline.Defaults()}
	cmd := &cobra.Command{
		Use:   "pipeline --model DIR --out RUN_DIR [--config pipeline.yaml] [flags]",
		Short: "Score, prune, retrain and evaluate in one run, and write the report (resumable)",
		Long: `Run the whole Shortened LLaMA experiment: score the blocks once per criterion, prune per
(criterion, ratio), retrain per mode (none, lora, cpt, cpt+lora), evaluate every model — the
original included — with the same settings, measure speed, and write RUN_DIR/report.md,
report.json and plots/*.png.

Every stage keeps its output in RUN_DIR/<stage>/<label>-<hash>, the hash covering its settings
and inputs, and writes stage.json last. Re-running (after an interruption, or with one more
ratio) reuses finished stages and redoes only what is missing or changed.

--config FILE holds the same keys as the flags (e.g. "ratios: 20%,35%", "retrain-steps: 50");
flags override it; relative paths in the file are relative to the file.`,
		Example: `  shortllm pipeline --config testdata/demo/pipeline.yaml --out runs/demo
  shortllm pipeline --model ../shared/models/deep16 --out runs/deep16 --ratios 20%,35%,50% \
      --criteria ppl,taylor --retrain none,lora,cpt --calib ../shared/data/stories/calib10x128.jsonl \
      --lora-data ../shared/data/alpaca/alpaca_en_demo.json --cpt-data ../shared/data/stories/train.jsonl \
      --eval-ppl stories=text:../shared/data/stories/heldout.jsonl --speed`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runPipeline(a, cmd, o) },
	}
	bindPipelineFlags(cmd.Flags(), o)
	cmd.Flags().DurationVar(&o.stageDelay, "stage-delay", 0, "sleep after each stage (testing)")
	_ = cmd.Flags().MarkHidden("stage-delay")
	return cmd
}

func bindPipelineFlags(f *pflag.FlagSet, o *pipelineOptions) {
	c := &o.cfg
	f.StringVar(&o.configFile, "config", "", "pipeline.yaml with the same keys as these flags (flags override it)")
	f.StringVar(&c.Model, "model", c.Model, "model directory or Hugging Face id (org/name[@revision])")
	f.StringVar(&c.Out, "out", c.Out, "run directory (stages, report.md, report.json, plots/)")
	f.Var(&c.Ratios, "ratios", "pruning ratios (share of parameters), e.g. 20%,35%")
	f.Var(&c.Criteria, "criteria", "block importance criteria: ppl, taylor, magnitude, bi, angular")
	f.Var(&c.WidthCriteria, "width-criteria", "width pruning criteria at the same ratios: llm-pruner, wanda-sp, flap")
	f.Var(&c.Retrain, "retrain", "retraining per pruned model: none, lora, cpt, cpt+lora")
	f.StringVar(&c.DType, "dtype", c.DType, "compute dtype of every stage: f32 or bf16 (checkpoints keep their stored dtype)")
	f.StringVar(&c.Remat, "remat", c.Remat, "recompute block activations in Taylor's and retraining's backward: auto, on or off")
	f.Var(&c.SearchMethods, "search-methods", "searches run as further criteria: evolution, policy-gradient, exhaustive")
	f.Float64Var(&c.SearchBudget, "search-budget", c.SearchBudget, "forwards each search may spend (0 = no cap)")
	f.StringVar(&c.Calib, "calib", c.Calib, "calibration data for scoring (.json ids, .txt, .jsonl)")
	f.IntVar(&c.CalibSamples, "calib-samples", c.CalibSamples, "calibration windows drawn from text")
	f.Uint64Var(&c.Seed, "seed", c.Seed, "seed for calibration sampling, data order and LoRA init")
	f.IntVar(&c.KeepFirst, "keep-first", c.KeepFirst, "never remove the first N blocks")
	f.IntVar(&c.KeepLast, "keep-last", c.KeepLast, "never remove the last N blocks")
	f.BoolVar(&c.NoPlus, "no-plus", c.NoPlus, "every block is a candidate (no --keep-first/--keep-last)")
	f.StringVar(&c.LoRAData, "lora-data", c.LoRAData, "LoRA data (instructions, text or pre-tokenised)")
	f.StringVar(&c.CPTData, "cpt-data", c.CPTData, "continued-pretraining text")
	f.IntVar(&c.RetrainSteps, "retrain-steps", c.RetrainSteps, "updates per retraining phase")
	f.Int64Var(&c.MaxTokens, "max-tokens", c.MaxTokens, "or: input tokens per retraining phase")
	f.Float64Var(&c.LR, "lr", c.LR, "peak learning rate (AdamW, linear schedule)")
	f.IntVar(&c.BatchSize, "batch-size", c.BatchSize, "examples per update")
	f.IntVar(&c.MicroBatchSize, "micro-batch-size", c.MicroBatchSize, "examples per forward/backward pass")
	f.IntVar(&c.WarmupSteps, "warmup-steps", c.WarmupSteps, "warmup updates (default a tenth of --retrain-steps)")
	f.IntVar(&c.LoRARank, "lora-r", c.LoRARank, "LoRA rank (alpha = 2r)")
	f.Var(&c.EvalPPL, "eval-ppl", "perplexity datasets: name=dataset:FILE,... (dataset wikitext2, ptb or text)")
	f.StringVar(&c.EvalZeroShot, "eval-zeroshot", c.EvalZeroShot, "directory of zero-shot <task>.jsonl files")
	f.Var(&c.Tasks, "tasks", "zero-shot tasks")
	f.IntVar(&c.Limit, "limit", c.Limit, "zero-shot: first N items per task (0 = all)")
	f.IntVar(&c.SeqLen, "seq-len", c.SeqLen, "tokens per calibration window, PPL chunk and training block")
	f.IntVar(&c.MaxChunks, "max-chunks", c.MaxChunks, "PPL: first N chunks (0 = all)")
	f.BoolVar(&c.Speed, "speed", c.Speed, "measure generation throughput of the original and each pruned model")
	f.Var(&c.SpeedBatchSizes, "speed-batch-sizes", "batch sizes for --speed")
	f.IntVar(&c.SpeedPromptLen, "speed-prompt-len", c.SpeedPromptLen, "random prompt length for --speed")
	f.IntVar(&c.SpeedNewTokens, "speed-new-tokens", c.SpeedNewTokens, "tokens generated per sequence for --speed")
	f.IntVar(&c.SpeedRuns, "speed-runs", c.SpeedRuns, "timed runs per batch size (median)")
	f.IntVar(&c.SpeedWarmup, "speed-warmup", c.SpeedWarmup, "untimed runs first")
	f.Var(&c.SparsityMethods, "sparsity-methods", "weight-sparsity variants beside depth: method[+alpha][+dsnot|+barber], e.g. wanda,sparsegpt+alpha")
	f.StringVar(&c.Sparsity, "sparsity", c.Sparsity, "share of each block matrix's weights the sparsity variants zero")
	f.Var(&c.SparsityPatterns, "sparsity-patterns", "sparsity patterns: unstructured, 2:4, 4:8")
}

func runPipeline(a *app, cmd *cobra.Command, o *pipelineOptions) error {
	cfg, err := o.config(cmd)
	if err != nil {
		return err
	}
	a.dtype = cfg.DType // the run's compute dtype is every stage's engine dtype
	e, err := a.engine()
	if err != nil {
		return err
	}
	env := pipeline.Env{Engine: e}
	if o.stageDelay > 0 {
		env.AfterStage = func(string) { time.Sleep(o.stageDelay) }
	}
	man, log, err := pipeline.Run(cfg, env)
	if err != nil {
		return err
	}
	rep, err := pipeline.Render(cfg.Out)
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(struct {
			Log    *pipeline.Log    `json:"log"`
			Report *pipeline.Report `json:"report"`
		}{log, rep})
	}
	fmt.Fprintf(a.out, "%d stages run, %d reused; %d models evaluated\n", len(log.Ran), len(log.Reused), len(man.Variants))
	fmt.Fprintf(a.out, "wrote %s/report.md, report.json and %d plots\n", cfg.Out, len(rep.Plots))
	return nil
}

// config merges defaults, --config and the flags given on the command line, in that order.
func (o *pipelineOptions) config(cmd *cobra.Command) (pipeline.Config, error) {
	if o.configFile == "" {
		return o.cfg, nil
	}
	given := map[string]string{}
	cmd.Flags().Visit(func(f *pflag.Flag) { given[f.Name] = f.Value.String() })
	o.cfg = pipeline.Defaults()
	if err := pipeline.LoadConfigFile(o.configFile, &o.cfg); err != nil {
		return o.cfg, err
	}
	for name, v := range given { // flags override the file
		if name == "config" {
			continue
		}
		if err := cmd.Flags().Set(name, strings.TrimSpace(v)); err != nil {
			return o.cfg, fmt.Errorf("--%s: %w", name, err)
		}
	}
	return o.cfg, nil
}
