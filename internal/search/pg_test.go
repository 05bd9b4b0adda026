package search

import (
	"math"
	"math/rand/v2"
	"testing"
)

// logBernoulli is log p(m|s) = Σ m_i log s_i + (1 − m_i) log(1 − s_i).
func logBernoulli(s []float64, m []bool) float64 {
	lp := 0.0
	for i, si := range s {
		if m[i] {
			lp += math.Log(si)
		} else {
			lp += math.Log(1 - si)
		}
	}
	return lp
}

// The estimator is Eq. 5, 1/(K−1) Σ_j (L_j − δ) ∇_s log p(m_j|s), checked against central
// differences of log p itself (not the closed form the code uses).
func TestPGGradient_MatchesScoreFunctionByFiniteDifferences(t *testing.T) {
	s := []float64{0.3, 0.55, 0.9, 0.12}
	masks := [][]bool{{true, false, true, false}, {false, false, true, true}, {true, true, false, true}}
	losses := []float64{2.5, 3.1, 2.8}
	delta := 2.7
	got := pgGradient(s, masks, losses, delta)
	const h = 1e-6
	for i := range s {
		want := 0.0
		for j, m := range masks {
			up, down := append([]float64(nil), s...), append([]float64(nil), s...)
			up[i] += h
			down[i] -= h
			want += (losses[j] - delta) * (logBernoulli(up, m) - logBernoulli(down, m)) / (2 * h)
		}
		want /= float64(len(masks) - 1)
		if math.Abs(got[i]-want) > 1e-5*math.Max(1, math.Abs(want)) {
			t.Errorf("∂/∂s_%d = %.8g, finite differences give %.8g", i, got[i], want)
		}
	}
}

// The projection is the Euclidean projection onto {Σ s = k, 0 ≤ s ≤ 1} along a common shift:
// checked by its optimality conditions, for sums above k, and left alone (only clamped) below.
func TestProject_ShiftsOntoTheBudget(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 50 {
		n := 2 + rng.IntN(12)
		s := make([]float64, n)
		for i := range s {
			s[i] = rng.Float64()*1.6 - 0.3
		}
		keep := float64(rng.IntN(n))
		out := project(s, keep)
		clampedSum := 0.0
		for _, x := range s {
			clampedSum += math.Min(1, math.Max(0, x))
		}
		sum := 0.0
		for _, x := range out {
			sum += x
		}
		if clampedSum <= keep {
			for i := range s {
				if out[i] != math.Min(1, math.Max(0, s[i])) {
					t.Fatalf("trial %d: sum %.3g ≤ %g must only clamp, got %v from %v", trial, clampedSum, keep, out, s)
				}
			}
			continue
		}
		if math.Abs(sum-keep) > 1e-9 {
			t.Fatalf("trial %d: projected sum %.12g, want %g", trial, sum, keep)
		}
		// One shift v ≥ 0 explains every coordinate: interior ones moved by exactly −v.
		v := math.NaN()
		for i := range s {
			if out[i] > 0 && out[i] < 1 {
				v = s[i] - out[i]
			}
		}
		for i := range s {
			switch {
			case math.IsNaN(v):
			case out[i] == 0 && s[i]-v > 1e-9, out[i] == 1 && s[i]-v < 1-1e-9,
				out[i] > 0 && out[i] < 1 && math.Abs(s[i]-out[i]-v) > 1e-9, v < -1e-12:
				t.Fatalf("trial %d: coordinate %d: s %.6g → %.6g is not clamp(s − %.6g)", trial, i, s[i], out[i], v)
			}
		}
	}
}

// One policy update, written out from the paper and torch's Adam without the code's helpers:
// moving-average baseline, Eq. 5, Adam with weight decay and bias correction, projection.
func TestPGUpdate_TwoStepsMatchReference(t *testing.T) {
	o := PGOptions{Steps: 10, Samples: 2, LR: 0.05, Window: 5}
	st := &pgState{s: []float64{0.5, 0.5, 0.5, 0.5}, m: make([]float64, 4), v: make([]float64, 4)}
	steps := []struct {
		masks  [][]bool
		losses []float64
	}{
		{[][]bool{{true, false, true, true}, {false, true, true, false}}, []float64{3.0, 3.4}},
		{[][]bool{{true, true, false, true}, {true, false, false, true}}, []float64{2.9, 3.6}},
	}
	// Reference state.
	s := []float64{0.5, 0.5, 0.5, 0.5}
	m, v := make([]float64, 4), make([]float64, 4)
	delta := 0.0
	for t0, step := range steps {
		lr := 0.05 * (1 + math.Cos(math.Pi*float64(t0)/10)) / 2
		st.update(step.masks, step.losses, o, lr, 2)

		mean := (step.losses[0] + step.losses[1]) / 2
		if t0 == 0 {
			delta = mean
		}
		delta = 0.8*delta + 0.2*mean
		for i := range s {
			g := 0.0
			for j, mask := range step.masks {
				mi := 0.0
				if mask[i] {
					mi = 1
				}
				g += (step.losses[j] - delta) * (mi/s[i] - (1-mi)/(1-s[i])) // ∂ log p / ∂ s_i
			}
			g += 1e-4 * s[i]
			m[i] = 0.5*m[i] + 0.5*g
			v[i] = 0.999*v[i] + 0.001*g*g
			mh := m[i] / (1 - math.Pow(0.5, float64(t0+1)))
			vh := v[i] / (1 - math.Pow(0.999, float64(t0+1)))
			s[i] -= lr * mh / (math.Sqrt(vh) + 1e-8)
		}
		// Projection by a different method: bisection on the shift with clamping.
		lo, hi := -2.0, 2.0
		total := func(sh float64) float64 {
			sum := 0.0
			for _, x := range s {
				sum += math.Min(1, math.Max(0, x-sh))
			}
			return sum
		}
		if total(0) > 2 {
			for range 200 {
				if mid := (lo + hi) / 2; total(mid) > 2 {
					lo = mid
				} else {
					hi = mid
				}
			}
		} else {
			hi = 0
		}
		for i := range s {
			s[i] = math.Min(1, math.Max(0, s[i]-hi))
		}
		if math.Abs(st.delta-delta) > 1e-12 {
			t.Fatalf("step %d: baseline %.12g, want %.12g", t0, st.delta, delta)
		}
		for i := range s {
			if math.Abs(st.s[i]-s[i]) > 1e-7 {
				t.Fatalf("step %d: s = %v, reference %v", t0, st.s, s)
			}
		}
	}
}

func TestHardRemoved_LowestKeepProbabilities(t *testing.T) {
	got := hardRemoved([]int{4, 5, 6, 7, 8}, []float64{0.9, 0.1, 0.5, 0.1, 0.7}, 3)
	if want := []int{5, 6, 7}; !equalInts(got, want) {
		t.Errorf("removed %v, want %v", got, want)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
