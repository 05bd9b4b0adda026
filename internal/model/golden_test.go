package model

import (
	"encoding/json"
	"math"
	"os"
	"testing"

	"github.com/gomlx/gomlx/backends"

	"github.com/shortllm/shortllm/internal/backend"
	"github.com/shortllm/shortllm/internal/testutil"
)

type forwardGolden struct {
	ProbeIDs        []int       `json:"probe_ids"`
	LogitsPositions []int       `json:"logits_positions"`
	Logits          [][]float64 `json:"logits"`
	NLL             []float64   `json:"nll"`
	MeanNLL         float64     `json:"mean_nll"`
	GreedyIDs       []int       `json:"greedy_ids"`
	GreedySafeSteps int         `json:"greedy_safe_steps"`
}

func loadForwardGolden(t *testing.T, name string) forwardGolden {
	t.Helper()
	data, err := os.ReadFile(testutil.SharedDir(t, "goldens", name+".forward.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g forwardGolden
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

func testBackend(t testing.TB) backends.Backend {
	t.Helper()
	b, err := backend.New("go", os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func loadShared(t testing.TB, name string) *Model {
	t.Helper()
	m, err := Load(testutil.SharedDir(t, "models", name), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// relErr is max|a−b| / max|b|, the tolerance measure.
func relErr(got []float32, want []float64) float64 {
	var maxErr, maxAbs float64
	for i, w := range want {
		maxErr = math.Max(maxErr, math.Abs(float64(got[i])-w))
		maxAbs = math.Max(maxAbs, math.Abs(w))
	}
	return maxErr / maxAbs
}

func TestForward_Goldens(t *testing.T) {
	for _, name := range []string{"stories260K", "deep16", "rand-gqa-llama3", "rand-bias-headdim"} {
		t.Run(name, func(t *testing.T) {
			g := loadForwardGolden(t, name)
			m := loadShared(t, name)
			r := NewRunner(testBackend(t), m)
			V := m.Config.VocabSize
			logits, err := r.Logits([][]int{g.ProbeIDs}, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, pos := range g.LogitsPositions {
				e := relErr(logits[pos*V:(pos+1)*V], g.Logits[k])
				t.Logf("position %d: logits relative error %.2e", pos, e)
				if e > 1e-4 {
					t.Errorf("logits at position %d: relative error %.3g > 1e-4", pos, e)
				}
			}
			sc, err := r.Score([][]int{g.ProbeIDs}, nil)
			if err != nil {
				t.Fatal(err)
			}
			var sum float64
			for _, lp := range sc[0].LogProbs {
				sum -= lp
			}
			mean := sum / float64(len(sc[0].LogProbs))
			if e := math.Abs(mean-g.MeanNLL) / g.MeanNLL; e > 1e-4 {
				t.Errorf("mean NLL %.8f, golden %.8f: relative error %.3g > 1e-4", mean, g.MeanNLL, e)
			}
		})
	}
}

func TestGenerate_GreedyGoldens(t *testing.T) {
	for _, name := range []string{"stories260K", "deep16", "rand-gqa-llama3", "rand-bias-headdim"} {
		t.Run(name, func(t *testing.T) {
			g := loadForwardGolden(t, name)
			r := NewRunner(testBackend(t), loadShared(t, name))
			n := min(g.GreedySafeSteps, len(g.GreedyIDs)-1)
			out, err := r.Generate([][]int{g.GreedyIDs[:1]}, GenerateOptions{MaxNewTokens: n, IgnoreEOS: true})
			if err != nil {
				t.Fatal(err)
			}
			want := g.GreedyIDs[1 : 1+n]
			for i := range want {
				if out[0][i] != want[i] {
					t.Fatalf("greedy step %d: got %d, golden %d (safe steps %d)", i, out[0][i], want[i], n)
				}
			}
		})
	}
}
