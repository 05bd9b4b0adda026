package search

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/shortllm/shortllm/internal/eval"
	"github.com/shortllm/shortllm/internal/prune"
)

// Exhaustive search finds the set a brute force over every pair finds, the brute force
// scoring each set through eval's perplexity path (Runner.Score with the blocks skipped).
func TestExhaustive_EqualsBruteForce(t *testing.T) {
	r := loadRunner(t, "stories260K")
	calib := smallCalib(t, 3, 32)
	plan, err := Run(r, Options{Method: MethodExhaustive, Calib: calib, Selection: prune.Selection{NumBlocks: 2}})
	if err != nil {
		t.Fatal(err)
	}
	best, bestNLL := []int(nil), math.Inf(1)
	for a := range 5 {
		for b := a + 1; b < 5; b++ {
			res, err := eval.Perplexity(eval.RunnerLM{Runner: r, SkipBlocks: []int{a, b}}, calib.IDs, 3, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.NLL < bestNLL {
				best, bestNLL = []int{a, b}, res.NLL
			}
		}
	}
	if got := plan.RemovedBlocks(); !slices.Equal(got, best) {
		t.Errorf("exhaustive removes %v, brute force %v", got, best)
	}
	if math.Abs(plan.Objective-bestNLL) > 1e-5*bestNLL {
		t.Errorf("objective %.9g, brute force %.9g", plan.Objective, bestNLL)
	}
	if plan.SetsEvaluated != 10 || len(plan.Trace) != 10 || plan.SearchSpace != 10 {
		t.Errorf("evaluated %d sets, %d trace steps, space %g; want 10 each", plan.SetsEvaluated, len(plan.Trace), plan.SearchSpace)
	}
	// Prefix reuse: 10 sets of 3 blocks each would be 6 forwards one by one.
	if plan.Forwards >= 6 {
		t.Errorf("spent %g forwards, no less than without prefix reuse (6)", plan.Forwards)
	}
}

// deep16Options is a small search on deep16 with the "+" policy (10 candidates, 5 removed).
func deep16Options(method string, seed uint64) Options {
	return Options{Method: method, Seed: seed,
		Selection:      prune.Selection{NumBlocks: 5, Policy: prune.DefaultPolicy},
		PolicyGradient: PGOptions{Steps: 6},
		Evolution:      EvoOptions{Population: 6, Generations: 3, Select: 3, Mutation: 3, Crossover: 3}}
}

func TestRun_SameSeedSamePlan(t *testing.T) {
	r := loadRunner(t, "deep16")
	calib := smallCalib(t, 2, 16)
	for _, method := range []string{MethodPolicyGradient, MethodEvolution} {
		t.Run(method, func(t *testing.T) {
			var plans []*Plan
			for range 2 {
				o := deep16Options(method, 7)
				o.Calib = calib
				p, err := Run(r, o)
				if err != nil {
					t.Fatal(err)
				}
				plans = append(plans, p)
			}
			a, b := plans[0], plans[1]
			if !slices.Equal(a.RemovedBlocks(), b.RemovedBlocks()) || a.Objective != b.Objective || !slices.Equal(a.Trace, b.Trace) {
				t.Errorf("seed 7 twice: %v (%g, %d steps) vs %v (%g, %d steps)",
					a.RemovedBlocks(), a.Objective, len(a.Trace), b.RemovedBlocks(), b.Objective, len(b.Trace))
			}
			for _, blk := range a.RemovedBlocks() {
				if !prune.DefaultPolicy.Allowed(blk, 16) {
					t.Errorf("removed block %d, which the + policy protects", blk)
				}
			}
			if len(a.Remove) != 5 {
				t.Errorf("removed %d blocks, want 5", len(a.Remove))
			}
		})
	}
}

// A budget that runs out mid-search still gives the best full-size set seen, with its true
// objective, and never spends more than the budget.
func TestRun_BudgetCutShortKeepsBestSoFar(t *testing.T) {
	r := loadRunner(t, "deep16")
	calib := smallCalib(t, 2, 16)
	for _, method := range []string{MethodPolicyGradient, MethodEvolution, MethodExhaustive} {
		t.Run(method, func(t *testing.T) {
			o := deep16Options(method, 3)
			o.Calib, o.Budget = calib, 2.5
			p, err := Run(r, o)
			if err != nil {
				t.Fatal(err)
			}
			if !p.BudgetExhausted || p.Forwards > 2.5 {
				t.Fatalf("budget 2.5: exhausted %v after %g forwards", p.BudgetExhausted, p.Forwards)
			}
			if len(p.Trace) == 0 || p.Trace[len(p.Trace)-1].Best != p.Objective {
				t.Errorf("trace %v does not end at the plan's objective %g", p.Trace, p.Objective)
			}
			ref, err := eval.Perplexity(eval.RunnerLM{Runner: r, SkipBlocks: p.RemovedBlocks()}, calib.IDs, 2, nil)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(ref.NLL-p.Objective) > 1e-5*ref.NLL {
				t.Errorf("plan %v says %g, eval ppl gives %g", p.RemovedBlocks(), p.Objective, ref.NLL)
			}
		})
	}
}

func TestRun_BadOptionsOneLineErrors(t *testing.T) {
	r := loadRunner(t, "stories260K")
	calib := smallCalib(t, 1, 8)
	cases := []struct {
		name string
		o    Options
		want string
	}{
		{"exhaustive too large", Options{Method: MethodExhaustive, MaxExhaustive: 5, Selection: prune.Selection{NumBlocks: 2}},
			"C(5, 2) = 10 sets exceeds the limit of 5"},
		{"unknown method", Options{Method: "annealing", Selection: prune.Selection{NumBlocks: 2}}, `--method "annealing"`},
		{"head units", Options{Method: MethodEvolution, Unit: "head", Selection: prune.Selection{NumBlocks: 2}}, `only "block" units`},
		{"policy leaves too few", Options{Method: MethodEvolution, Selection: prune.Selection{NumBlocks: 2, Policy: prune.DefaultPolicy}}, "leave 0"},
		{"one sample", Options{Method: MethodPolicyGradient, PolicyGradient: PGOptions{Samples: 1}, Selection: prune.Selection{NumBlocks: 2}}, "--samples 1"},
		{"budget too small", Options{Method: MethodExhaustive, Budget: 0.1, Selection: prune.Selection{NumBlocks: 2}}, "cannot pay for one evaluation"},
		{"negative budget", Options{Method: MethodExhaustive, Budget: -1, Selection: prune.Selection{NumBlocks: 2}}, "--budget -1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.o.Calib = calib
			_, err := Run(r, c.o)
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %v, want one line containing %q", err, c.want)
			}
			if c.name != "policy leaves too few" && !errors.Is(err, ErrSearch) {
				t.Errorf("%v does not wrap ErrSearch", err)
			}
		})
	}
}

