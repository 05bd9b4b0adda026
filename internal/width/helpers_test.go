package width

import (
	"math"
	"testing"

	"github.com/gomlx/gomlx/backends"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/testutil/modeltest"
)

func testBackend(tb testing.TB) backends.Backend { return modeltest.Backend(tb) }

func loadShared(tb testing.TB, name string) *model.Model { return modeltest.Load(tb, name) }

func logits(tb testing.TB, m *model.Model, rows [][]int) []float32 {
	tb.Helper()
	out, err := model.NewRunner(testBackend(tb), m).Logits(rows, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// relErr is max|a−b| / max|b|: logits near zero make element-wise relative errors meaningless.
func relErr(a, b []float32) float64 {
	var num, den float64
	for i := range b {
		num = math.Max(num, math.Abs(float64(a[i])-float64(b[i])))
		den = math.Max(den, math.Abs(float64(b[i])))
	}
	return num / den
}

func maxRel(got, want []float64) float64 {
	m := 0.0
	for i := range want {
		d := math.Abs(got[i] - want[i])
		if want[i] != 0 {
			d /= math.Abs(want[i])
		}
		m = math.Max(m, d)
	}
	return m
}
