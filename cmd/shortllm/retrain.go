package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shortllm/shortllm/internal/retrain"
	"github.com/shortllm/shortllm/internal/stage"
)

type retrainOptions struct {
	model, out, mode               string
	data, loraData, valData        string
	valSize                        int
	epochs, maxSteps               int
	maxTokens                      int64
	lr, weightDecay, eps, gradClip float64
	betas                          string
	batchSize, microBatchSize      int
	seqLen, warmupSteps            int
	schedule                       string
	evalEvery, saveEvery           int
	resume, force                  bool
	seed                           uint64
	loraR                          int
	loraAlpha, loraDropout         float64
	targetModules                  string
	rslora, trainOnInputs, merge   bool
	adapter, adapterWeights        string
	remat                          string
	stepDelay                      time.Duration // hidden: lets tests kill a run mid-way
	changed                        func(string) bool
}

func newRetrainCmd(a *app) *cobra.Command {
	o := &retrainOptions{}
	cmd := &cobra.Command{
		Use:   "retrain --model DIR --out DIR --mode lora|cpt|cpt+lora --data FILE",
		Short: "Recover a pruned model with LoRA or continued pretraining (AdamW)",
		Long: `Retrain a (pruned) model, as Shortened LLaMA does after removing blocks.

  lora      trains a PEFT LoRA adapter (--out: adapter_config.json, adapter_model.safetensors;
            --merge adds merged/, the full merged checkpoint)
  cpt       trains every weight on raw text (--out: a Hugging Face checkpoint)
  cpt+lora  CPT on --data, then LoRA on --lora-data (--out: the adapter, cpt/ and merged/)

Data: instructions (.json array or .jsonl with instruction/input/output; alpaca-lora prompt),
raw text (.txt, .jsonl with "text"; packed into --seq-len blocks) or pre-tokenised batches
(.json with input_ids and optional labels). The loss is the mean cross-entropy over the label
tokens of the whole batch (gradient accumulation keeps that normalisation).
Checkpoints (--save-every) go to OUT.ckpt; --resume continues them bit for bit.
--dtype bf16 trains on bfloat16 weights: LoRA keeps its adapter, gradients and AdamW state in
float32; CPT keeps a float32 master copy of every weight and float32 moments, re-casting the
bf16 weights after each update (the master is what checkpoints and the output hold).
--remat recomputes each block's activations in the backward (memory of one block instead of
all; about one more forward pass of time).
train_log.json in --out records every step and the peak memory.`,
		Example: `  shortllm retrain --model pruned --out pruned-lora --mode lora --data alpaca.json --val-size 100 --epochs 2
  shortllm retrain --model pruned --out pruned-cpt --mode cpt --data stories/train.jsonl --max-tokens 1000000 --save-every 50
  shortllm retrain --model pruned --out pruned-lora --mode lora --data alpaca.json --dtype bf16
  shortllm retrain --model pruned --out pruned-cpt --mode cpt --data stories/train.jsonl --dtype bf16 --remat on`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.changed = cmd.Flags().Changed
			return runRetrain(a, cmd, o)
		},
	}
	bindRetrainFlags(cmd, o)
	addDTypeFlag(cmd.Flags(), a)
	return cmd
}

