package score

import (
	"math"
	"slices"
	"testing"
	"time"
)

// TestCompute_MatchesGolden compares every criterion with the float64 PyTorch reference on
// the shared calibration windows: values within the tolerances, identical orders.
func TestCompute_MatchesGolden(t *testing.T) {
	for _, name := range []string{"stories260K", "deep16"} {
		t.Run(name, func(t *testing.T) {
			g := loadCriteriaGolden(t, name)
			r := loadRunner(t, name)
			calib := sharedCalib(t)
			cases := []struct {
				criterion string
				want      []float64
				order     []int
				tol       float64
				absolute  bool
			}{
				{"taylor", g.Taylor, g.TaylorOrd, 1e-3, false},
				{"ppl", g.PPL, g.PPLOrd, 1e-4, false},
				{"magnitude", g.Magnitude, g.MagOrd, 1e-6, false},
				{"bi", g.BI, g.BIOrd, 1e-4, true},
			}
			for _, c := range cases {
				if testing.Short() && name == "deep16" && c.criterion == "ppl" {
					t.Log("-short: deep16 ppl skipped (the slowest variant, ~20 s)")
					continue
				}
				t0 := time.Now()
				res, err := Compute(r, calib, c.criterion, Options{})
				if err != nil {
					t.Fatal(err)
				}
				got := values(t, res)
				e := maxRelErr(got, c.want)
				if c.absolute {
					e = maxAbsErr(got, c.want)
				}
				t.Logf("%s: max error %.3g (tolerance %g, absolute=%v), %v", c.criterion, e, c.tol, c.absolute, time.Since(t0))
				if e > c.tol {
					t.Errorf("%s: max error %.3g > %g\n got  %v\n want %v", c.criterion, e, c.tol, got, c.want)
				}
				if !slices.Equal(res.Order, c.order) {
					t.Errorf("%s: order %v, want %v", c.criterion, res.Order, c.order)
				}
				if c.criterion == "ppl" {
					// The unpruned model's perplexity: exp of the reference's calibration loss.
					if res.Baseline == nil || math.Abs(*res.Baseline/math.Exp(g.CalibLoss)-1) > 1e-4 {
						t.Errorf("ppl baseline %v, want exp(%v) = %v", res.Baseline, g.CalibLoss, math.Exp(g.CalibLoss))
					}
				} else if res.Baseline != nil {
					t.Errorf("%s has a baseline %v", c.criterion, *res.Baseline)
				}
			}
		})
	}
}
