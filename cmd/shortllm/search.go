package main

import (
	"fmt"
	"math"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/prune"
	"github.com/shortllm/shortllm/internal/score"
	"github.com/shortllm/shortllm/internal/search"
	"github.com/shortllm/shortllm/internal/stage"
)

type searchOptions struct {
	model, out          string
	ratio, blocks       string
	keepFirst, keepLast int
	noPlus              bool
	calib               stage.Calib
	opts                search.Options
}

func newSearchCmd(a *app) *cobra.Command {
	o := &searchOptions{}
	cmd := &cobra.Command{
		Use:   "search --model DIR --calib FILE --method policy-gradient|evolution|exhaustive (--ratio R | --num-blocks N) [--out plan.json]",
		Short: "Search for the set of blocks whose joint removal hurts least; write a plan for prune --plan",
		Long: `Search over sets of blocks instead of ranking blocks one at a time. The objective is the
calibration loss: the mean next-token NLL of the --calib windows with the set removed (the
skip-blocks forward, no checkpoint per candidate; states of shared prefixes are reused).

  policy-gradient  Bernoulli keep-probabilities per block learned by REINFORCE with a
                   moving-average baseline and projection onto the ratio (Gao et al., 2024)
  evolution        mutation and crossover of block sets of exactly the target size
                   (Shen et al., 2024)
  exhaustive       every set; refused above --max-sets sets

Work is counted in forwards: one forward = every block run once over all calibration windows.
--budget caps it; a search cut short still writes the best plan found. --seed makes the run
repeatable. The count (--ratio, --num-blocks) and the "+" policy (--keep-first, --keep-last,
--no-plus) are prune's. --blocks evaluates one given set with the same objective instead.`,
		Example: `  shortllm search --model ../shared/models/deep16 --calib ../shared/data/stories/calib10x128.ids.json \
      --ratio 35% --method evolution --budget 300 --seed 1 --out plan.json
  shortllm prune --model ../shared/models/deep16 --plan plan.json --out deep16-35-evo
  shortllm search --model ../shared/models/deep16 --calib ../shared/data/stories/calib10x128.ids.json --ratio 35% --method exhaustive
  shortllm search --model ../shared/models/deep16 --calib ../shared/data/stories/calib10x128.ids.json --blocks 5,7,9,11,12`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runSearch(a, cmd, o) },
	}
	f := cmd.Flags()
	s := &o.opts
	f.StringVar(&o.model, "model", "", "model directory or Hugging Face id (org/name[@revision])")
	f.StringVar(&s.Method, "method", "", "search: "+strings.Join(search.Methods(), ", "))
	f.StringVar(&s.Unit, "unit", prune.UnitBlock, "what to remove: block (heads and channels come with width pruning)")
	f.StringVar(&o.ratio, "ratio", "", "share of parameters to remove, e.g. 35% (blocks counted as prune counts them)")
	f.IntVar(&s.Selection.NumBlocks, "num-blocks", 0, "number of blocks to remove")
	f.StringVar(&o.blocks, "blocks", "", "evaluate this set (comma-separated blocks) instead of searching")
	f.IntVar(&o.keepFirst, "keep-first", prune.DefaultPolicy.KeepFirst, "never remove the first N blocks")
	f.IntVar(&o.keepLast, "keep-last", prune.DefaultPolicy.KeepLast, "never remove the last N blocks")
	f.BoolVar(&o.noPlus, "no-plus", false, "every block is a candidate (no --keep-first/--keep-last)")
	f.Float64Var(&s.Budget, "budget", 0, "stop before spending more than this many forwards (0 = no cap)")
	f.Uint64Var(&s.Seed, "seed", 1, "seed of the search's random choices")
	f.StringVar(&o.out, "out", "", "write the plan (JSON) to this file")
	f.IntVar(&s.MaxExhaustive, "max-sets", search.DefaultMaxExhaustive, "exhaustive: refuse more candidate sets than this")
	f.IntVar(&s.BatchSize, "batch-size", score.DefaultBatchSize, "calibration windows per forward pass (memory only)")
	bindCalibFlags(f, &o.calib, "calib-seed")
	pg, evo := search.DefaultPGOptions(), search.DefaultEvoOptions()
	f.IntVar(&s.PolicyGradient.Steps, "steps", pg.Steps, "policy-gradient: updates")
	f.IntVar(&s.PolicyGradient.Samples, "samples", pg.Samples, "policy-gradient: masks sampled per update (K)")
	f.Float64Var(&s.PolicyGradient.LR, "lr", pg.LR, "policy-gradient: Adam learning rate (cosine-annealed)")
	f.IntVar(&s.PolicyGradient.Window, "window", pg.Window, "policy-gradient: moving-average baseline window")
	f.IntVar(&s.Evolution.Population, "population", evo.Population, "evolution: candidates per generation")
	f.IntVar(&s.Evolution.Generations, "generations", evo.Generations, "evolution: generations")
	f.IntVar(&s.Evolution.Select, "select", evo.Select, "evolution: parents kept (the best so far)")
	f.IntVar(&s.Evolution.Mutation, "mutation", evo.Mutation, "evolution: mutated children per generation")
	f.IntVar(&s.Evolution.Crossover, "crossover", evo.Crossover, "evolution: crossover children per generation")
	f.Float64Var(&s.Evolution.MutationProb, "mutation-prob", evo.MutationProb, "evolution: chance each removed block is swapped")
	return cmd
}

