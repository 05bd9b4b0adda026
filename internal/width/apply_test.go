package width

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/prune"
	"github.com/shortllm/shortllm/internal/safetensors"
)

// testPlan removes different KV groups and channels per block (non-uniform widths) and, with
// comp, adds random bias compensation.
func testPlan(cfg *model.Config, comp bool) *Plan {
	rng := rand.New(rand.NewPCG(1, 2))
	p := EmptyPlan(cfg.NumHiddenLayers)
	if comp {
		p.OBias, p.DownBias = make([][]float32, cfg.NumHiddenLayers), make([][]float32, cfg.NumHiddenLayers)
	}
	for b := range p.Layers {
		w := cfg.Width(b)
		groups := rng.Perm(w.NumKeyValueHeads)[:b%w.NumKeyValueHeads] // block 0 keeps every head
		heads, kv := HeadsFromUnits(w, UnitKVGroup, groups)
		chans := rng.Perm(w.IntermediateSize)[:(b*7+3)%(w.IntermediateSize/2)]
		p.Layers[b] = prune.LayerUnits{Heads: heads, KVHeads: kv, Channels: chans}
		if comp && b%2 == 1 {
			p.OBias[b], p.DownBias[b] = randVec(rng, cfg.HiddenSize), randVec(rng, cfg.HiddenSize)
		}
	}
	return p
}

func randVec(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * 0.1)
	}
	return v
}

// TestApply_EqualsMasked: the width-pruned model's logits equal the original's with the
// removed heads and channels zeroed, also after a save and reload (per-block widths in
// config.json) — on MHA with tied head, GQA with llama3 RoPE in bf16, and q/k/v/o biases.
func TestApply_EqualsMasked(t *testing.T) {
	rows := [][]int{{1, 5, 9, 13, 200, 7, 42, 3}, {1, 100, 2, 300, 4, 500, 6, 11}}
	for _, name := range []string{"deep16", "rand-gqa-llama3", "rand-bias-headdim"} {
		for _, comp := range []bool{false, true} {
			t.Run(name, func(t *testing.T) {
				m := loadShared(t, name)
				p := testPlan(m.Config, comp)
				pruned, err := Apply(m, p, false)
				if err != nil {
					t.Fatal(err)
				}
				masked, err := Mask(m, p, false)
				if err != nil {
					t.Fatal(err)
				}
				want := logits(t, masked, rows)
				if e := relErr(logits(t, pruned, rows), want); e > 1e-5 {
					t.Errorf("pruned vs masked logits: relative error %.3g", e)
				}
				gen := func(mm *model.Model) [][]int {
					ids, err := model.NewRunner(testBackend(t), mm).Generate(rows, model.GenerateOptions{MaxNewTokens: 6})
					if err != nil {
						t.Fatal(err)
					}
					return ids
				}
				if g, w := gen(pruned), gen(masked); fmt.Sprint(g) != fmt.Sprint(w) {
					t.Errorf("greedy generation (KV cache) %v, masked model %v", g, w)
				}
				if pruned.NumParams() >= m.NumParams() && !comp {
					t.Errorf("params %d → %d: nothing removed", m.NumParams(), pruned.NumParams())
				}
				dir := filepath.Join(t.TempDir(), "out")
				var so model.SaveOptions
				if comp { // random compensation values are not bf16/f16 numbers: keep them exact
					so.DType = safetensors.F32
				}
				if err := pruned.Save(dir, so); err != nil {
					t.Fatal(err)
				}
				back, err := model.Load(dir, model.LoadOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if back.Config.LayerWidths == nil || !strings.HasPrefix(back.Config.ModelType, "llama") {
					t.Errorf("reloaded config: widths %v, model_type %q", back.Config.LayerWidths, back.Config.ModelType)
				}
				if e := relErr(logits(t, back, rows), want); e > 1e-5 {
					t.Errorf("reloaded pruned vs masked logits: relative error %.3g", e)
				}
			})
		}
	}
}
