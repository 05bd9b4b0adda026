package prune

import (
	"slices"
	"strings"
	"testing"
)

func TestParseBlocks(t *testing.T) {
	got, err := ParseBlocks("7, 3,5", 16)
	if err != nil || !slices.Equal(got, []int{3, 5, 7}) {
		t.Fatalf("ParseBlocks = %v, %v", got, err)
	}
	bad := map[string]string{"3,16": "out of range", "-1": "out of range", "3,3": "listed twice",
		"a": "not a block index", "0,1,2,3,4": "all 5 blocks", "": "not a block index"}
	for in, want := range bad {
		L := 16
		if want == "all 5 blocks" {
			L = 5
		}
		if _, err := ParseBlocks(in, L); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseBlocks(%q): err = %v, want %q", in, err, want)
		}
	}
}

func TestChoose_PlusPolicySkipsProtectedBlocks(t *testing.T) {
	order := []int{0, 15, 7, 1, 14, 13, 3, 9}
	got, err := Choose(order, 3, 16, DefaultPolicy)
	if err != nil || !slices.Equal(got, []int{7, 9, 13}) {
		t.Fatalf("Choose = %v, %v; want [7 9 13]", got, err)
	}
	got, err = Choose(order, 3, 16, Policy{})
	if err != nil || !slices.Equal(got, []int{0, 7, 15}) {
		t.Fatalf("Choose without policy = %v, %v; want [0 7 15]", got, err)
	}
}

func TestChoose_TooShallowNamesFlags(t *testing.T) {
	_, err := Choose([]int{0, 1, 2, 3, 4}, 2, 5, DefaultPolicy)
	if err == nil || !strings.Contains(err.Error(), "--keep-first 4 --keep-last 2 leave 0") || !strings.Contains(err.Error(), "--no-plus") {
		t.Fatalf("err = %v, want the flags named", err)
	}
	if _, err := Choose([]int{4, 4}, 1, 16, DefaultPolicy); err == nil {
		t.Fatal("a repeated block in the order was accepted")
	}
}

// A ranker whose ranking changes once a block is gone shows that iterative selection uses
// each fresh ranking rather than the first one.
func TestSelect_IterativeReRanks(t *testing.T) {
	cfg := llamaConfig(t, 64, 128, 8, 4)
	calls := 0
	rank := func(skip []int) (*Ranking, error) {
		calls++
		if len(skip) == 0 {
			return &Ranking{Criterion: "fake", Order: []int{0, 3, 4, 5, 2}}, nil
		}
		return &Ranking{Criterion: "fake", Order: []int{5, 4, 2}}, nil // 3 removed: 5 now least important
	}
	p, err := Select(cfg, Selection{NumBlocks: 2, Policy: Policy{KeepFirst: 1, KeepLast: 1}, Iterative: true}, rank)
	if err != nil || !slices.Equal(p.Remove, []int{3, 5}) || calls != 2 || len(p.Steps) != 2 {
		t.Fatalf("Select = %+v, %v (calls %d); want remove [3 5] in 2 rounds", p, err, calls)
	}
	if p.Steps[1].Removed != 5 || !slices.Equal(p.Steps[1].Skipped, []int{3}) {
		t.Errorf("step 2 = %+v", p.Steps[1])
	}
	one, err := Select(cfg, Selection{NumBlocks: 2, Policy: Policy{KeepFirst: 1, KeepLast: 1}}, rank)
	if err != nil || !slices.Equal(one.Remove, []int{3, 4}) {
		t.Fatalf("one-shot Select = %+v, %v; want [3 4]", one, err)
	}
}

func TestSelect_NeedsScores(t *testing.T) {
	cfg := llamaConfig(t, 64, 128, 8, 4)
	if _, err := Select(cfg, Selection{NumBlocks: 2}, nil); err == nil || !strings.Contains(err.Error(), "--scores") {
		t.Fatalf("err = %v", err)
	}
	for _, n := range []int{0, 8, -1} {
		if _, err := Select(cfg, Selection{NumBlocks: n, Ratio: 0}, nil); err == nil || !strings.Contains(err.Error(), "--num-blocks") {
			t.Errorf("--num-blocks %d: err = %v", n, err)
		}
	}
}