func runSearch(a *app, cmd *cobra.Command, o *searchOptions) error {
	if err := o.checkFlags(cmd); err != nil {
		return err
	}
	e, m, outFile, err := a.openForResult(cmd.Context(), o.model, o.out, o.calib.Path)
	if err != nil {
		return err
	}
	defer outFile.Close()
	if err := o.selection(m.Model.Config); err != nil {
		return err
	}
	plan, err := e.Search(m, o.calib, o.opts)
	if err != nil {
		return err
	}
	if err := outFile.WriteJSON(plan); err != nil {
		return err
	}
	if a.json {
		return a.printJSON(plan)
	}
	return printSearch(a, o, plan)
}

// checkFlags rejects contradictory flags before anything is loaded.
func (o *searchOptions) checkFlags(cmd *cobra.Command) error {
	changed := cmd.Flags().Changed
	n := 0
	for _, set := range []bool{o.ratio != "", changed("num-blocks"), o.blocks != ""} {
		if set {
			n++
		}
	}
	switch {
	case o.calib.Path == "":
		return fmt.Errorf("--calib is required: the objective is the calibration loss")
	case n != 1:
		return fmt.Errorf("give exactly one of --ratio, --num-blocks or --blocks")
	case o.blocks != "" && o.opts.Method != "":
		return fmt.Errorf("--blocks evaluates one set: drop --method")
	case o.blocks == "" && o.opts.Method == "":
		return fmt.Errorf("--method is required: %s", strings.Join(search.Methods(), ", "))
	case o.noPlus && (changed("keep-first") || changed("keep-last")):
		return fmt.Errorf("--no-plus contradicts --keep-first/--keep-last")
	}
	return nil
}

// selection turns the count and policy flags into the search's options.
func (o *searchOptions) selection(cfg *model.Config) error {
	s := &o.opts
	s.Selection.Policy = prune.Policy{KeepFirst: o.keepFirst, KeepLast: o.keepLast}
	if o.noPlus {
		s.Selection.Policy = prune.Policy{}
	}
	var err error
	switch {
	case o.blocks != "":
		s.Method = search.MethodBlocks
		s.Blocks, err = prune.ParseBlocks(o.blocks, cfg.NumHiddenLayers)
	case o.ratio != "":
		s.Selection.Ratio, err = prune.ParseRatio(o.ratio)
	}
	return err
}

func printSearch(a *app, o *searchOptions, p *search.Plan) error {
	how := p.Method
	if p.Method != search.MethodBlocks {
		how += fmt.Sprintf(", seed %d", p.Seed)
		if p.Policy.KeepFirst > 0 || p.Policy.KeepLast > 0 {
			how += fmt.Sprintf("; first %d and last %d kept", p.Policy.KeepFirst, p.Policy.KeepLast)
		}
	}
	fmt.Fprintf(a.out, "removed %d of %d blocks: %s (%s)\n", len(p.Remove), p.NumLayers, blockList(p.RemovedBlocks()), how)
	fmt.Fprintf(a.out, "objective %.6f nats/token (calibration ppl %.4g)\n", p.Objective, math.Exp(p.Objective))
	work := fmt.Sprintf("%.2f forwards, %d of %.0f sets evaluated", p.Forwards, p.SetsEvaluated, p.SearchSpace)
	if p.BudgetExhausted {
		work += fmt.Sprintf("; --budget %g ran out: best plan so far", p.Budget)
	}
	fmt.Fprintln(a.out, work)
	if o.out != "" {
		fmt.Fprintf(a.out, "wrote %s\n", o.out)
	}
	return nil
}