func bindRetrainFlags(cmd *cobra.Command, o *retrainOptions) {
	f := cmd.Flags()
	f.StringVar(&o.model, "model", "", "model directory or Hugging Face id")
	f.StringVar(&o.out, "out", "", "output directory (written atomically)")
	f.StringVar(&o.mode, "mode", "lora", "lora, cpt or cpt+lora")
	f.StringVar(&o.data, "data", "", "training data (.json, .jsonl, .txt)")
	f.StringVar(&o.loraData, "lora-data", "", "instruction data for the LoRA phase of cpt+lora")
	f.StringVar(&o.valData, "val-data", "", "validation data")
	f.IntVar(&o.valSize, "val-size", 0, "hold out this many training examples for validation")
	f.IntVar(&o.epochs, "epochs", 1, "passes over the data")
	f.IntVar(&o.maxSteps, "max-steps", 0, "stop after this many updates (overrides --epochs)")
	f.Int64Var(&o.maxTokens, "max-tokens", 0, "stop after this many input tokens (overrides --epochs)")
	f.Float64Var(&o.lr, "lr", 1e-4, "peak learning rate")
	f.StringVar(&o.betas, "betas", "", "AdamW betas (default 0.9,0.999 for lora, 0.9,0.95 for cpt)")
	f.Float64Var(&o.weightDecay, "weight-decay", 0, "AdamW decoupled weight decay (default 0 for lora, 0.1 for cpt)")
	f.Float64Var(&o.eps, "eps", 1e-8, "AdamW epsilon")
	f.Float64Var(&o.gradClip, "grad-clip", 1.0, "global gradient-norm clipping (0 = off)")
	f.IntVar(&o.batchSize, "batch-size", 64, "examples per update")
	f.IntVar(&o.microBatchSize, "micro-batch-size", 4, "examples per forward/backward pass")
	f.IntVar(&o.seqLen, "seq-len", 256, "cutoff length (instructions) or block size (text)")
	f.IntVar(&o.warmupSteps, "warmup-steps", 100, "linear warmup updates")
	f.StringVar(&o.schedule, "schedule", "linear", "learning-rate schedule: linear, cosine or constant")
	f.IntVar(&o.evalEvery, "eval-every", 0, "validation loss every N updates (and at the end)")
	f.IntVar(&o.saveEvery, "save-every", 0, "resumable checkpoint every N updates (in OUT.ckpt)")
	f.BoolVar(&o.resume, "resume", false, "continue from OUT.ckpt")
	f.BoolVar(&o.force, "force", false, "replace an existing --out")
	f.Uint64Var(&o.seed, "seed", 42, "seed for data order, LoRA init, dropout and validation split")
	f.IntVar(&o.loraR, "lora-r", 8, "LoRA rank")
	f.Float64Var(&o.loraAlpha, "lora-alpha", 16, "LoRA alpha (scale alpha/r)")
	f.Float64Var(&o.loraDropout, "lora-dropout", 0.05, "dropout on the LoRA input")
	f.StringVar(&o.targetModules, "target-modules", strings.Join(retrain.DefaultTargetModules, ","), "linear layers that get adapters")
	f.BoolVar(&o.rslora, "rslora", false, "rank-stabilised scale alpha/√r")
	f.BoolVar(&o.trainOnInputs, "train-on-inputs", false, "also train on the prompt tokens")
	f.StringVar(&o.adapter, "adapter", "", "continue training this PEFT adapter directory")
	f.StringVar(&o.adapterWeights, "adapter-weights", "", "adapter weights file to start from (with --adapter)")
	f.BoolVar(&o.merge, "merge", false, "also write the merged full checkpoint (OUT/merged)")
	f.StringVar(&o.remat, "remat", "auto", "recompute block activations in the backward pass: auto (when they outweigh the weights and 2 GiB), on or off")
	f.DurationVar(&o.stepDelay, "step-delay", 0, "sleep after each update (testing)")
	_ = f.MarkHidden("step-delay")
}

func runRetrain(a *app, cmd *cobra.Command, o *retrainOptions) error {
	job, err := o.job()
	if err != nil {
		return err
	}
	if o.model == "" {
		return errModelRequired
	}
	e, err := a.engine()
	if err != nil {
		return err
	}
	bar := newStepBar(a)
	job.Loop.OnStep = func(s retrain.StepLog, total int) {
		bar(s, total)
		time.Sleep(o.stepDelay)
	}
	remat, err := stage.ParseRemat(o.remat)
	if err != nil {
		return fmt.Errorf("--%w", err)
	}
	res, err := e.Retrain(cmd.Context(), o.model, job, remat)
	if err != nil {
		return err
	}
	return printRetrain(a, res)
}

// job turns the flags into a retrain.Job (the model is opened by the stage).
func (o *retrainOptions) job() (*retrain.Job, error) {
	if o.data == "" {
		return nil, fmt.Errorf("--data is required")
	}
	if err := o.checkNumbers(); err != nil {
		return nil, err
	}
	mode, err := retrain.ParseMode(o.mode, false)
	if err != nil {
		return nil, fmt.Errorf("--mode: %w", err)
	}
	cptOpt, loraOpt, err := o.optimizers()
	if err != nil {
		return nil, err
	}
	return &retrain.Job{ModelRef: o.model, Out: o.out, Mode: mode,
		Data: o.data, LoRAData: o.loraData, ValData: o.valData, ValSize: o.valSize,
		DataOptions: retrain.DataOptions{SeqLen: o.seqLen, TrainOnInputs: o.trainOnInputs},
		CPTOptim:    cptOpt, LoRAOptim: loraOpt,
		LoRA:       retrain.NewLoRAConfig(o.loraR, o.loraAlpha, o.loraDropout, splitList(o.targetModules), o.rslora),
		AdapterDir: o.adapter, AdapterWeights: o.adapterWeights, Merge: o.merge, Force: o.force,
		Loop: retrain.Options{Schedule: o.schedule, WarmupSteps: o.warmupSteps, BatchSize: o.batchSize,
			MicroBatchSize: o.microBatchSize, Epochs: o.epochs, MaxSteps: o.maxSteps, MaxTokens: o.maxTokens,
			EvalEvery: o.evalEvery, SaveEvery: o.saveEvery, Resume: o.resume, Seed: o.seed}}, nil
}

