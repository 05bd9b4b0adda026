package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/shortllm/shortllm/internal/eval"
	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/outdir"
	"github.com/shortllm/shortllm/internal/stage"
)

func newEvalCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "eval",
		Short: "Evaluate a model: perplexity, zero-shot accuracy, generation speed",
		Args:  cobra.ArbitraryArgs,
		RunE:  unknownSubcommand,
	}
	cmd.AddCommand(newEvalPPLCmd(a), newEvalZeroShotCmd(a), newEvalSpeedCmd(a))
	return cmd
}

type evalPPLOptions struct {
	model, data, dataset, bos string
	wikitext2, ptb            string
	seqLen, maxChunks, batch  int
	skip, adapter             string
	out                       string
}

func newEvalPPLCmd(a *app) *cobra.Command {
	o := &evalPPLOptions{}
	cmd := &cobra.Command{
		Use:   "ppl --model DIR (--data FILE [--dataset wikitext2|ptb|text] | --wikitext2 FILE --ptb FILE)",
		Short: "Perplexity with the Shortened LLaMA protocol (non-overlapping chunks, BOS once or every chunk)",
		Example: `  shortllm eval ppl --model ../shared/models/deep16 --data ../shared/data/stories/heldout.jsonl --bos once
  shortllm eval ppl --model ./Llama-3.2-1B --wikitext2 wiki.test.raw --ptb ptb.valid.txt --max-chunks 64 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runEvalPPL(a, cmd, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.model, "model", "", "model directory or Hugging Face id")
	f.StringVar(&o.data, "data", "", "data file (.txt, .raw or .jsonl with a text field)")
	f.StringVar(&o.dataset, "dataset", "", "how the file becomes rows: wikitext2, ptb or text (default: from the file name)")
	f.StringVar(&o.wikitext2, "wikitext2", "", "WikiText-2 test file (wiki.test.raw)")
	f.StringVar(&o.ptb, "ptb", "", "Penn Treebank file (ptb.valid.txt)")
	f.StringVar(&o.bos, "bos", "", "once, every or none (default: report once and every)")
	f.IntVar(&o.seqLen, "seq-len", 128, "tokens per chunk")
	f.IntVar(&o.maxChunks, "max-chunks", 0, "score only the first N chunks (0 = all)")
	f.IntVar(&o.batch, "batch-size", 8, "chunks per forward pass")
	f.StringVar(&o.skip, "skip-blocks", "", "evaluate without these blocks (comma-separated), no checkpoint written")
	f.StringVar(&o.adapter, "adapter", "", "PEFT LoRA adapter directory applied to the model")
	f.StringVar(&o.out, "out", "", "also write the results JSON to this file")
	addDTypeFlag(f, a)
	return cmd
}

func (o *evalPPLOptions) job() (stage.PPLJob, error) {
	j := stage.PPLJob{SeqLen: o.seqLen, MaxChunks: o.maxChunks, BatchSize: o.batch}
	if o.data != "" {
		j.Files = append(j.Files, stage.PPLFile{Path: o.data, Dataset: datasetFor(o.data, o.dataset)})
	}
	if o.wikitext2 != "" {
		j.Files = append(j.Files, stage.PPLFile{Path: o.wikitext2, Dataset: eval.DatasetWikitext2})
	}
	if o.ptb != "" {
		j.Files = append(j.Files, stage.PPLFile{Path: o.ptb, Dataset: eval.DatasetPTB})
	}
	if len(j.Files) == 0 {
		return j, fmt.Errorf("give --data FILE, or --wikitext2 FILE and/or --ptb FILE")
	}
	if o.bos != "" {
		j.BOS = []string{o.bos}
	}
	return j, nil
}

// datasetFor picks the row rule from --dataset or the file name (wiki* → wikitext2, ptb* → ptb).
func datasetFor(path, flag string) string {
	if flag != "" {
		return flag
	}
	return eval.DatasetFor(path)
}

type pplReport struct {
	provenance
	SkipBlocks []int             `json:"skip_blocks,omitempty"`
	Results    []*eval.PPLResult `json:"results"`
	// Timings[i] is Results[i]'s speed; WallS and TokensPerS cover all of them.
	Timings    []pplTiming `json:"timings"`
	WallS      float64     `json:"wall_s"`
	TokensPerS float64     `json:"tokens_per_s"`
}

type pplTiming = stage.PPLTiming

func runEvalPPL(a *app, cmd *cobra.Command, o *evalPPLOptions) error {
	if err := checkRules(atLeast("--seq-len", o.seqLen, 2), atLeast("--max-chunks", o.maxChunks, 0), atLeast("--batch-size", o.batch, 1)); err != nil {
		return err
	}
	job, err := o.job()
	if err != nil {
		return err
	}
	if job.SkipBlocks, err = parseOptionalInts(o.skip, "--skip-blocks"); err != nil {
		return err
	}
	outFile, err := beginOutFile(o.out, o.model, o.adapter, o.data, o.wikitext2, o.ptb)
	if err != nil {
		return err
	}
	defer outFile.Close()
	l, err := a.loadRunner(cmd.Context(), o.model, o.adapter, true)
	if err != nil {
		return err
	}
	if err := model.CheckSkipBlocks(l.Model.Config, job.SkipBlocks); err != nil {
		return err
	}
	runs, err := a.eng.PPL(l.Opened, job)
	if err != nil {
		return err
	}
	rep := pplReport{provenance: a.provenance(l), SkipBlocks: job.SkipBlocks}
	var tokens int
	for _, r := range runs {
		rep.Results = append(rep.Results, r.Result)
		rep.Timings = append(rep.Timings, r.Timing)
		rep.WallS += r.Timing.WallS
		tokens += r.Timing.Tokens
	}
	if rep.WallS > 0 {
		rep.TokensPerS = float64(tokens) / rep.WallS
	}
	if err := outFile.WriteJSON(rep); err != nil {
		return err
	}
	if a.json {
		return a.printJSON(rep)
	}
	tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "dataset\tfile\tbos\tchunks\ttokens\tppl\twall s\ttokens/s")
	for i, r := range rep.Results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%.4f\t%.2f\t%.0f\n", r.Dataset, filepath.Base(r.DataFile), r.BOS, r.Chunks, r.Tokens, r.PPL,
			rep.Timings[i].WallS, rep.Timings[i].TokensPerS)
	}
	return tw.Flush()
}

// beginOutFile checks and locks a --out results file before any work starts, under the
// output rule of internal/outdir (never an input, never a directory; written atomically).
// An empty path gives a File whose writes do nothing.
func beginOutFile(path string, inputs ...string) (*outdir.File, error) {
	return outdir.BeginFile(path, outdir.Options{Inputs: inputs})
}

func parseOptionalInts(s, flag string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	return parseInts(s, flag)
}
