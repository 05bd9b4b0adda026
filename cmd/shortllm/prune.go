package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/prune"
	"github.com/shortllm/shortllm/internal/safetensors"
	"github.com/shortllm/shortllm/internal/score"
	"github.com/shortllm/shortllm/internal/stage"
)

type pruneOptions struct {
	model, out               string
	ratio, blocks            string
	numBlocks                int
	scores, criterion        string
	planFile                 string
	keepFirst, keepLast      int
	noPlus, iterative, force bool
	saveDType, maxShardSize  string
	calib                    pruneCalib
	width                    pruneWidth
}

// pruneCalib is `shortllm score`'s calibration flags (same names and meaning) and the batch.
type pruneCalib struct {
	stage.Calib
	batchSize int
}

func newPruneCmd(a *app) *cobra.Command {
	o := &pruneOptions{}
	cmd := &cobra.Command{
		Use:   "prune --model DIR --out DIR (--ratio R | --num-blocks N | --blocks 3,5,7 | --plan plan.json) [--scores FILE | --criterion C] [--width]",
		Short: "Remove whole Transformer blocks (depth pruning), or heads and channels (--width), and save the model",
		Long: `Remove whole Transformer blocks and save the shortened model with a provenance record
(shortllm_prune.json). --ratio is the share of all parameters to remove: the block count is the
largest whose removed share is within half a percentage point of it, as the paper labels its
prunings (LLaMA-7B: 20% → 6 blocks = 18.0%, 35% → 11 blocks = 33.0%). By default the first
--keep-first and last --keep-last blocks are never removed (the paper's "+" policy); --blocks
is taken as given, and so is --plan (a plan written by ` + "`shortllm search`" + ` for this model).

--width removes attention heads and FFN channels instead (criteria llm-pruner, wanda-sp, flap;
--ratio counts parameters the same way). A head unit is a KV group (a key/value head with its
query heads); --within-groups allows single query heads where every group keeps the same count.
--heads 3.0,3.1 removes the listed query heads (block.head) as given.`,
		Example: `  shortllm prune --model ../shared/models/deep16 --out deep16-35 --ratio 35% --scores scores.json
  shortllm prune --model ../shared/models/deep16 --out deep16-35 --ratio 35% --criterion ppl --calib ../shared/data/stories/calib10x128.ids.json
  shortllm prune --model ../shared/models/stories260K --out s3 --blocks 1,3
  shortllm prune --model ../shared/models/deep16 --out deep16-w20 --width --criterion flap --ratio 20% --calib ../shared/data/stories/calib10x128.ids.json
  shortllm prune --model ../shared/models/deep16 --out deep16-35-evo --plan plan.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runPrune(a, cmd, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.model, "model", "", "model directory or Hugging Face id (org/name[@revision])")
	f.StringVar(&o.out, "out", "", "directory to write the pruned model to")
	f.StringVar(&o.ratio, "ratio", "", "share of parameters to remove, e.g. 35% or 0.35")
	f.IntVar(&o.numBlocks, "num-blocks", 0, "number of blocks to remove")
	f.StringVar(&o.blocks, "blocks", "", "remove exactly these blocks (comma-separated original indices)")
	f.StringVar(&o.planFile, "plan", "", "remove the blocks of a plan written by `shortllm search`")
	f.StringVar(&o.scores, "scores", "", "block scores written by `shortllm score`")
	f.StringVar(&o.criterion, "criterion", "", "criterion: taylor, ppl, magnitude, bi (computed, or picked from --scores)")
	f.IntVar(&o.keepFirst, "keep-first", prune.DefaultPolicy.KeepFirst, "never remove the first N blocks")
	f.IntVar(&o.keepLast, "keep-last", prune.DefaultPolicy.KeepLast, "never remove the last N blocks")
	f.BoolVar(&o.noPlus, "no-plus", false, "every block is a candidate (no --keep-first/--keep-last)")
	f.BoolVar(&o.iterative, "iterative", false, "remove one block at a time, re-scoring the rest (needs a data criterion)")
	f.StringVar(&o.saveDType, "save-dtype", "keep", "stored dtype of the written checkpoint: keep, bf16, f16 or f32")
	f.StringVar(&o.maxShardSize, "max-shard-size", "", "split weights into shards of at most this size, e.g. 5GB (default: as the input)")
	f.BoolVar(&o.force, "force", false, "replace an existing --out directory")
	bindCalibFlags(f, &o.calib.Calib, "seed")
	f.IntVar(&o.calib.batchSize, "batch-size", 0, fmt.Sprintf("calibration windows per forward pass (default %d)", score.DefaultBatchSize))
	addDTypeFlag(f, a)
	o.width.bind(cmd)
	return cmd
}

func runPrune(a *app, cmd *cobra.Command, o *pruneOptions) error {
	if o.width.on {
		if o.planFile != "" {
			return fmt.Errorf("--plan holds a block plan: it cannot be combined with --width")
		}
		return runPruneWidth(a, cmd, o)
	}
	if err := o.width.checkUnused(); err != nil {
		return err
	}
	if err := o.checkFlags(cmd); err != nil {
		return err
	}
	job, err := o.job(cmd)
	if err != nil {
		return err
	}
	e, err := a.engine()
	if err != nil {
		return err
	}
	if job.Model == "" {
		return errModelRequired
	}
	rec, err := e.Prune(cmd.Context(), job)
	if err != nil {
		return err
	}
	return printPrune(a, o, rec)
}

// job turns the flags into a stage.PruneJob.
func (o *pruneOptions) job(cmd *cobra.Command) (stage.PruneJob, error) {
	j := stage.PruneJob{Model: o.model, PlanFile: o.planFile, Scores: o.scores, Criterion: o.criterion, Calib: o.calib.Calib,
		BatchSize: o.calib.batchSize, Selection: prune.Selection{NumBlocks: o.numBlocks, Iterative: o.iterative,
			Policy: prune.Policy{KeepFirst: o.keepFirst, KeepLast: o.keepLast}}}
	if o.noPlus {
		j.Selection.Policy = prune.Policy{}
	}
	var err error
	if j.Write, err = o.writeOptions(); err != nil {
		return j, err
	}
	switch {
	case o.blocks != "":
		j.Blocks = o.blocks // checked against the model's block count once it is loaded
	case o.ratio != "":
		if j.Selection.Ratio, err = prune.ParseRatio(o.ratio); err != nil {
			return j, err
		}
	}
	return j, nil
}

// checkFlags rejects contradictory flags before anything is loaded.
func (o *pruneOptions) checkFlags(cmd *cobra.Command) error {
	n := 0
	for _, set := range []bool{o.ratio != "", cmd.Flags().Changed("num-blocks"), o.blocks != "", o.planFile != ""} {
		if set {
			n++
		}
	}
	changed := cmd.Flags().Changed
	if err := checkRules(atLeast("--keep-first", o.keepFirst, 0), atLeast("--keep-last", o.keepLast, 0),
		atLeast("--calib-samples", o.calib.Samples, 0), atLeast("--seq-len", o.calib.SeqLen, 0), atLeast("--batch-size", o.calib.batchSize, 0)); err != nil {
		return err
	}
	if changed("num-blocks") {
		if err := checkRules(atLeast("--num-blocks", o.numBlocks, 1)); err != nil {
			return err
		}
	}
	switch {
	case o.out == "":
		return fmt.Errorf("--out is required")
	case n != 1:
		return fmt.Errorf("give exactly one of --ratio, --num-blocks, --blocks or --plan")
	case o.blocks != "" && (o.scores != "" || o.criterion != "" || o.iterative):
		return fmt.Errorf("--blocks names the blocks itself: drop --scores, --criterion and --iterative")
	case o.planFile != "" && (o.scores != "" || o.criterion != "" || o.iterative || o.calib.Path != "" || o.noPlus || changed("keep-first") || changed("keep-last")):
		return fmt.Errorf("--plan names the blocks itself: drop --scores, --criterion, --iterative, --calib and the policy flags")
	case o.noPlus && (changed("keep-first") || changed("keep-last")):
		return fmt.Errorf("--no-plus contradicts --keep-first/--keep-last")
	case o.noPlus && strings.HasSuffix(o.criterion, "+"):
		return fmt.Errorf("--criterion %s is the protected variant: drop --no-plus", o.criterion)
	case o.iterative && o.scores != "":
		return fmt.Errorf("--iterative re-scores after each removal: use --criterion instead of --scores")
	case o.iterative && o.criterion == "":
		return fmt.Errorf("--iterative needs --criterion")
	case o.iterative && !score.NeedsData(o.criterion):
		return fmt.Errorf("--iterative needs a criterion that runs the model on data (not %q): its scores would not change", o.criterion)
	case o.calib.Path != "" && (o.criterion == "" || o.scores != ""):
		return fmt.Errorf("--calib is used only to compute scores with --criterion (without --scores)")
	case o.criterion != "" && o.scores == "" && score.NeedsData(o.criterion) && o.calib.Path == "":
		return fmt.Errorf("--criterion %s needs calibration data: give --calib FILE", o.criterion)
	}
	return nil
}

func (o *pruneOptions) writeOptions() (prune.WriteOptions, error) {
	w := prune.WriteOptions{Out: o.out, Force: o.force, ToolVersion: version}
	var err error
	if w.DType, err = model.ParseSaveDType(o.saveDType, "--save-dtype"); err != nil {
		return w, err
	}
	if w.MaxShardSize, err = parseShardSize(o.maxShardSize); err != nil {
		return w, err
	}
	return w, nil
}

// parseShardSize reads --max-shard-size ("" keeps the source's sharding).
func parseShardSize(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	size, err := safetensors.ParseSize(s)
	if err != nil || size <= 0 {
		return 0, fmt.Errorf("--max-shard-size %q: want a positive size such as 5GB or 500MB", s)
	}
	return size, nil
}

// pruneProgress draws one bar per scoring round on stderr.
func pruneProgress(a *app, criterion string) func(done, total int) {
	var bar interface {
		Set(int) error
		Finish() error
	}
	return func(done, total int) {
		if bar == nil {
			bar = a.progress(total, "scoring "+criterion)
		}
		_ = bar.Set(done)
		if done >= total {
			_ = bar.Finish()
			bar = nil
		}
	}
}

// pruneReport is the --json document: the provenance record plus where it was written.
type pruneReport struct {
	Out string `json:"out"`
	*prune.Record
}

func printPrune(a *app, o *pruneOptions, rec *prune.Record) error {
	if a.json {
		return a.printJSON(pruneReport{Out: o.out, Record: rec})
	}
	how := "as listed"
	if rec.Criterion != "" {
		how = "by " + rec.Criterion
		if rec.Iterative {
			how += ", iteratively"
		}
	}
	if rec.Policy != nil && (rec.Policy.KeepFirst > 0 || rec.Policy.KeepLast > 0) {
		how += fmt.Sprintf("; first %d and last %d kept", rec.Policy.KeepFirst, rec.Policy.KeepLast)
	}
	fmt.Fprintf(a.out, "removed %d of %d blocks: %s (%s)\n", len(rec.RemovedBlocks), rec.NumLayersBefore, blockList(rec.RemovedBlocks), how)
	fmt.Fprintf(a.out, "parameters %d → %d: %s removed", rec.ParamsBefore, rec.ParamsAfter, prune.FormatPercent(rec.RemovedRatio))
	if n := len(rec.RemovedBlocks); rec.RequestedRatio > 0 {
		// Say what one more block would have cost, so the choice of n can be checked.
		next := rec.RemovedRatio * float64(n+1) / float64(n)
		fmt.Fprintf(a.out, " (--ratio %s; %d blocks would remove %s)", prune.FormatPercent(rec.RequestedRatio), n+1, prune.FormatPercent(next))
	}
	_, err := fmt.Fprintf(a.out, "\nwrote %s (%d blocks)\n", o.out, rec.NumLayersAfter)
	return err
}

// blockList writes block indices as --blocks takes them.
func blockList(v []int) string { return strings.ReplaceAll(joinInts(v), " ", ",") }
