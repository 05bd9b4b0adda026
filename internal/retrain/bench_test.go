package retrain

import (
	"testing"

	"github.com/shortllm/shortllm/internal/backend"
	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/testutil"
)

// benchTrain measures training throughput on deep16 at micro-batch 4 × 128 tokens (one
// micro-batch per update): tokens/s of the update steps after the first (which compiles),
// and the process's peak RSS.
func benchTrain(b *testing.B, mode Mode, remat bool) {
	m, err := model.Load(testutil.SharedDir(b, "models", "deep16"), model.LoadOptions{})
	if err != nil {
		b.Fatal(err)
	}
	be, err := backend.New("", nil)
	if err != nil {
		b.Fatal(err)
	}
	exs := make([]Example, 4)
	for i := range exs {
		ids := make([]int, 128)
		for j := range ids {
			ids[j] = 3 + (i*131+j*17)%500
		}
		exs[i] = Example{IDs: ids, Labels: ids}
	}
	data := &Dataset{Path: "bench", Kind: "pretokenized", Examples: exs, Ordered: true}
	o := Options{Mode: mode, Schedule: "constant", BatchSize: 4, MicroBatchSize: 4, MaxSteps: b.N + 1, Remat: remat,
		Optim: AdamW{LR: 1e-4, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1, ClipNorm: 1}}
	if mode == ModeLoRA {
		if o.Adapter, err = NewAdapter(m.Config, NewLoRAConfig(8, 16, 0.05, DefaultTargetModules, false), 1); err != nil {
			b.Fatal(err)
		}
	}
	tr, err := NewTrainer(model.NewRunner(be, m), o)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	log, err := tr.Run(data)
	if err != nil {
		b.Fatal(err)
	}
	var secs float64
	for _, s := range log.Steps[1:] {
		secs += s.Seconds
	}
	b.ReportMetric(float64(b.N*4*128)/secs, "tokens/s")
	b.ReportMetric(log.Steps[0].Seconds, "first-step-s")
	b.ReportMetric(float64(log.PeakRSSBytes)/(1<<20), "peak-MiB")
}

func BenchmarkTrainLoRA_Deep16(b *testing.B)       { benchTrain(b, ModeLoRA, false) }
func BenchmarkTrainCPT_Deep16(b *testing.B)        { benchTrain(b, ModeCPT, false) }
func BenchmarkTrainLoRA_Deep16_Remat(b *testing.B) { benchTrain(b, ModeLoRA, true) }
func BenchmarkTrainCPT_Deep16_Remat(b *testing.B)  { benchTrain(b, ModeCPT, true) }
