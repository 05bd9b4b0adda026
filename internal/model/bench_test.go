package model

import (
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive
)

func benchBatch(m *Model, B, T int) [][]int {
	rng := rand.New(rand.NewPCG(5, 6))
	rows := make([][]int, B)
	for i := range rows {
		rows[i] = make([]int, T)
		for j := range rows[i] {
			rows[i][j] = rng.IntN(m.Config.VocabSize)
		}
	}
	return rows
}

// BenchmarkForward_Deep16 reports forward tokens/s at batch 4 × 128.
func BenchmarkForward_Deep16(b *testing.B) {
	m := loadShared(b, "deep16")
	r := NewRunner(testBackend(b), m)
	rows := benchBatch(m, 4, 128)
	if _, err := r.Logits(rows, nil); err != nil { // compile outside the timing
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := r.Logits(rows, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(4*128*b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkForwardBackward_Deep16 reports forward+backward (all weights) tokens/s at 4 × 128.
func BenchmarkForwardBackward_Deep16(b *testing.B) {
	m := loadShared(b, "deep16")
	r := NewRunner(testBackend(b), m)
	rows := benchBatch(m, 4, 129)
	in, lab := make([][]int, 4), make([][]int, 4)
	for i, s := range rows {
		in[i], lab[i] = s[:128], s[1:]
	}
	inT, _ := IDsTensor(in)
	labT, _ := IDsTensor(lab)
	names := m.Names()
	fn := func(p Params, x []*Node) []*Node {
		res := Forward(m.Config, p, x[0], ForwardOptions{})
		sum, count := NLLSum(res.Logits, x[1])
		loss := Div(sum, count)
		nodes := make([]*Node, len(names))
		for i, n := range names {
			nodes[i] = p[n]
		}
		return append([]*Node{loss}, Gradient(loss, nodes...)...)
	}
	if _, err := r.Run("bench-grad", fn, inT, labT); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := r.Run("bench-grad", fn, inT, labT); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(4*128*b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkGenerate_Stories260K reports decode tokens/s (batch 1, 128 new tokens).
func BenchmarkGenerate_Stories260K(b *testing.B) {
	m := loadShared(b, "stories260K")
	r := NewRunner(testBackend(b), m)
	opts := GenerateOptions{MaxNewTokens: 128, IgnoreEOS: true}
	if _, err := r.Generate([][]int{{1}}, opts); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := r.Generate([][]int{{1}}, opts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(128*b.N)/b.Elapsed().Seconds(), "tokens/s")
}
