package capture

import (
	"encoding/json"
	"math"
	"os"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/testutil"
	"github.com/shortllm/shortllm/internal/testutil/modeltest"
	"github.com/shortllm/shortllm/internal/testutil/refllama"
)

func calibWindows(tb testing.TB, n int) [][]int {
	tb.Helper()
	raw, err := os.ReadFile(testutil.SharedDir(tb, "data", "stories", "calib10x128.ids.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var f struct {
		IDs [][]int `json:"ids"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		tb.Fatal(err)
	}
	return f.IDs[:n]
}

// refStats accumulates the same statistics from the float64 reference's taps.
type refStats struct {
	sumSq, sum, gram map[string][]float64
	tokens           int
}

func (r *refStats) add(point string, rows [][]float64) {
	d := len(rows[0])
	if r.sumSq[point] == nil {
		r.sumSq[point], r.sum[point], r.gram[point] = make([]float64, d), make([]float64, d), make([]float64, d*d)
	}
	for _, x := range rows {
		for i, xi := range x {
			r.sumSq[point][i] += xi * xi
			r.sum[point][i] += xi
			for j, xj := range x {
				r.gram[point][i*d+j] += xi * xj
			}
		}
	}
}

func relErr(got, want []float64) float64 {
	var num, den float64
	for i := range want {
		num += (got[i] - want[i]) * (got[i] - want[i])
		den += want[i] * want[i]
	}
	return math.Sqrt(num / den)
}

// TestSession_MatchesFloat64Reference: statistics of every input point of blocks 0 and 2 of
// deep16 equal the float64 reference's, after block 1 was modified before Advance (so block 2
// sees the modified block's outputs, as sequential pruning needs). Batches of 2 over 3
// windows also check that uneven batches accumulate correctly.
func TestSession_MatchesFloat64Reference(t *testing.T) {
	r := modeltest.Runner(t, "deep16")
	m := r.Model
	ref := refllama.Load(t, testutil.SharedDir(t, "models", "deep16"))
	windows := calibWindows(t, 3)

	// Zero every other input column of block 1's down_proj in both models.
	name := "model.layers.1.mlp.down_proj.weight"
	w := model.Float32Values(m.Weights[name])
	dims := m.Weights[name].Shape().Dimensions
	for o := range dims[0] {
		for i := 0; i < dims[1]; i += 2 {
			w[o*dims[1]+i] = 0
			ref.W[name][o*dims[1]+i] = 0
		}
	}
	mod, err := model.TensorFromFloat32(w, dims, m.Weights[name].DType())
	if err != nil {
		t.Fatal(err)
	}

	s, err := Start(r, windows, Options{BatchSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	xs := make([][][]float64, len(windows))
	for k, win := range windows {
		xs[k] = ref.Embed(win)
	}
	for b := range 3 {
		want := &refStats{sumSq: map[string][]float64{}, sum: map[string][]float64{}, gram: map[string][]float64{}}
		for k := range xs {
			ref.Block(b, xs[k], want.add)
		}
		if b == 1 {
			m.Weights[name] = mod // the model now holds what the reference ran block 1 with
			if err := s.Advance(); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := s.Capture(SumSq | Sum | Gram)
		if err != nil {
			t.Fatal(err)
		}
		for _, pt := range Points {
			in := got[pt]
			if in == nil || in.Tokens != int64(3*128) {
				t.Fatalf("block %d %s: %+v", b, pt, in)
			}
			for what, pair := range map[string][2][]float64{
				"sumsq": {in.SumSq, want.sumSq[pt]}, "sum": {in.Sum, want.sum[pt]}, "gram": {in.Gram, want.gram[pt]},
			} {
				if e := relErr(pair[0], pair[1]); e > 1e-5 {
					t.Errorf("block %d %s %s: relative error %.3g", b, pt, what, e)
				}
			}
		}
		raw, err := s.Inputs(DownIn)
		if err != nil {
			t.Fatal(err)
		}
		if d := raw[1].Shape().Dimensions; d[0] != 1 || d[1] != 128 || d[2] != 172 {
			t.Errorf("block %d down_in batch 1 dims %v, want [1 128 172]", b, d)
		}
		if got[AttnIn].Modules[2] != "model.layers.0.self_attn.v_proj" && b == 0 {
			t.Errorf("attn_in modules %v", got[AttnIn].Modules)
		}
		if err := s.Advance(); err != nil {
			t.Fatal(err)
		}
	}
	if s.Next() != 3 {
		t.Errorf("Next() = %d after three advances", s.Next())
	}
}

func TestSession_BadRequests(t *testing.T) {
	r := modeltest.Runner(t, "stories260K")
	m := r.Model
	if _, err := Start(r, nil, Options{}); err == nil {
		t.Error("no windows: want an error")
	}
	if _, err := Start(r, [][]int{{1, 2, 3}, {1, 2}}, Options{}); err == nil {
		t.Error("ragged windows: want an error")
	}
	s, err := Start(r, [][]int{{1, 2, 3, 4}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Capture(0); err == nil {
		t.Error("no stats: want an error")
	}
	if _, err := s.Inputs("qkv"); err == nil {
		t.Error("unknown point: want an error")
	}
	for range m.Config.NumHiddenLayers {
		if err := s.Advance(); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Advance(); err == nil {
		t.Error("advance past the last block: want an error")
	}
	var _ []*tensors.Tensor = s.Hidden()
}