// Both operators keep exactly n blocks, drawn from the candidates; crossover only passes on
// blocks a parent removes.
func TestEvolutionOperators_KeepTheCountExactly(t *testing.T) {
	cands := []int{4, 5, 6, 7, 8, 9, 10, 11, 12, 13}
	rn := &runner{n: 5, cands: cands}
	e := &evolver{rn: rn, o: EvoOptions{MutationProb: 0.5}, rng: rand.New(rand.NewPCG(9, 9))}
	for range 20 {
		perm := e.rng.Perm(len(cands))
		set := []int{}
		for _, i := range perm[:5] {
			set = append(set, cands[i])
		}
		e.top = append(e.top, scored{set: normSet(set)})
	}
	for range 500 {
		for name, child := range map[string][]int{"mutate": e.mutate(), "crossover": e.crossover()} {
			if len(normSet(child)) != 5 {
				t.Fatalf("%s gave %v, not 5 distinct blocks", name, child)
			}
			for _, b := range child {
				if !slices.Contains(cands, b) {
					t.Fatalf("%s gave %v: block %d is not a candidate", name, child, b)
				}
			}
		}
	}
}

func TestNextCombination_LexicographicAndComplete(t *testing.T) {
	idx := []int{0, 1, 2}
	var got [][]int
	for {
		got = append(got, slices.Clone(idx))
		if !nextCombination(idx, 5) {
			break
		}
	}
	if len(got) != 10 || !slices.Equal(got[1], []int{0, 1, 3}) || !slices.Equal(got[9], []int{2, 3, 4}) {
		t.Errorf("combinations %v", got)
	}
}