// checkNumbers range-checks every numeric flag before the model is loaded.
func (o *retrainOptions) checkNumbers() error {
	return checkRules(atLeast("--epochs", o.epochs, 0), atLeast("--max-steps", o.maxSteps, 0), atLeast64("--max-tokens", o.maxTokens, 0),
		positiveFloat("--lr", o.lr), nonNegativeFloat("--weight-decay", o.weightDecay), positiveFloat("--eps", o.eps),
		nonNegativeFloat("--grad-clip", o.gradClip), atLeast("--batch-size", o.batchSize, 1), atLeast("--micro-batch-size", o.microBatchSize, 1),
		atLeast("--seq-len", o.seqLen, 2), atLeast("--warmup-steps", o.warmupSteps, 0), atLeast("--eval-every", o.evalEvery, 0),
		atLeast("--save-every", o.saveEvery, 0), atLeast("--val-size", o.valSize, 0), atLeast("--lora-r", o.loraR, 1),
		positiveFloat("--lora-alpha", o.loraAlpha), inRange("--lora-dropout", o.loraDropout, 0, 1))
}

// optimizers returns AdamW for the CPT and LoRA phases: the paper's CPT defaults (betas
// 0.9/0.95, weight decay 0.1) and HF Trainer's for LoRA, each overridden by explicit flags.
func (o *retrainOptions) optimizers() (cpt, lora retrain.AdamW, err error) {
	cpt, lora = retrain.DefaultAdamW(retrain.ModeCPT, o.lr), retrain.DefaultAdamW(retrain.ModeLoRA, o.lr)
	cpt.Eps, cpt.ClipNorm, lora.Eps, lora.ClipNorm = o.eps, o.gradClip, o.eps, o.gradClip
	if o.changed("betas") {
		b, err := parseBetas(o.betas)
		if err != nil {
			return cpt, lora, err
		}
		cpt.Beta1, cpt.Beta2, lora.Beta1, lora.Beta2 = b[0], b[1], b[0], b[1]
	}
	if o.changed("weight-decay") {
		cpt.WeightDecay, lora.WeightDecay = o.weightDecay, o.weightDecay
	}
	return cpt, lora, nil
}

func parseBetas(s string) ([2]float64, error) {
	parts := strings.Split(s, ",")
	var b [2]float64
	if len(parts) != 2 {
		return b, fmt.Errorf("--betas %q: want two numbers, e.g. 0.9,0.999", s)
	}
	for i, p := range parts {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || v < 0 || v >= 1 {
			return b, fmt.Errorf("--betas %q: %q is not a number in [0, 1)", s, p)
		}
		b[i] = v
	}
	return b, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// newStepBar shows updates with the loss, learning rate and tokens/s on stderr.
func newStepBar(a *app) func(retrain.StepLog, int) {
	var bar interface {
		Describe(string)
		Set(int) error
	}
	return func(s retrain.StepLog, total int) {
		if bar == nil {
			bar = a.progress(total, "retrain")
		}
		tps := float64(s.Tokens) / max(s.Seconds, 1e-9)
		bar.Describe(fmt.Sprintf("retrain loss %.4f lr %.2e %.0f tok/s", s.Loss, s.LR, tps))
		_ = bar.Set(s.Step)
	}
}

func printRetrain(a *app, res *retrain.Result) error {
	if a.json {
		return a.printJSON(res)
	}
	if res.Finished {
		fmt.Fprintf(a.out, "%s is already finished (no checkpoint left to resume); its log:\n", res.Out)
	}
	for _, phase := range []retrain.Mode{retrain.ModeCPT, retrain.ModeLoRA} {
		l := res.Logs[phase]
		if l == nil {
			continue
		}
		last := l.Steps[len(l.Steps)-1]
		fmt.Fprintf(a.out, "%s: %d steps, final loss %.4f, %.0f tokens/s, peak memory %.1f MiB\n",
			phase, len(l.Steps), last.Loss, l.TokensPerSecond, float64(l.PeakRSSBytes)/(1<<20))
		if l.SkippedExamples > 0 {
			fmt.Fprintf(a.out, "%s: %d examples skipped (no label token within --seq-len)\n", phase, l.SkippedExamples)
		}
		if l.BestValLoss != nil {
			fmt.Fprintf(a.out, "%s: best validation loss %.4f at step %d\n", phase, *l.BestValLoss, l.BestStep)
		}
	}
	if res.Finished {
		return nil
	}
	_, err := fmt.Fprintf(a.out, "wrote %s\n", res.Out)
	return err
}
