package sparsify

// AlphaPruning (Lu et al., 2024; github.com/haiquanlu/AlphaPruning): the heavy-tail exponent α
// of each matrix's empirical spectral density (eigenvalues of WᵀW), fitted by the Hill
// estimator as lib/esd_utils.py's net_esd_estimator does, then mapped linearly to per-block
// sparsities (lib/prune.py ww_sparsity with mapping_type block_wise, the default).

import (
	"fmt"
	"math"
	"sort"

	"gonum.org/v1/gonum/mat"
)

// esdBins is net_esd_estimator's histogram size for xmin_peak.
const esdBins = 100

// ESDEigenvalues returns the eigenvalues of WᵀW in ascending order: the squared singular
// values of W (torch.square(torch.linalg.svdvals(W)) sorted), min(rows, cols) of them.
func ESDEigenvalues(m Matrix) ([]float64, error) {
	var svd mat.SVD
	if !svd.Factorize(mat.NewDense(m.Rows, m.Cols, m.W), mat.SVDNone) {
		return nil, fmt.Errorf("singular value decomposition did not converge")
	}
	s := svd.Values(nil)
	for i, v := range s {
		s[i] = v * v
	}
	sort.Float64s(s)
	return s, nil
}

// HillAlpha fits α to ascending eigenvalues with the x_min rule of net_esd_estimator:
//
//	α(i) = 1 + n / (Σ_{k≥i} ln λ_k − n·ln λ_i),  n = N − i,  x_min = λ_i
//
// XminMid takes i = N/2. XminPeak tries every λ_i up to 1.5× the left edge x of the fullest
// bin of a 100-bin histogram of log10 λ and keeps the α whose Kolmogorov–Smirnov distance
// D = max_k |1 − (λ_{i+k}/x_min)^{1−α} − k/n| is smallest. The released code's lower bound is
// log10(0.95·x), compared with λ itself (not its log); kept as released.
func HillAlpha(eigs []float64, rule string) float64 {
	N := len(eigs)
	logs := make([]float64, N)
	for i, e := range eigs {
		logs[i] = math.Log(e)
	}
	tail := make([]float64, N+1) // tail[i] = Σ_{k≥i} ln λ_k
	for i := N - 1; i >= 0; i-- {
		tail[i] = tail[i+1] + logs[i]
	}
	alphaAt := func(i int) float64 {
		n := float64(N - i)
		return 1 + n/(tail[i]-n*logs[i])
	}
	if rule == XminMid {
		return alphaAt(N / 2)
	}
	lo, hi := peakWindow(logs)
	alphas := make([]float64, N-1)
	ds := make([]float64, N-1)
	for i := range ds {
		ds[i] = 1
	}
	for i := 0; i < N-1; i++ {
		xmin := eigs[i]
		if xmin < lo {
			continue
		}
		if xmin > hi {
			break
		}
		a := alphaAt(i)
		alphas[i] = a
		if a > 1 {
			ds[i] = ksDistance(eigs[i:], a)
		}
	}
	best := 0
	for i, d := range ds {
		if d < ds[best] {
			best = i
		}
	}
	return alphas[best]
}

// peakWindow returns net_esd_estimator's xmin_peak bounds: log10(0.95·x) and 1.5·x, x the
// left edge of the fullest histogram bin of log10 λ (torch.histc, first bin among equals).
func peakWindow(logs []float64) (lo, hi float64) {
	l10 := make([]float64, len(logs))
	for i, l := range logs {
		l10[i] = l / math.Ln10
	}
	minE, maxE := l10[0], l10[0]
	for _, v := range l10 {
		minE, maxE = math.Min(minE, v), math.Max(maxE, v)
	}
	counts := make([]int, esdBins)
	width := maxE - minE
	for _, v := range l10 {
		b := 0
		if width > 0 {
			b = int((v - minE) / width * esdBins)
		}
		counts[min(b, esdBins-1)]++
	}
	ih := 0
	for b, c := range counts {
		if c > counts[ih] {
			ih = b
		}
	}
	x := math.Pow(10, minE+width*float64(ih)/esdBins)
	return math.Log10(0.95 * x), 1.5 * x
}

// ksDistance is max_k |1 − (λ_k/λ_0)^{1−α} − k/n| over the tail λ_0 ≤ λ_1 ≤ … (n values).
func ksDistance(tail []float64, alpha float64) float64 {
	n := float64(len(tail))
	d := 0.0
	for k, e := range tail {
		d = math.Max(d, math.Abs(1-math.Pow(e/tail[0], 1-alpha)-float64(k)/n))
	}
	return d
}

// AlphaSparsities maps per-block α (the mean of the block's matrices' α) to per-block
// sparsities as ww_sparsity does: r_b = (1−ε) + 2ε·(α_b − α_min)/(α_max − α_min), then
// scaled so the parameter-weighted mean is exactly s: s_b = r_b · s·Σp/Σ(p·r). Blocks with
// larger α (lighter tails, less well trained) lose more weights. Equal α everywhere gives s.
func AlphaSparsities(blockAlpha []float64, blockParams []int64, s, eps float64) ([]float64, error) {
	lo, hi := blockAlpha[0], blockAlpha[0]
	for _, a := range blockAlpha {
		lo, hi = math.Min(lo, a), math.Max(hi, a)
	}
	r := make([]float64, len(blockAlpha))
	var num, den float64
	for b, a := range blockAlpha {
		r[b] = 1
		if hi > lo {
			r[b] = (a-lo)/(hi-lo)*2*eps + 1 - eps
		}
		num += float64(blockParams[b])
		den += float64(blockParams[b]) * r[b]
	}
	out := make([]float64, len(r))
	for b := range r {
		out[b] = r[b] * s * num / den
		if out[b] >= 1 || out[b] < 0 {
			return nil, fmt.Errorf("--allocation alpha gives block %d a sparsity of %.1f%%: lower --sparsity or --alpha-epsilon: %w", b, 100*out[b], ErrOptions)
		}
	}
	return out, nil
}
