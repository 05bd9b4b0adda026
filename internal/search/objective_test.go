package search

import (
	"math"
	"testing"

	"github.com/shortllm/shortllm/internal/eval"
	"github.com/shortllm/shortllm/internal/testutil"
	"github.com/shortllm/shortllm/internal/testutil/refllama"
)

// The objective of a set equals `eval ppl --skip-blocks`'s NLL on the same windows, computed
// by another path: Runner.Score runs the whole model in one graph with the blocks skipped and
// returns per-token log-probabilities, summed here. The sets are evaluated in an order that
// makes the objective start from kept prefix states, and twice (memo).
func TestObjective_MatchesEvalPPLSkipBlocks(t *testing.T) {
	r := loadRunner(t, "stories260K")
	calib := smallCalib(t, 3, 48)
	obj, err := NewObjective(r, calib.IDs, 2, []int{1, 2, 3}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	sets := [][]int{{}, {1, 2}, {1, 3}, {2, 3}, {3}, {0, 4}, {1, 2}}
	for _, set := range sets {
		got, err := obj.Eval(set)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := eval.Perplexity(eval.RunnerLM{Runner: r, SkipBlocks: set}, calib.IDs, 3, nil)
		if err != nil {
			t.Fatal(err)
		}
		if rel := math.Abs(got-ref.NLL) / ref.NLL; rel > 1e-5 {
			t.Errorf("skip %v: objective %.9g, eval ppl nll %.9g (rel %.2g)", set, got, ref.NLL, rel)
		}
	}
	// And the float64 reference LLaMA (testutil/refllama) on two of the sets.
	ref := refllama.Load(t, testutil.SharedDir(t, "models", "stories260K"))
	for _, set := range [][]int{{1, 3}, {0, 4}} {
		skip := map[int]bool{}
		for _, b := range set {
			skip[b] = true
		}
		sum, n := ref.NLL(calib.IDs, skip)
		got, _ := obj.Eval(set)
		if want := sum / float64(n); math.Abs(got-want) > 1e-5*want {
			t.Errorf("skip %v: objective %.9g, float64 reference %.9g", set, got, want)
		}
	}
	if obj.Evaluated() != len(sets)-1 {
		t.Errorf("evaluated %d distinct sets, want %d (a repeat must come from the memo)", obj.Evaluated(), len(sets)-1)
	}
}

// Forwards count the blocks actually run: a prefix shared with an earlier set is not rerun.
func TestObjective_ForwardsCountReusedPrefix(t *testing.T) {
	r := loadRunner(t, "stories260K")
	calib := smallCalib(t, 2, 16)
	obj, err := NewObjective(r, calib.IDs, 2, []int{1, 2, 3}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	steps := []struct {
		set  []int
		cost int // blocks run
	}{
		{[]int{1}, 4},    // 0, 2, 3, 4
		{[]int{2}, 3},    // from the state entering 2 with nothing removed: 1, 3, 4
		{[]int{1, 3}, 1}, // entering 3 with {1} removed was kept by the first set: 4
		{[]int{1, 2}, 2}, // entering 1 (≡ entering 3 with {1,2} removed): 3, 4
		{[]int{1}, 0},    // memo
	}
	blocks := 0
	for _, s := range steps {
		if c := obj.Cost(s.set); c != s.cost {
			t.Errorf("cost of %v = %d blocks, want %d", s.set, c, s.cost)
		}
		if _, err := obj.Eval(s.set); err != nil {
			t.Fatal(err)
		}
		blocks += s.cost
	}
	if want := float64(blocks) / 5; math.Abs(obj.Forwards()-want) > 1e-12 {
		t.Errorf("forwards %g, want %g (%d block-forwards / 5 blocks)", obj.Forwards(), want, blocks)
	}
}

// A cache too small for every state evicts the oldest and still gives the same numbers.
func TestObjective_TinyCacheSameValues(t *testing.T) {
	r := loadRunner(t, "stories260K")
	calib := smallCalib(t, 2, 16)
	big, err := NewObjective(r, calib.IDs, 1, []int{0, 1, 2, 3, 4}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer big.Close()
	small, err := NewObjective(r, calib.IDs, 1, []int{0, 1, 2, 3, 4}, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	for _, set := range [][]int{{0}, {1}, {2}, {3}, {4}, {0, 1}, {1, 3}, {2, 4}, {0}} {
		a, err := big.Eval(set)
		if err != nil {
			t.Fatal(err)
		}
		b, err := small.Eval(set)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(a-b) > 1e-6*math.Abs(a) {
			t.Errorf("skip %v: %g with a large cache, %g with a tiny one", set, a, b)
		}
	}
}
