package width

import (
	"strings"
	"testing"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/prune"
)

func oneLine(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
		t.Errorf("err = %v, want one line containing %q", err, want)
	}
}

// TestCheck_BadLayouts: removing every head of a block, splitting a GQA group without the
// flag, or leaving KV groups unequal are one-line errors naming the block.
func TestCheck_BadLayouts(t *testing.T) {
	cfg := loadShared(t, "deep16").Config // 8 query heads, 4 KV heads: groups {0,1} {2,3} …
	plan := func(b int, u prune.LayerUnits) *Plan {
		p := EmptyPlan(cfg.NumHiddenLayers)
		p.Layers[b] = u
		return p
	}
	allHeads, allKV := HeadsFromUnits(cfg.Width(0), UnitKVGroup, []int{0, 1, 2, 3})
	cases := []struct {
		name   string
		p      *Plan
		within bool
		want   string
	}{
		{"every head", plan(5, prune.LayerUnits{Heads: allHeads, KVHeads: allKV}), false, "block 5: removing all 8 attention heads"},
		{"breaks GQA group", plan(3, prune.LayerUnits{Heads: []int{0}}), false, "breaks GQA group 0"},
		{"unequal groups", plan(3, prune.LayerUnits{Heads: []int{0}}), true, "keep 1, 2, 2, 2 query heads"},
		{"every channel", plan(2, prune.LayerUnits{Channels: indices(cfg.IntermediateSize)}), false, "block 2: removing all 172 FFN channels"},
		{"out of range", plan(1, prune.LayerUnits{Channels: []int{172}}), false, "FFN channel 172 is out of range"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { oneLine(t, Check(cfg, c.p, c.within), c.want) })
	}
	// Within groups, removing the same number from every group is a layout repeat_kv runs.
	if err := Check(cfg, plan(3, prune.LayerUnits{Heads: []int{0, 2, 4, 6}}), true); err != nil {
		t.Errorf("balanced query-head removal: %v", err)
	}
}

// TestRun_BadRatios: a ratio whose uniform share removes every head, and query-head units on
// a GQA model without --within-groups, fail before any scoring.
func TestRun_BadRatios(t *testing.T) {
	m := loadShared(t, "deep16")
	r := model.NewRunner(testBackend(t), m)
	w := [][]int{{1, 2, 3}}
	_, err := Run(r, Options{Criterion: "llm-pruner", Ratio: 0.7, Windows: w})
	oneLine(t, err, "removes every attention head of block 4")
	_, err = Run(r, Options{Criterion: "wanda-sp", Ratio: 0.2, Windows: w, HeadUnit: UnitQueryHead})
	oneLine(t, err, "pass --within-groups")
	_, err = Run(r, Options{Criterion: "nope", Ratio: 0.2, Windows: w})
	oneLine(t, err, `unknown width criterion "nope"`)
}

// TestUniformCounts_Deep16: the allocation by hand. deep16 has 759872 parameters; a KV group
// holds 3072 (q, o: 2·8·64 each for its two heads; k, v: 8·64 each), a channel 192. At 20%
// LLM-Pruner prunes blocks 4..13: p = 151974 / (10·(4·3072 + 172·192)) = 0.3354, so one
// group per block (round(1.34)), and round((0.3354·45312 − 3072)/192) = 63 channels.
func TestUniformCounts_Deep16(t *testing.T) {
	cfg := loadShared(t, "deep16").Config
	if tot := prune.CountParams(cfg).Total; tot != 759872 {
		t.Fatalf("deep16 has %d parameters", tot)
	}
	blocks := []int{4, 5, 6, 7, 8, 9, 10, 11, 12, 13}
	c, err := uniformCounts(cfg, blocks, UnitKVGroup, 151974, 0.2)
	if err != nil {
		t.Fatal(err)
	}
	if c[4] != (counts{heads: 1, channels: 63}) || len(c) != 10 {
		t.Errorf("counts %v, want 1 group and 63 channels in each of 10 blocks", c)
	}
}
