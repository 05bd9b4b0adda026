package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shortllm/shortllm/internal/prune"
	"github.com/shortllm/shortllm/internal/score"
	"github.com/shortllm/shortllm/internal/sparsify"
)

type sparsifyOptions struct {
	model, out, sparsity, pattern string
	force                         bool
	saveDType, maxShardSize       string
	calib                         pruneCalib
	o                             sparsify.Options
}

func newSparsifyCmd(a *app) *cobra.Command {
	so := &sparsifyOptions{}
	o := &so.o
	cmd := &cobra.Command{
		Use:   "sparsify --model DIR --out DIR --method M --sparsity S [--pattern P] [--allocation A] [--refine R] [--calib FILE]",
		Short: "Zero individual weights (unstructured or N:M sparsity) without retraining and save the model",
		Long: `Zero individual weights of every block's seven linear layers, block by block: each block is
pruned on the inputs that the already sparsified earlier blocks produce on the calibration
windows, as the methods' released code does. Embeddings, norms and the LM head are untouched.

Methods: magnitude (|W| over each whole matrix), wanda (|W|·‖X‖ per output row), sparsegpt
(OBS, column blocks of 128, adaptive masks) and mrp (all pruned weights of a row removed at once
with the optimal multiple-removal update). --allocation alpha spreads the sparsity over blocks by
AlphaPruning's heavy-tail exponents; --refine dsnot or barber rebuilds the masks afterwards.
The output is a standard checkpoint (zeros stored as zeros: dense kernels run it at the same
speed) with shortllm_sparsity.json recording method, per-matrix sparsity, per-block α and
allocation, and the calibration windows.`,
		Example: `  shortllm sparsify --model ../shared/models/deep16 --out deep16-wanda50 --method wanda --sparsity 50% --calib ../shared/data/stories/calib10x128.ids.json
  shortllm sparsify --model ../shared/models/deep16 --out deep16-sgpt24 --method sparsegpt --sparsity 50% --pattern 2:4 --calib ../shared/data/stories/calib10x128.ids.json
  shortllm sparsify --model ../shared/models/deep16 --out deep16-mag --method magnitude --sparsity 50% --allocation alpha`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runSparsify(a, cmd, so) },
	}
	f := cmd.Flags()
	f.StringVar(&so.model, "model", "", "model directory or Hugging Face id (org/name[@revision])")
	f.StringVar(&so.out, "out", "", "directory to write the sparsified model to")
	f.StringVar(&o.Method, "method", "", "magnitude, wanda, sparsegpt or mrp")
	f.StringVar(&so.sparsity, "sparsity", "", "share of each pruned matrix's weights to zero, e.g. 50% or 0.5")
	f.StringVar(&so.pattern, "pattern", "unstructured", "unstructured or N:M (N of every M consecutive input weights), e.g. 2:4")
	f.StringVar(&o.Allocation, "allocation", sparsify.Uniform, "uniform, or alpha (AlphaPruning: per-block sparsity from heavy-tail exponents)")
	f.Float64Var(&o.Epsilon, "alpha-epsilon", sparsify.DefaultEpsilon, "AlphaPruning ε: block sparsities span (1±ε)·sparsity before rescaling to the mean")
	f.StringVar(&o.AlphaXmin, "alpha-xmin", sparsify.XminPeak, "AlphaPruning Hill estimator x_min: peak (released scripts) or mid (median eigenvalue)")
	f.StringVar(&o.Refine, "refine", "", "rebuild masks after the method: dsnot or barber")
	f.Float64Var(&o.Damp, "damp", sparsify.DefaultDamp, "sparsegpt/mrp: dampening as a share of the mean Hessian diagonal")
	f.IntVar(&o.BlockSize, "block-size", sparsify.DefaultBlockSize, "sparsegpt (and mrp with --mrp-block): columns per block")
	f.BoolVar(&o.MRPBlock, "mrp-block", false, "mrp: remove per column block (for large layers) instead of the whole row at once")
	f.IntVar(&o.DSnoTCycles, "dsnot-cycles", sparsify.DefaultDSnoTCycles, "dsnot: prune-and-grow cycles per row at most (released 50, for rows of 4096+ weights)")
	f.Float64Var(&o.DSnoTThreshold, "dsnot-threshold", sparsify.DefaultDSnoTThreshold, "dsnot: stop a row when its expected error is this small")
	f.BoolVar(&o.DSnoTWithMLP, "dsnot-with-mlp", false, "dsnot: refine MLP matrices too (the released code skips them)")
	f.Float64Var(&o.BarberThreshold, "barber-threshold", sparsify.DefaultBarberThreshold, "barber: share of each row's beneficial swaps made (released 0.01 swaps nothing in rows with fewer than 100 of them)")
	f.StringVar(&so.saveDType, "save-dtype", "keep", "stored dtype of the written checkpoint: keep, bf16, f16 or f32")
	f.StringVar(&so.maxShardSize, "max-shard-size", "", "split weights into shards of at most this size, e.g. 5GB (default: as the input)")
	f.BoolVar(&so.force, "force", false, "replace an existing --out directory")
	bindCalibFlags(f, &so.calib.Calib, "seed")
	f.IntVar(&o.BatchSize, "batch-size", 0, "calibration windows per forward pass (default 10)")
	return cmd
}

