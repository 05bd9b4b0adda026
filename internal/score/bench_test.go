package score

import (
	"slices"
	"testing"
	"time"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive

	"github.com/shortllm/shortllm/internal/model"
)

func benchCriterion(b *testing.B, criterion string) {
	r := loadRunner(b, "deep16")
	calib := sharedCalib(b)
	if _, err := Compute(r, calib, criterion, Options{}); err != nil { // compile outside the timing
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Compute(r, calib, criterion, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCriterion_<name>_Deep16 time one criterion on deep16 with the shared 10×128 windows.
func BenchmarkCriterion_Taylor_Deep16(b *testing.B)    { benchCriterion(b, "taylor") }
func BenchmarkCriterion_PPL_Deep16(b *testing.B)       { benchCriterion(b, "ppl") }
func BenchmarkCriterion_Magnitude_Deep16(b *testing.B) { benchCriterion(b, "magnitude") }
func BenchmarkCriterion_BI_Deep16(b *testing.B)        { benchCriterion(b, "bi") }
func BenchmarkCriterion_Angular_Deep16(b *testing.B)   { benchCriterion(b, "angular") }

// pplNaive is the reference ppl criterion: one whole forward per removed block.
func pplNaive(r *model.Runner, ids [][]int, opts Options) ([]float64, error) {
	cfg := r.Model.Config
	out := make([]float64, cfg.NumHiddenLayers)
	in, lab := shifted(ids)
	inT, err := model.IDsTensor(in)
	if err != nil {
		return nil, err
	}
	labT, _ := model.IDsTensor(lab)
	for _, b := range kept(cfg.NumHiddenLayers, opts.SkipBlocks) {
		skip := append(slices.Clone(opts.SkipBlocks), b)
		res, err := r.Run("test/ppl-naive/"+model.SkipKey(skip), func(p model.Params, x []*Node) []*Node {
			f := model.Forward(cfg, p, x[0], model.ForwardOptions{SkipBlocks: skip})
			s, _ := model.NLLSum(f.Logits, x[1])
			return []*Node{s}
		}, inT, labT)
		if err != nil {
			return nil, err
		}
		out[b] = float64(res[0].Value().(float32))
	}
	return out, nil
}

// BenchmarkPPL_PrefixReuse_Deep16 times the ppl criterion both ways on the same windows and
// reports the ratio reuse/naive (the target is ≤ 0.55).
func BenchmarkPPL_PrefixReuse_Deep16(b *testing.B) {
	r := loadRunner(b, "deep16")
	calib := sharedCalib(b)
	opts := Options{BatchSize: len(calib.IDs)}
	if _, err := pplNaive(r, calib.IDs, opts); err != nil {
		b.Fatal(err)
	}
	if _, err := Compute(r, calib, "ppl", opts); err != nil {
		b.Fatal(err)
	}
	var naive, reuse, naiveCPU, reuseCPU time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0, c0 := time.Now(), cpuTime()
		if _, err := pplNaive(r, calib.IDs, opts); err != nil {
			b.Fatal(err)
		}
		t1, c1 := time.Now(), cpuTime()
		if _, err := Compute(r, calib, "ppl", opts); err != nil {
			b.Fatal(err)
		}
		naive, naiveCPU = naive+t1.Sub(t0), naiveCPU+c1-c0
		reuse, reuseCPU = reuse+time.Since(t1), reuseCPU+cpuTime()-c1
	}
	b.ReportMetric(naive.Seconds()/float64(b.N), "naive-s/op")
	b.ReportMetric(reuse.Seconds()/float64(b.N), "reuse-s/op")
	b.ReportMetric(reuse.Seconds()/naive.Seconds(), "ratio")
	// CPU time is what a shared machine's other load does not inflate.
	b.ReportMetric(reuseCPU.Seconds()/naiveCPU.Seconds(), "cpu-ratio")
}
