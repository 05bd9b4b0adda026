package prune

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/shortllm/shortllm/internal/model"
)

func llamaConfig(t *testing.T, hidden, ffn, layers, heads int) *model.Config {
	t.Helper()
	cfg, err := model.ParseConfig([]byte(fmt.Sprintf(`{"model_type":"llama","hidden_size":%d,"intermediate_size":%d,
		"num_hidden_layers":%d,"num_attention_heads":%d,"vocab_size":32000,"tie_word_embeddings":false}`,
		hidden, ffn, layers, heads)))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestCountParams_LLaMA7B(t *testing.T) {
	c := CountParams(llamaConfig(t, 4096, 11008, 32, 32))
	if c.Total != 6_738_415_616 || c.PerBlock != 202_383_360 {
		t.Fatalf("LLaMA-7B: total %d per block %d, want 6738415616 and 202383360", c.Total, c.PerBlock)
	}
}

// The paper's labelled prunings: LLaMA-7B/Vicuna-7B remove 6, 11, 15, 20 and 26 of 32 blocks
// for 20%, 35%, 45%, 60% and 80%; Vicuna-13B removes 8 and 15 of 40 for 21% and 37%.
func TestBlocksForRatio_PaperConfigurations(t *testing.T) {
	llama7 := llamaConfig(t, 4096, 11008, 32, 32)
	vicuna13 := llamaConfig(t, 5120, 13824, 40, 40)
	cases := []struct {
		name  string
		cfg   *model.Config
		ratio float64
		want  int
	}{
		{"7B 20%", llama7, 0.20, 6}, {"7B 35%", llama7, 0.35, 11}, {"7B 45%", llama7, 0.45, 15},
		{"7B 60%", llama7, 0.60, 20}, {"7B 80%", llama7, 0.80, 26},
		{"13B 21%", vicuna13, 0.21, 8}, {"13B 37%", vicuna13, 0.37, 15},
	}
	for _, c := range cases {
		got, err := BlocksForRatio(c.cfg, c.ratio)
		if err != nil || got != c.want {
			t.Errorf("%s: got %d blocks (%v), want %d (share %s)", c.name, got, err, c.want,
				FormatPercent(CountParams(c.cfg).RemovedShare(c.want)))
		}
	}
}

func TestBlocksForRatio_TooSmallOrAll(t *testing.T) {
	cfg := llamaConfig(t, 4096, 11008, 32, 32)
	if _, err := BlocksForRatio(cfg, 0.01); err == nil || !strings.Contains(err.Error(), "removes no block") {
		t.Errorf("1%%: err = %v, want 'removes no block'", err)
	}
	if _, err := BlocksForRatio(cfg, 0.99); err == nil || !strings.Contains(err.Error(), "all 32 blocks") {
		t.Errorf("99%%: err = %v, want 'all 32 blocks'", err)
	}
}

func TestParseRatio(t *testing.T) {
	good := map[string]float64{"35%": 0.35, "0.35": 0.35, " 20 %": 0.2, "12.5%": 0.125, "0.999": 0.999}
	for in, want := range good {
		if got, err := ParseRatio(in); err != nil || math.Abs(got-want) > 1e-12 {
			t.Errorf("ParseRatio(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"0", "0%", "1", "100%", "120%", "35", "-5%", "abc", "NaN", "", "%"} {
		if _, err := ParseRatio(in); err == nil || !strings.HasPrefix(err.Error(), "--ratio") {
			t.Errorf("ParseRatio(%q): err = %v, want a --ratio error", in, err)
		}
	}
}

// TestRecordFile_IsCarriedProvenance: the pruning record is one of the files every derived
// checkpoint carries (retrained, merged), so a CPT-after-prune model still says what was cut.
func TestRecordFile_IsCarriedProvenance(t *testing.T) {
	if !slices.Contains(model.ProvenanceFiles, RecordFile) {
		t.Fatalf("model.ProvenanceFiles %v lacks %s", model.ProvenanceFiles, RecordFile)
	}
}
