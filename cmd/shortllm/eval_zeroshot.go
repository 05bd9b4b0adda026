package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/shortllm/shortllm/internal/eval"
	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/outdir"
)

type evalZeroShotOptions struct {
	model, tasks, dataDir string
	limit, batch          int
	skip, adapter         string
	logSamples, out       string
}

func newEvalZeroShotCmd(a *app) *cobra.Command {
	o := &evalZeroShotOptions{}
	cmd := &cobra.Command{
		Use:   "zeroshot --model DIR --data-dir DIR [--tasks boolq,piqa,...]",
		Short: "Zero-shot accuracy with lm-evaluation-harness v0.4 rules (acc, acc_norm, the paper's average)",
		Example: `  shortllm eval zeroshot --model ../shared/models/deep16 --data-dir ../shared/data/zeroshot --limit 40
  shortllm eval zeroshot --model ./Llama-3.2-1B --data-dir ./zeroshot --tasks arc_easy,piqa --log-samples samples.jsonl --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runEvalZeroShot(a, cmd, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.model, "model", "", "model directory or Hugging Face id")
	f.StringVar(&o.tasks, "tasks", strings.Join(eval.TaskNames(), ","), "comma-separated tasks")
	f.StringVar(&o.dataDir, "data-dir", "", "directory holding <task>.jsonl files (Hugging Face field layout)")
	f.IntVar(&o.limit, "limit", 0, "evaluate the first N items of each task (0 = all)")
	f.IntVar(&o.batch, "batch-size", 1, "items per forward pass (all choices of an item always go together)")
	f.StringVar(&o.skip, "skip-blocks", "", "evaluate without these blocks (comma-separated)")
	f.StringVar(&o.adapter, "adapter", "", "PEFT LoRA adapter directory applied to the model")
	f.StringVar(&o.logSamples, "log-samples", "", "write per-item log-likelihoods as JSON lines to this file")
	f.StringVar(&o.out, "out", "", "also write the results JSON to this file")
	addDTypeFlag(f, a)
	return cmd
}

// zeroShotDoc is the --json document: the harness-layout report with the model's provenance
// keys beside its own top-level keys.
func zeroShotDoc(p provenance, skip []int, rep *eval.ZeroShotReport) (map[string]json.RawMessage, error) {
	doc := map[string]json.RawMessage{}
	extra := struct {
		provenance
		SkipBlocks []int `json:"skip_blocks,omitempty"`
	}{p, skip}
	for _, part := range []any{extra, rep} {
		b, err := json.Marshal(part)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			return nil, err
		}
	}
	return doc, nil
}

func runEvalZeroShot(a *app, cmd *cobra.Command, o *evalZeroShotOptions) error {
	if o.dataDir == "" {
		return fmt.Errorf("--data-dir is required")
	}
	if err := checkRules(atLeast("--batch-size", o.batch, 1), atLeast("--limit", o.limit, 0)); err != nil {
		return err
	}
	skip, err := parseOptionalInts(o.skip, "--skip-blocks")
	if err != nil {
		return err
	}
	outFile, err := beginOutFile(o.out, o.model, o.adapter, o.dataDir)
	if err != nil {
		return err
	}
	defer outFile.Close()
	var tasks []*eval.Task
	for _, name := range strings.Split(o.tasks, ",") {
		t, err := eval.LoadTask(o.dataDir, strings.TrimSpace(name), o.limit)
		if err != nil {
			return err
		}
		tasks = append(tasks, t)
	}
	l, err := a.loadRunner(cmd.Context(), o.model, o.adapter, true)
	if err != nil {
		return err
	}
	if err := model.CheckSkipBlocks(l.Model.Config, skip); err != nil {
		return err
	}
	opts := eval.ZeroShotOptions{ModelDir: l.Dir, BatchSize: o.batch}
	if o.logSamples != "" {
		if err := outdir.CheckFile(o.logSamples, outdir.Options{Inputs: []string{l.Dir, o.adapter, o.dataDir, o.out}, Flag: "--log-samples"}); err != nil {
			return err
		}
		f, err := os.Create(o.logSamples)
		if err != nil {
			return fmt.Errorf("--log-samples: %w", err)
		}
		defer f.Close()
		opts.Samples = f
	}
	bar := a.progress(-1, "zero-shot")
	opts.Progress = func(task string, done, total int) {
		bar.Describe(task)
		bar.ChangeMax(total)
		bar.Set(done)
	}
	rep, err := eval.RunZeroShot(eval.RunnerLM{Runner: l.runner, SkipBlocks: skip}, l.Tok, tasks, opts)
	bar.Finish()
	if err != nil {
		return err
	}
	doc, err := zeroShotDoc(a.provenance(l), skip, rep)
	if err != nil {
		return err
	}
	if err := outFile.WriteJSON(doc); err != nil {
		return err
	}
	if a.json {
		return a.printJSON(doc)
	}
	return printZeroShot(a, rep)
}

func printZeroShot(a *app, rep *eval.ZeroShotReport) error {
	var names []string
	for _, n := range eval.TaskNames() { // the paper's column order
		if _, ok := rep.Results[n]; ok {
			names = append(names, n)
		}
	}
	tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "task\tn\tacc\t±\tacc_norm\t±\tpaper")
	for _, n := range names {
		r := rep.Results[n]
		norm, normErr := "-", "-"
		if r.AccNorm != nil {
			norm, normErr = fmt.Sprintf("%.4f", *r.AccNorm), fmt.Sprintf("%.4f", *r.AccNormStderr)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.4f\t%.4f\t%s\t%s\t%.4f (%s)\n", n, r.N, r.Acc, r.AccStderr, norm, normErr, r.Paper, r.PaperMetric)
	}
	fmt.Fprintf(tw, "paper average\t\t\t\t\t\t%.4f\n", rep.PaperAverage)
	return tw.Flush()
}
