package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/shortllm/shortllm/internal/backend"
	"github.com/shortllm/shortllm/internal/eval"
)

type evalSpeedOptions struct {
	model      string
	compare    []string
	batchSizes string
	promptLen  int
	prompt     string
	newTokens  int
	runs       int
	warmup     int
	out        string
}

func newEvalSpeedCmd(a *app) *cobra.Command {
	o := &evalSpeedOptions{}
	cmd := &cobra.Command{
		Use:   "speed --model DIR [--compare DIR2 ...]",
		Short: "Generation latency, throughput and peak memory at several batch sizes (forced output length)",
		Example: `  shortllm eval speed --model ../shared/models/deep16 --compare ../shared/models/stories260K --batch-sizes 1,8 --new-tokens 32 --runs 3 --warmup 1
  shortllm eval speed --model ./Llama-3.2-1B --compare ./pruned-35 --prompt "The Leaning Tower of Pisa is known for" --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runEvalSpeed(a, cmd, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.model, "model", "", "model directory or Hugging Face id (the reference for ratios)")
	f.StringSliceVar(&o.compare, "compare", nil, "more models to measure the same way")
	f.StringVar(&o.batchSizes, "batch-sizes", "1,8,16,32,64", "comma-separated batch sizes")
	f.IntVar(&o.promptLen, "prompt-len", 128, "random prompt of this many tokens (ignored with --prompt)")
	f.StringVar(&o.prompt, "prompt", "", "prompt text (encoded with the model's tokenizer)")
	f.IntVar(&o.newTokens, "new-tokens", 128, "tokens generated per sequence (EOS ignored)")
	f.IntVar(&o.runs, "runs", 30, "timed runs per batch size (median reported)")
	f.IntVar(&o.warmup, "warmup", 10, "untimed runs first")
	f.StringVar(&o.out, "out", "", "also write the results JSON to this file")
	addDTypeFlag(f, a)
	return cmd
}

type speedModel struct {
	provenance
	Points []eval.SpeedPoint `json:"points"`
	// RatioToFirst is this model's throughput over the first model's, per batch size.
	RatioToFirst []float64 `json:"throughput_ratio_to_first"`
}

type speedReport struct {
	NewTokens int          `json:"new_tokens"`
	PromptLen int          `json:"prompt_len"`
	Runs      int          `json:"runs"`
	Warmup    int          `json:"warmup"`
	Models    []speedModel `json:"models"`
}

func runEvalSpeed(a *app, cmd *cobra.Command, o *evalSpeedOptions) error {
	sizes, err := parseInts(o.batchSizes, "--batch-sizes")
	if err != nil {
		return err
	}
	if err := (eval.SpeedOptions{BatchSizes: sizes, NewTokens: o.newTokens, Runs: o.runs, Warmup: o.warmup}).Validate(); err != nil {
		return err
	}
	if err := checkRules(atLeast("--prompt-len", o.promptLen, 1)); err != nil && o.prompt == "" {
		return err
	}
	outFile, err := beginOutFile(o.out, append([]string{o.model}, o.compare...)...)
	if err != nil {
		return err
	}
	defer outFile.Close()
	rep := speedReport{NewTokens: o.newTokens, Runs: o.runs, Warmup: o.warmup}
	for _, ref := range append([]string{o.model}, o.compare...) {
		l, err := a.loadRunner(cmd.Context(), ref, "", o.prompt != "")
		if err != nil {
			return err
		}
		prompt := eval.RandomPrompt(o.promptLen, l.Model.Config.VocabSize, firstOr(l.Model.Config.BOSTokenID, -1), 1)
		if o.prompt != "" {
			prompt = l.Tok.Encode(o.prompt, true)
		}
		rep.PromptLen = len(prompt)
		bar := a.progress(len(sizes)*(o.runs+o.warmup), "speed "+l.Dir)
		pts, err := eval.MeasureSpeed(l.runner, eval.SpeedOptions{BatchSizes: sizes, PromptIDs: prompt,
			NewTokens: o.newTokens, Runs: o.runs, Warmup: o.warmup, Progress: func(d, _ int) { bar.Set(d) }})
		bar.Finish()
		if err != nil {
			return err
		}
		if !backend.IsGo(l.runner.Backend) {
			// go-xla v0.1.4 wraps no PJRT_Device_MemoryStats, so device memory cannot be read
			// here; the figure is the host process's peak RSS (scripts/device-check.sh samples
			// nvidia-smi for the GPU side).
			for i := range pts {
				pts[i].MemKind = "host_rss"
			}
		}
		sm := speedModel{provenance: a.provenance(l), Points: pts}
		for i, p := range pts {
			sm.RatioToFirst = append(sm.RatioToFirst, p.Throughput/firstModelThroughput(rep, i, p))
		}
		rep.Models = append(rep.Models, sm)
	}
	if err := outFile.WriteJSON(rep); err != nil {
		return err
	}
	if a.json {
		return a.printJSON(rep)
	}
	tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "model\tlayers\tparams\tbatch\tlatency s\ttokens/s (min–max)\tmodel MB\tpeak RSS MB\tvs first")
	for _, m := range rep.Models {
		for i, p := range m.Points {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.4f\t%.1f (%.1f–%.1f)\t%.1f\t%.0f\t%.2fx\n", m.Model, m.NumLayers, m.Params, p.BatchSize,
				p.LatencyS, p.Throughput, p.ThroughputMin, p.ThroughputMax, p.WeightsMB+p.KVCacheMB, p.PeakMemMB, m.RatioToFirst[i])
		}
	}
	return tw.Flush()
}

// firstModelThroughput is the reference for ratios: the first model's point at the same index
// (the model itself while measuring the first).
func firstModelThroughput(rep speedReport, i int, self eval.SpeedPoint) float64 {
	if len(rep.Models) == 0 {
		return self.Throughput
	}
	return rep.Models[0].Points[i].Throughput
}

func firstOr(v []int, def int) int {
	if len(v) > 0 {
		return v[0]
	}
	return def
}
