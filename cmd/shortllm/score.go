package main

import (
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shortllm/shortllm/internal/pipeline"
	"github.com/shortllm/shortllm/internal/prune"
	"github.com/shortllm/shortllm/internal/score"
	"github.com/shortllm/shortllm/internal/stage"
)

type scoreOptions struct {
	model     string
	criterion string
	out       string
	remat     string
	plot      string
	calib     stage.Calib
	opts      score.Options
}

func newScoreCmd(a *app) *cobra.Command {
	o := &scoreOptions{}
	cmd := &cobra.Command{
		Use:   "score --model DIR --calib FILE [--criterion taylor,ppl,magnitude,bi,angular|all|llm-pruner,wanda-sp,flap]",
		Short: "Rank the model's blocks by importance (Shortened LLaMA's pruning criteria)",
		Long: `Score every Transformer block; lower scores mean less important (pruned first).

Calibration (--calib): .json with {"ids": [[...], ...]} windows (or a file this command wrote:
its calibration.ids are reused, so any run repeats exactly), or text — .txt (one row per line)
or .jsonl (a "text" field per line) — from which --calib-samples rows with at least --seq-len
tokens are drawn at random (seeded by --seed) and a random window cut from each, as the
paper's get_examples does. The windows used are written into the output.

The width criteria (llm-pruner, wanda-sp, flap) score every head unit (KV group) and FFN channel
of every block instead; prune --width uses the same computation.`,
		Example: `  shortllm score --model ../shared/models/deep16 --calib ../shared/data/stories/calib10x128.ids.json --criterion all
  shortllm score --model DIR --calib bookcorpus.jsonl --criterion taylor+ --out scores.json
  shortllm score --model DIR --calib scores.json --criterion ppl --skip-blocks 3,5 --json
  shortllm score --model ../shared/models/deep16 --calib ../shared/data/stories/calib10x128.ids.json --criterion flap,wanda-sp --out width-scores.json
  shortllm score --model DIR --calib bookcorpus.jsonl --criterion ppl+ --plot ppl.png`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runScore(a, cmd, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.model, "model", "", "model directory or Hugging Face id (org/name[@revision])")
	f.StringVar(&o.criterion, "criterion", "taylor", "comma-separated criteria ("+strings.Join(score.Criteria(), ", ")+") or all")
	f.StringVar(&o.out, "out", "", "also write the JSON result to this file")
	f.StringVar(&o.plot, "plot", "", "also draw the block scores as a PNG (FILE-<criterion>.png for several criteria)")
	bindCalibFlags(f, &o.calib, "seed")
	f.IntVar(&o.opts.BatchSize, "batch-size", score.DefaultBatchSize, "windows per forward pass (memory only; scores do not change)")
	f.StringVar(&o.opts.WeightReduction, "weight-reduction", "sum", "taylor/magnitude: fold a tensor's row scores by sum, mean, max or prod")
	f.Float64Var(&o.opts.NormPower, "norm-power", 1, "taylor/magnitude: raise each |w·g| or |w| to this power")
	f.IntVar(&o.opts.Span, "span", 1, "angular: blocks per span")
	f.IntSliceVar(&o.opts.SkipBlocks, "skip-blocks", nil, "score the model with these blocks already removed, e.g. 3,5")
	f.StringVar(&o.remat, "remat", "auto", "taylor: recompute block activations in the backward pass: auto (when they outweigh the weights), on or off")
	addDTypeFlag(f, a)
	return cmd
}

func runScore(a *app, cmd *cobra.Command, o *scoreOptions) error {
	if wnames, ok, err := widthCriteria(o.criterion); err != nil || ok {
		if err != nil {
			return err
		}
		return runScoreWidth(a, cmd, o, wnames)
	}
	names, err := score.ParseCriteria(o.criterion)
	if err != nil {
		return fmt.Errorf("--criterion: %w", err)
	}
	if err := checkRules(append(calibRules(o.calib), atLeast("--batch-size", o.opts.BatchSize, 1), atLeast("--span", o.opts.Span, 1),
		positiveFloat("--norm-power", o.opts.NormPower))...); err != nil {
		return err
	}
	job := stage.ScoreJob{Criteria: names, Calib: o.calib, Options: o.opts}
	if job.Remat, err = stage.ParseRemat(o.remat); err != nil {
		return fmt.Errorf("--%w", err)
	}
	if c, ok := job.NeedsCalib(); ok && o.calib.Path == "" {
		return fmt.Errorf("--calib is required for criterion %s (only magnitude needs no data)", c)
	}
	e, m, outFile, err := a.openForResult(cmd.Context(), o.model, o.out, o.calib.Path)
	if err != nil {
		return err
	}
	defer outFile.Close()
	results, err := e.Score(m, job)
	if err != nil {
		return err
	}
	doc, err := score.MarshalResults(results)
	if err != nil {
		return err
	}
	if err := outFile.Write(doc); err != nil {
		return err
	}
	if err := writeScorePlots(o.plot, names, results); err != nil {
		return err
	}
	if a.json {
		_, err = a.out.Write(doc)
		return err
	}
	for _, r := range results {
		printScoreTable(a.out, r)
	}
	return nil
}

// writeScorePlots draws each criterion's scores (blocks the "+" policy keeps marked, for the
// "+" criteria; the unpruned baseline where the criterion has one).
func writeScorePlots(path string, names []string, results []*score.Result) error {
	if path == "" {
		return nil
	}
	for i, r := range results {
		bs := pipeline.BlockScores{Criterion: names[i], Scores: r.Scores, Order: r.Order, Baseline: r.Baseline}
		if strings.HasSuffix(names[i], "+") {
			pol := prune.DefaultPolicy
			for b := range r.NumLayers {
				if b < pol.KeepFirst || b >= r.NumLayers-pol.KeepLast {
					bs.Protected = append(bs.Protected, b)
				}
			}
		}
		file := path
		if len(results) > 1 {
			ext := filepath.Ext(path)
			file = strings.TrimSuffix(path, ext) + "-" + strings.TrimSuffix(names[i], "+") + ext
		}
		if err := pipeline.WriteScorePlot(file, bs); err != nil {
			return err
		}
	}
	return nil
}

// barProgress draws one bar per criterion on stderr, created once the total is known.
func barProgress(a *app, desc string) func(done, total int) {
	var bar interface {
		Set(int) error
		Finish() error
	}
	return func(done, total int) {
		if bar == nil {
			bar = a.progress(total, desc)
		}
		_ = bar.Set(done)
		if done >= total {
			_ = bar.Finish()
			bar = nil // a further round (iterative pruning) draws a new bar
		}
	}
}

const barWidth = 30

// printScoreTable prints block, score, rank (1 = pruned first) and a bar spanning the lowest
// to the highest score: close scores are what a ranking has to tell apart.
func printScoreTable(w io.Writer, r *score.Result) {
	rank := make(map[int]int, len(r.Order))
	for i, b := range r.Order {
		rank[b] = i + 1
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, b := range r.Order {
		s, _ := r.Score(b)
		lo, hi = math.Min(lo, s), math.Max(hi, s)
	}
	title := r.Criterion
	if span, ok := r.Options["span"]; ok {
		title += fmt.Sprintf(" (span %v; a score belongs to the span's first block)", span)
	}
	fmt.Fprintf(w, "# %s — %s, %d blocks; rank 1 = least important\n", title, r.Model, r.NumLayers)
	fmt.Fprintf(w, "%5s %14s %5s\n", "block", "score", "rank")
	for i := range r.Scores {
		s, ok := r.Score(i)
		if !ok {
			fmt.Fprintf(w, "%5d %14s %5s\n", i, "-", "-")
			continue
		}
		n := barWidth
		if hi > lo {
			n = 1 + int(math.Round((s-lo)/(hi-lo)*(barWidth-1)))
		}
		fmt.Fprintf(w, "%5d %14.6g %5d %s\n", i, s, rank[i], strings.Repeat("█", n))
	}
}
