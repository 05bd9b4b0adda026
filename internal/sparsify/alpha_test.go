package sparsify

import (
	"math"
	"testing"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/testutil"
)

// α of every deep16 matrix, both x_min rules, against the eigen-decomposition reference.
func TestHillAlpha_Deep16MatchesReference(t *testing.T) {
	m, err := model.Load(testutil.SharedDir(t, "models", "deep16"), model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for b := 0; b < m.Config.NumHiddenLayers; b++ {
		for _, mod := range blockModules {
			w := loadMatrix(m, weightName(b, mod.name))
			eigs, err := ESDEigenvalues(w)
			if err != nil {
				t.Fatal(err)
			}
			for _, rule := range []string{XminPeak, XminMid} {
				got, want := HillAlpha(eigs, rule), refAlpha(t, w.W, w.Rows, w.Cols, rule)
				if math.Abs(got-want) > 1e-3*math.Abs(want) || math.IsNaN(got) {
					t.Fatalf("%s %s: α %.6g, reference %.6g", weightName(b, mod.name), rule, got, want)
				}
			}
		}
	}
}

// The allocation spans (1±ε) before rescaling, grows with α and averages exactly s weighted by
// parameters.
func TestAlphaSparsities_MeanAndRange(t *testing.T) {
	alphas := []float64{2.0, 3.5, 5.0, 2.6}
	params := []int64{100, 100, 300, 100}
	got, err := AlphaSparsities(alphas, params, 0.5, 0.3)
	if err != nil {
		t.Fatal(err)
	}
	var num, den float64
	for b, s := range got {
		num += s * float64(params[b])
		den += float64(params[b])
	}
	if math.Abs(num/den-0.5) > 1e-12 {
		t.Fatalf("weighted mean %.15g, want 0.5", num/den)
	}
	if r := got[2] / got[0]; math.Abs(r-1.3/0.7) > 1e-12 {
		t.Fatalf("max/min ratio %.6g, want 1.3/0.7", r)
	}
	if !(got[0] < got[3] && got[3] < got[1] && got[1] < got[2]) {
		t.Fatalf("sparsity not increasing with α: %v", got)
	}
	if _, err := AlphaSparsities(alphas, params, 0.9, 0.3); err == nil {
		t.Fatal("a block above 100% sparsity was accepted")
	}
	flat, _ := AlphaSparsities([]float64{3, 3}, []int64{1, 1}, 0.4, 0.3)
	if flat[0] != 0.4 || flat[1] != 0.4 {
		t.Fatalf("equal α: %v, want uniform 0.4", flat)
	}
}
