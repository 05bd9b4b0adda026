package model

import (
	"math"
	"slices"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/dtypes/bfloat16"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/shortllm/shortllm/internal/testutil"
)

// dusBackend is SimpleGo claiming DynamicUpdateSlice, to test the selection logic only (it
// cannot run the op: SimpleGo has no DynamicUpdateSlice, so the dus graph is exercised on XLA
// by scripts/device-check.sh).
type dusBackend struct{ backends.Backend }

func (d dusBackend) Capabilities() backends.Capabilities {
	c := d.Backend.Capabilities().Clone()
	c.Operations[backends.OpTypeDynamicUpdateSlice] = true
	return c
}

func TestEngineFromEnv_Selection(t *testing.T) {
	goB := testBackend(t)
	cases := []struct {
		b        backends.Backend
		override string
		want     string
		wantErr  bool
	}{
		{goB, "", KVUpdateOneHot, false},
		{goB, KVUpdateAuto, KVUpdateOneHot, false},
		{goB, KVUpdateDUS, "", true},
		{dusBackend{goB}, "", KVUpdateDUS, false},
		{dusBackend{goB}, KVUpdateOneHot, KVUpdateOneHot, false},
		{goB, "sideways", "", true},
	}
	for _, c := range cases {
		t.Setenv(KVUpdateEnv, c.override)
		e, err := EngineFromEnv(c.b)
		if (err != nil) != c.wantErr || e.KVUpdate != c.want {
			t.Errorf("override %q on %T: got %q, %v; want %q (error %v)", c.override, c.b, e.KVUpdate, err, c.want, c.wantErr)
		}
		if err == nil && e.DonateKV != (e.KVUpdate == KVUpdateDUS) {
			t.Errorf("override %q on %T: donate %v with %s", c.override, c.b, e.DonateKV, e.KVUpdate)
		}
	}
	t.Setenv(KVUpdateEnv, "")
	t.Setenv(DonateKVEnv, "1")
	if e, err := EngineFromEnv(goB); err != nil || !e.DonateKV {
		t.Errorf("$%s=1: got %+v, %v", DonateKVEnv, e, err)
	}
	t.Setenv(DonateKVEnv, "yes")
	if _, err := EngineFromEnv(goB); err == nil {
		t.Errorf("$%s=yes accepted", DonateKVEnv)
	}
	if d := DefaultEngine(dusBackend{goB}); d.KVUpdate != KVUpdateDUS || !d.DonateKV {
		t.Errorf("default engine with DynamicUpdateSlice: %+v", d)
	}
}

// Donating the cache buffers must not change what is generated (SimpleGo honours donation by
// reusing the buffers, so this exercises the same aliasing XLA does).
func TestGenerate_DonatedCacheSameIDs(t *testing.T) {
	m := loadShared(t, "stories260K")
	be := testBackend(t) // weights stay attached to one backend
	gen := func(donate bool) [][]int {
		r := NewRunnerWith(be, m, Engine{KVUpdate: KVUpdateOneHot, DonateKV: donate})
		out, err := r.Generate([][]int{{1}, {1}}, GenerateOptions{MaxNewTokens: 40, IgnoreEOS: true})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	plain, donated := gen(false), gen(true)
	for b := range plain {
		if !slices.Equal(plain[b], donated[b]) {
			t.Fatalf("row %d: donated cache generated %v, plain %v", b, donated[b], plain[b])
		}
	}
}

func TestRoundBF16(t *testing.T) {
	for _, c := range []struct {
		in   float32
		want float32
	}{
		{1, 1},
		{1 + 1.0/256, 1},                  // tie → even (mantissa ...0)
		{1 + 3.0/256, 1 + 4.0/256},        // tie → even (rounds up)
		{1 + 1.0/256 + 1e-6, 1 + 2.0/256}, // above the tie
		{-2.5, -2.5},
	} {
		if got := roundBF16(c.in).Float32(); got != c.want {
			t.Errorf("roundBF16(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	if v := roundBF16(float32(math.NaN())).Float32(); v == v {
		t.Errorf("NaN rounded to %v", v)
	}
	if got := bfloat16.FromFloat32(1 + 1.0/128).Float32(); got != 1+1.0/128 {
		t.Errorf("exact bf16 value changed: %v", got)
	}
}

// bf16 compute stays close to the float64 golden: weights and activations in bfloat16 keep
// ~3 significant digits, norms/softmax/log-softmax run in float32.
func TestForward_BF16NearGolden(t *testing.T) {
	for _, name := range []string{"stories260K", "deep16"} {
		t.Run(name, func(t *testing.T) {
			g := loadForwardGolden(t, name)
			m, err := Load(testutil.SharedDir(t, "models", name), LoadOptions{DType: dtypes.BFloat16})
			if err != nil {
				t.Fatal(err)
			}
			if m.ComputeDType() != dtypes.BFloat16 {
				t.Fatalf("weights held in %s, want bfloat16", m.ComputeDType())
			}
			r := NewRunner(testBackend(t), m)
			V := m.Config.VocabSize
			logits, err := r.Logits([][]int{g.ProbeIDs}, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, pos := range g.LogitsPositions {
				e := relErr(logits[pos*V:(pos+1)*V], g.Logits[k])
				t.Logf("position %d: bf16 logits relative error %.2e", pos, e)
				if e > 1e-1 {
					t.Errorf("bf16 logits at position %d: relative error %.3g > 1e-1", pos, e)
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
			t.Logf("bf16 mean NLL %.5f, golden %.5f", mean, g.MeanNLL)
			if e := math.Abs(mean-g.MeanNLL) / g.MeanNLL; e > 2e-2 {
				t.Errorf("bf16 mean NLL %.6f, golden %.6f: relative error %.3g > 2e-2", mean, g.MeanNLL, e)
			}
			out, err := r.Generate([][]int{g.GreedyIDs[:1]}, GenerateOptions{MaxNewTokens: 8, IgnoreEOS: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("bf16 greedy %v, golden %v", out[0], g.GreedyIDs[1:9])
		})
	}
}

// Greedy decoding picks ids on the device: its ArgMax must break ties as the host loop does
// (first index), or device and host greedy paths could diverge on equal logits.
func TestDeviceArgMax_TiesLikeHost(t *testing.T) {
	b := testBackend(t)
	rows := [][]float32{{1, 3, 3, 2}, {-1, -1, -1, -1}, {0, 0, 5, 5}, {7, 1, 7, 7}}
	flat := slices.Concat(rows...)
	exec, err := graph.NewExec(b, func(x *graph.Node) *graph.Node {
		return graph.ArgMax(x, -1, dtypes.Int32)
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := exec.Exec(tensors.FromFlatDataAndDimensions(flat, len(rows), 4))
	if err != nil {
		t.Fatal(err)
	}
	ids := tensors.MustCopyFlatData[int32](got[0])
	for i, row := range rows {
		if want := sample(row, GenerateOptions{}, nil); int(ids[i]) != want {
			t.Errorf("row %v: device argmax %d, host %d", row, ids[i], want)
		}
	}
}
