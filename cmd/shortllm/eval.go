package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/shortllm/shortllm/internal/eval"
	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/outdir"
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

type pplJob struct{ path, dataset, bos string }

func (o *evalPPLOptions) jobs() ([]pplJob, error) {
	var files []pplJob
	if o.data != "" {
		files = append(files, pplJob{path: o.data, dataset: datasetFor(o.data, o.dataset)})
	}
	if o.wikitext2 != "" {
		files = append(files, pplJob{path: o.wikitext2, dataset: eval.DatasetWikitext2})
	}
	if o.ptb != "" {
		files = append(files, pplJob{path: o.ptb, dataset: eval.DatasetPTB})
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("give --data FILE, or --wikitext2 FILE and/or --ptb FILE")
	}
	modes := []string{eval.BOSOnce, eval.BOSEvery}
	if o.bos != "" {
		modes = []string{o.bos}
	}
	var jobs []pplJob
	for _, f := range files {
		for _, m := range modes {
			jobs = append(jobs, pplJob{f.path, f.dataset, m})
		}
	}
	return jobs, nil
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

// pplTiming is the forward throughput of one perplexity run: input tokens (chunks × seq-len)
// per second. The first batch also compiles the graph (seconds on XLA), so the throughput of
// the batches after it is reported as well.
type pplTiming struct {
	WallS            float64 `json:"wall_s"`
	Tokens           int     `json:"tokens"`
	TokensPerS       float64 `json:"tokens_per_s"`
	SteadyTokensPerS float64 `json:"steady_tokens_per_s,omitempty"` // after the first batch
	FirstBatchS      float64 `json:"first_batch_s"`
}

func runEvalPPL(a *app, cmd *cobra.Command, o *evalPPLOptions) error {
	if err := checkRules(atLeast("--seq-len", o.seqLen, 2), atLeast("--max-chunks", o.maxChunks, 0), atLeast("--batch-size", o.batch, 1)); err != nil {
		return err
	}
	jobs, err := o.jobs()
	if err != nil {
		return err
	}
	skip, err := parseOptionalInts(o.skip, "--skip-blocks")
	if err != nil {
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
	if err := model.CheckSkipBlocks(l.model.Config, skip); err != nil {
		return err
	}
	lm := eval.RunnerLM{Runner: l.runner, SkipBlocks: skip}
	rep := pplReport{provenance: a.provenance(l), SkipBlocks: skip}
	var tokens int
	for _, j := range jobs {
		bar := a.progress(-1, fmt.Sprintf("ppl %s bos=%s", filepath.Base(j.path), j.bos))
		start := time.Now()
		var first time.Time
		firstChunks := 0
		res, err := eval.EvalPerplexity(lm, l.tok, j.path, j.dataset, eval.PPLOptions{
			SeqLen: o.seqLen, BOS: j.bos, MaxChunks: o.maxChunks, BatchSize: o.batch,
			Progress: func(done, total int) {
				if first.IsZero() {
					first, firstChunks = time.Now(), done
				}
				bar.ChangeMax(total)
				bar.Set(done)
			},
		})
		bar.Finish()
		if err != nil {
			return err
		}
		wall := time.Since(start).Seconds()
		tm := pplTiming{WallS: wall, Tokens: res.Chunks * res.SeqLen, FirstBatchS: first.Sub(start).Seconds()}
		tm.TokensPerS = float64(tm.Tokens) / wall
		if rest := time.Since(first).Seconds(); res.Chunks > firstChunks && rest > 0 {
			tm.SteadyTokensPerS = float64((res.Chunks-firstChunks)*res.SeqLen) / rest
		}
		rep.Results = append(rep.Results, res)
		rep.Timings = append(rep.Timings, tm)
		rep.WallS += wall
		tokens += tm.Tokens
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
