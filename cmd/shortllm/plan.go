package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shortllm/shortllm/internal/memplan"
	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/prune"
	"github.com/shortllm/shortllm/internal/safetensors"
)

type planOptions struct {
	model, config, stage, dtype string
	ratio, deviceMemory         string
	batchSize, seqLen, loraR    int
	remat                       bool
}

func newPlanCmd(a *app) *cobra.Command {
	o := &planOptions{}
	cmd := &cobra.Command{
		Use:   "plan (--model DIR | --config FILE) [--stage eval|ppl|taylor|lora|cpt|all] [--dtype f32|bf16]",
		Short: "Estimate each stage's peak memory (and a pruning's block count) before running anything",
		Long: `Estimate the peak memory of a stage on one device from the model's shapes alone: weights,
master copy, gradients, optimizer state, saved activations, attention scores and logits, each
shown with its formula (internal/memplan documents them). Nothing is loaded but config.json.
With --ratio, also prints how many blocks that parameter share removes and the counts after.`,
		Example: `  shortllm plan --config ../shared/bench/llama-2-7b-shape.json --dtype bf16 --device-memory 80GB
  shortllm plan --model ../shared/models/deep16 --stage taylor --batch-size 10 --seq-len 128 --ratio 35%
  shortllm plan --config ../shared/bench/llama-2-7b-shape.json --stage cpt --dtype bf16 --remat --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runPlan(a, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.model, "model", "", "model directory (only its config.json is read)")
	f.StringVar(&o.config, "config", "", "a config.json instead of a model directory")
	f.StringVar(&o.stage, "stage", "all", "eval, ppl, taylor, lora, cpt or all")
	f.StringVar(&o.dtype, "dtype", "f32", "compute dtype: f32 or bf16")
	f.IntVar(&o.batchSize, "batch-size", 1, "rows per forward pass (micro-batch for training)")
	f.IntVar(&o.seqLen, "seq-len", 128, "tokens per row")
	f.IntVar(&o.loraR, "lora-r", 8, "LoRA rank (lora stage)")
	f.BoolVar(&o.remat, "remat", false, "recompute block activations in the backward pass (training stages)")
	f.StringVar(&o.ratio, "ratio", "", "also show the blocks a depth pruning of this parameter share removes, e.g. 35%")
	f.StringVar(&o.deviceMemory, "device-memory", "", "say whether each stage fits in this much memory, e.g. 80GB")
	return cmd
}

type planReport struct {
	Config    string              `json:"config"`
	DType     string              `json:"dtype"`
	Batch     int                 `json:"batch_size"`
	SeqLen    int                 `json:"seq_len"`
	Remat     bool                `json:"remat"`
	Backend   string              `json:"backend"`
	Estimates []*memplan.Estimate `json:"estimates"`
	Device    int64               `json:"device_memory_bytes,omitempty"`
	Prune     *planPrune          `json:"prune,omitempty"`
}

type planPrune struct {
	Ratio        float64 `json:"ratio"`
	Blocks       int     `json:"blocks"`
	ParamsBefore int64   `json:"params_before"`
	ParamsAfter  int64   `json:"params_after"`
}

func runPlan(a *app, o *planOptions) error {
	path, err := o.configPath()
	if err != nil {
		return err
	}
	cfg, err := model.LoadConfig(path)
	if err != nil {
		return err
	}
	w := map[string]int{"f32": 4, "float32": 4, "bf16": 2, "bfloat16": 2}[strings.ToLower(o.dtype)]
	if w == 0 {
		return fmt.Errorf("--dtype %q: want f32 or bf16", o.dtype)
	}
	rep := &planReport{Config: path, DType: o.dtype, Batch: o.batchSize, SeqLen: o.seqLen, Remat: o.remat, Backend: a.backendName()}
	stages := memplan.Stages
	if o.stage != "all" {
		stages = []memplan.Stage{memplan.Stage(o.stage)}
	}
	for _, s := range stages {
		e, err := memplan.Plan(memplan.Request{Config: cfg, Stage: s, DTypeBytes: w, Batch: o.batchSize,
			SeqLen: o.seqLen, LoRARank: o.loraR, Remat: o.remat, HostCopy: a.goBackend()})
		if err != nil {
			return err
		}
		rep.Estimates = append(rep.Estimates, e)
	}
	if o.deviceMemory != "" {
		if rep.Device, err = safetensors.ParseSize(o.deviceMemory); err != nil {
			return fmt.Errorf("--device-memory: %w", err)
		}
	}
	if o.ratio != "" {
		if rep.Prune, err = planPruning(cfg, o.ratio); err != nil {
			return err
		}
	}
	if a.json {
		return a.printJSON(rep)
	}
	printPlan(a, rep)
	return nil
}

func (o *planOptions) configPath() (string, error) {
	switch {
	case (o.model == "") == (o.config == ""):
		return "", fmt.Errorf("give exactly one of --model DIR or --config FILE")
	case o.config != "":
		return o.config, nil
	}
	return filepath.Join(o.model, "config.json"), nil
}

func planPruning(cfg *model.Config, ratio string) (*planPrune, error) {
	r, err := prune.ParseRatio(ratio)
	if err != nil {
		return nil, err
	}
	n, err := prune.BlocksForRatio(cfg, r)
	if err != nil {
		return nil, err
	}
	c := prune.CountParams(cfg)
	return &planPrune{Ratio: r, Blocks: n, ParamsBefore: c.Total, ParamsAfter: c.Total - int64(n)*c.PerBlock}, nil
}

func printPlan(a *app, rep *planReport) {
	w := a.out
	fmt.Fprintf(w, "%s, compute %s on the %s backend, batch %d × %d tokens%s\n", rep.Config, rep.DType, rep.Backend, rep.Batch, rep.SeqLen,
		map[bool]string{true: ", rematerialised", false: ""}[rep.Remat])
	for _, e := range rep.Estimates {
		fit := ""
		if rep.Device > 0 {
			fit = map[bool]string{true: "  fits", false: "  does NOT fit"}[e.Peak <= rep.Device]
		}
		fmt.Fprintf(w, "\n%-7s peak ≈ %s%s  (%d parameters)\n", e.Stage, humanBytes(e.Peak), fit, e.Params)
		for _, t := range e.Terms {
			fmt.Fprintf(w, "  %-18s %10s  %s\n", t.Name, humanBytes(t.Bytes), t.Formula)
		}
	}
	if p := rep.Prune; p != nil {
		fmt.Fprintf(w, "\nprune %s: %d blocks, %d → %d parameters (%s removed)\n", prune.FormatPercent(p.Ratio), p.Blocks,
			p.ParamsBefore, p.ParamsAfter, prune.FormatPercent(1-float64(p.ParamsAfter)/float64(p.ParamsBefore)))
	}
}

func humanBytes(b int64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	v, i := float64(b), 0
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.2f %ciB", v, "KMGT"[i-1])
}

// backendName is the backend a run would use, from --backend or $GOMLX_BACKEND, without
// creating it (plan loads nothing).
func (a *app) backendName() string {
	spec := a.backendSpec
	if spec == "" {
		spec = os.Getenv("GOMLX_BACKEND")
	}
	if spec == "" || strings.HasPrefix(spec, "go") {
		return "go"
	}
	return "xla"
}

func (a *app) goBackend() bool { return a.backendName() == "go" }
