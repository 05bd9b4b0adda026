package score

import (
	"encoding/json"
	"math"
	"os"
	"testing"

	"github.com/gomlx/gomlx/backends"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/testutil"
	"github.com/shortllm/shortllm/internal/testutil/modeltest"
)

func testBackend(tb testing.TB) backends.Backend { return modeltest.Backend(tb) }

func loadRunner(tb testing.TB, name string) *model.Runner { return modeltest.Runner(tb, name) }

func sharedCalib(tb testing.TB) *Calibration {
	tb.Helper()
	c, err := LoadCalibration(testutil.SharedDir(tb, "data", "stories", "calib10x128.ids.json"), nil, CalibOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

type criteriaGolden struct {
	CalibLoss float64   `json:"calib_loss"`
	Taylor    []float64 `json:"taylor"`
	PPL       []float64 `json:"ppl"`
	Magnitude []float64 `json:"magnitude"`
	BI        []float64 `json:"bi"`
	TaylorOrd []int     `json:"taylor_order_least_important_first"`
	PPLOrd    []int     `json:"ppl_order_least_important_first"`
	MagOrd    []int     `json:"magnitude_order_least_important_first"`
	BIOrd     []int     `json:"bi_order_least_important_first"`
}

func loadCriteriaGolden(tb testing.TB, name string) criteriaGolden {
	tb.Helper()
	data, err := os.ReadFile(testutil.SharedDir(tb, "goldens", name+".criteria.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var g criteriaGolden
	if err := json.Unmarshal(data, &g); err != nil {
		tb.Fatal(err)
	}
	return g
}

// values unwraps scores that must all be present.
func values(tb testing.TB, r *Result) []float64 {
	tb.Helper()
	out := make([]float64, len(r.Scores))
	for i, s := range r.Scores {
		if s == nil {
			tb.Fatalf("%s: block %d has no score", r.Criterion, i)
		}
		out[i] = *s
	}
	return out
}

func maxRelErr(got, want []float64) float64 {
	m := 0.0
	for i := range want {
		m = math.Max(m, math.Abs(got[i]-want[i])/math.Abs(want[i]))
	}
	return m
}

func maxAbsErr(got, want []float64) float64 {
	m := 0.0
	for i := range want {
		m = math.Max(m, math.Abs(got[i]-want[i]))
	}
	return m
}