func runSparsify(a *app, cmd *cobra.Command, so *sparsifyOptions) error {
	if err := so.parse(); err != nil {
		return err
	}
	wopts, err := (&pruneOptions{out: so.out, force: so.force, saveDType: so.saveDType, maxShardSize: so.maxShardSize}).writeOptions()
	if err != nil {
		return err
	}
	dir, err := a.resolveModel(cmd.Context(), so.model)
	if err != nil {
		return err
	}
	if err := prune.CheckOut(dir, so.out, so.force); err != nil {
		return err
	}
	e, err := a.engine()
	if err != nil {
		return err
	}
	m, rec, err := e.Sparsify(cmd.Context(), dir, so.calib.Calib, so.o, func(total int) func(int, int) {
		bar := a.progress(total, "sparsify "+so.o.Method)
		return func(done, _ int) {
			_ = bar.Set(done)
			if done >= total {
				_ = bar.Finish()
			}
		}
	})
	if err != nil {
		return err
	}
	err = sparsify.Write(m, rec, sparsify.WriteOptions{Out: so.out, DType: wopts.DType, MaxShardSize: wopts.MaxShardSize,
		Force: so.force, ToolVersion: version})
	if err != nil {
		return err
	}
	return printSparsify(a, so.out, rec)
}

// parse reads the flags that need parsing and checks them before anything is loaded.
func (so *sparsifyOptions) parse() error {
	var err error
	switch {
	case so.out == "":
		return fmt.Errorf("--out is required")
	case so.o.Method == "":
		return fmt.Errorf("--method is required: %s", strings.Join(sparsify.Methods(), ", "))
	case so.sparsity == "":
		return fmt.Errorf("--sparsity is required, e.g. 50%%")
	}
	if so.o.Sparsity, err = sparsify.ParseSparsity(so.sparsity); err != nil {
		return err
	}
	if so.o.Pattern, err = sparsify.ParsePattern(so.pattern); err != nil {
		return err
	}
	if so.o.Method == sparsify.Magnitude && so.o.Refine == "" && so.calib.Path != "" {
		return fmt.Errorf("--calib is not used by --method magnitude without --refine")
	}
	if so.calib.Path == "" {
		return so.o.Validate() // names the missing --calib
	}
	so.o.Calib = &score.Calibration{} // checked for presence only; loaded after the model
	err = so.o.Validate()
	so.o.Calib = nil
	return err
}

// sparsifyReport is the --json document: the record plus where it was written.
type sparsifyReport struct {
	Out string `json:"out"`
	*sparsify.Record
}

func printSparsify(a *app, out string, rec *sparsify.Record) error {
	if a.json {
		return a.printJSON(sparsifyReport{Out: out, Record: rec})
	}
	how := rec.Method + " " + rec.Pattern
	if rec.Allocation == sparsify.Alpha {
		how += ", alpha allocation"
	}
	if rec.Refine != "" {
		how += ", " + rec.Refine
	}
	fmt.Fprintf(a.out, "sparsified %d matrices (%s): %s of %d weights zero (asked %s)\n", len(rec.Matrices), how,
		prune.FormatPercent(rec.MeasuredSparsity), rec.PrunableParams, prune.FormatPercent(rec.Sparsity))
	fmt.Fprintf(a.out, "nonzero parameters %d of %d (%s)\n", rec.NonzeroParams, rec.ParamsBefore,
		prune.FormatPercent(float64(rec.NonzeroParams)/float64(rec.ParamsBefore)))
	_, err := fmt.Fprintf(a.out, "wrote %s\n", out)
	return err
}
