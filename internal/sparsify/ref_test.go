package sparsify

// Independent float64 references for the tests: each follows its paper's formula directly
// (explicit trailing inverses, kept-set normal equations, eigenvalues of the Gram matrix) rather
// than the package's Cholesky-factor, lazy-update and SVD implementations.

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// refHessian is 2·XᵀX/nWindows with dead inputs set to 1 (and their weights zeroed) and
// damp·mean(diag) added, as a dense matrix.
func refHessian(gram []float64, nWindows int, w []float64, rows, cols int, damp float64) *mat.Dense {
	h := mat.NewDense(cols, cols, nil)
	for i := 0; i < cols; i++ {
		for j := 0; j < cols; j++ {
			h.Set(i, j, 2*gram[i*cols+j]/float64(nWindows))
		}
	}
	tr := 0.0
	for j := 0; j < cols; j++ {
		if h.At(j, j) == 0 {
			h.Set(j, j, 1)
			for r := 0; r < rows; r++ {
				w[r*cols+j] = 0
			}
		}
		tr += h.At(j, j)
	}
	for j := 0; j < cols; j++ {
		h.Set(j, j, h.At(j, j)+damp*tr/float64(cols))
	}
	return h
}

// trailingInverse is (H[i:, i:])⁻¹ by LU.
func trailingInverse(tb testing.TB, h *mat.Dense, i int) *mat.Dense {
	n, _ := h.Dims()
	var inv mat.Dense
	if err := inv.Inverse(h.Slice(i, n, i, n)); err != nil {
		tb.Fatal(err)
	}
	return &inv
}

// kLowest returns the positions of the k smallest values (lower position first among equals).
func kLowest(v []float64, k int) []int {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return v[idx[a]] < v[idx[b]] })
	return idx[:k]
}

// refSparseGPT is sequential OBS column by column: before column i is decided, the free
// columns are i…n−1 with inverse Hessian G = (H[i:, i:])⁻¹; pruning w_i moves the free
// columns by −w_i/G_00 · G_{0,:}. Unstructured masks are chosen at each block start over the
// block's columns from w²/G_jj with G_jj = [(H[j:, j:])⁻¹]_00; N:M at each group start.
func refSparseGPT(tb testing.TB, w []float64, rows, cols int, h *mat.Dense, s float64, p Pattern, block int) []bool {
	inv := make([]*mat.Dense, cols)
	for i := range inv {
		inv[i] = trailingInverse(tb, h, i)
	}
	sal := func(r, j int) float64 { x := w[r*cols+j]; return x * x / inv[j].At(0, 0) }
	mask := make([]bool, rows*cols)
	done := 0
	for i1 := 0; i1 < cols; i1 += block {
		i2 := min(i1+block, cols)
		if p.M == 0 {
			var vals []float64
			for r := 0; r < rows; r++ {
				for j := i1; j < i2; j++ {
					vals = append(vals, sal(r, j))
				}
			}
			k := int(float64(rows*i2)*s) - done
			done += k
			for _, q := range kLowest(vals, k) {
				mask[(q/(i2-i1))*cols+i1+q%(i2-i1)] = true
			}
		}
		for i := i1; i < i2; i++ {
			if p.M > 0 && i%p.M == 0 {
				for r := 0; r < rows; r++ {
					v := make([]float64, p.M)
					for j := range v {
						v[j] = sal(r, i+j)
					}
					for _, j := range kLowest(v, p.N) {
						mask[r*cols+i+j] = true
					}
				}
			}
			g := inv[i]
			for r := 0; r < rows; r++ {
				if !mask[r*cols+i] {
					continue
				}
				c := w[r*cols+i] / g.At(0, 0)
				for j := i; j < cols; j++ {
					w[r*cols+j] -= c * g.At(0, j-i)
				}
				w[r*cols+i] = 0
			}
		}
	}
	return mask
}

// refMRP prunes each row's int(cols·s) (or N:M) lowest w²/[H⁻¹]_jj and sets the kept weights
// K to the constrained least-squares optimum ŵ_K = (H_KK)⁻¹ (H w)_K. block > 0 does this per
// column block on the trailing problem H[i1:, i1:] with the earlier columns fixed.
func refMRP(tb testing.TB, w []float64, rows, cols int, h *mat.Dense, s float64, p Pattern, block int) []bool {
	if block == 0 {
		block = cols
	}
	mask := make([]bool, rows*cols)
	for i1 := 0; i1 < cols; i1 += block {
		i2 := min(i1+block, cols)
		hi := h.Slice(i1, cols, i1, cols).(*mat.Dense)
		g := trailingInverse(tb, h, i1)
		n := cols - i1
		for r := 0; r < rows; r++ {
			row := w[r*cols+i1 : (r+1)*cols]
			sal := make([]float64, i2-i1)
			for j := range sal {
				sal[j] = row[j] * row[j] / g.At(j, j)
			}
			pr := make([]bool, n)
			if p.M == 0 {
				for _, j := range kLowest(sal, int(float64(i2)*s)-int(float64(i1)*s)) {
					pr[j] = true
				}
			} else {
				for gs := 0; gs < len(sal); gs += p.M {
					for _, j := range kLowest(sal[gs:gs+p.M], p.N) {
						pr[gs+j] = true
					}
				}
			}
			var K []int
			for j := 0; j < n; j++ {
				if !pr[j] {
					K = append(K, j)
				}
			}
			hw := mat.NewVecDense(n, nil)
			hw.MulVec(hi, mat.NewVecDense(n, append([]float64(nil), row...)))
			hkk := mat.NewDense(len(K), len(K), nil)
			rhs := mat.NewVecDense(len(K), nil)
			for a, ka := range K {
				rhs.SetVec(a, hw.AtVec(ka))
				for b, kb := range K {
					hkk.Set(a, b, hi.At(ka, kb))
				}
			}
			var sol mat.VecDense
			if err := sol.SolveVec(hkk, rhs); err != nil {
				tb.Fatal(err)
			}
			for j := range row {
				row[j] = 0
			}
			for a, ka := range K {
				row[ka] = sol.AtVec(a)
			}
			for j := 0; j < i2-i1; j++ {
				mask[r*cols+i1+j] = pr[j]
			}
		}
	}
	return mask
}

// reconErr is ‖(W − Ŵ)X‖_F = sqrt(Σ_rows δᵀ G δ) with G = XᵀX.
func reconErr(dense, pruned []float64, rows, cols int, gram []float64) float64 {
	total := 0.0
	d := make([]float64, cols)
	for r := 0; r < rows; r++ {
		for j := range d {
			d[j] = dense[r*cols+j] - pruned[r*cols+j]
		}
		for i := range d {
			for j := range d {
				total += d[i] * gram[i*cols+j] * d[j]
			}
		}
	}
	return math.Sqrt(total)
}

// refAlpha is the Hill estimator from eigenvalues of the smaller Gram matrix (WWᵀ or WᵀW,
// symmetric eigensolver), written from the formula α = 1 + n / Σ_{k≥i} ln(λ_k/λ_i).
func refAlpha(tb testing.TB, w []float64, rows, cols int, rule string) float64 {
	a := mat.NewDense(rows, cols, w)
	var g mat.SymDense
	if rows <= cols {
		g.SymOuterK(1, a) // W Wᵀ
	} else {
		g.SymOuterK(1, a.T())
	}
	var es mat.EigenSym
	if !es.Factorize(&g, false) {
		tb.Fatal("eigen decomposition failed")
	}
	eigs := es.Values(nil)
	sort.Float64s(eigs)
	hill := func(i int) float64 {
		sum := 0.0
		for _, e := range eigs[i:] {
			sum += math.Log(e / eigs[i])
		}
		return 1 + float64(len(eigs)-i)/sum
	}
	if rule == XminMid {
		return hill(len(eigs) / 2)
	}
	// xmin_peak: candidates from the eigenvalue ≥ log10(0.95·x) (as released) up to 1.5·x, x the
	// left edge of the fullest of 100 equal bins of log10 λ; keep the lowest KS distance.
	lo, hi := math.Log10(eigs[0]), math.Log10(eigs[len(eigs)-1])
	counts := make([]int, 100)
	for _, e := range eigs {
		counts[min(int((math.Log10(e)-lo)/(hi-lo)*100), 99)]++
	}
	peak := 0
	for b := range counts {
		if counts[b] > counts[peak] {
			peak = b
		}
	}
	x := math.Pow(10, lo+(hi-lo)*float64(peak)/100)
	bestD, bestA := 1.0, 0.0
	first := true
	for i := 0; i < len(eigs)-1; i++ {
		if eigs[i] < math.Log10(0.95*x) {
			continue
		}
		if eigs[i] > 1.5*x {
			break
		}
		al := hill(i)
		d := 1.0
		if al > 1 {
			n := float64(len(eigs) - i)
			d = 0
			for k, e := range eigs[i:] {
				d = math.Max(d, math.Abs(1-math.Pow(e/eigs[i], 1-al)-float64(k)/n))
			}
		}
		if first || d < bestD {
			bestD, bestA, first = d, al, false
		}
	}
	return bestA
}

// randomLayer makes a weight and correlated inputs X [n, cols] (a few shared factors, so H is
// far from diagonal), returning W and XᵀX.
func randomLayer(seed uint64, rows, cols, n int) (w, gram []float64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	w = make([]float64, rows*cols)
	for i := range w {
		w[i] = rng.NormFloat64()
	}
	x := make([]float64, n*cols)
	factors := make([]float64, 4*cols)
	for i := range factors {
		factors[i] = rng.NormFloat64()
	}
	for t := 0; t < n; t++ {
		z := [4]float64{rng.NormFloat64(), rng.NormFloat64(), rng.NormFloat64(), rng.NormFloat64()}
		for j := 0; j < cols; j++ {
			v := 0.3 * rng.NormFloat64()
			for f := range z {
				v += z[f] * factors[f*cols+j]
			}
			x[t*cols+j] = v
		}
	}
	gram = make([]float64, cols*cols)
	for t := 0; t < n; t++ {
		xt := x[t*cols : (t+1)*cols]
		for i, a := range xt {
			for j, b := range xt {
				gram[i*cols+j] += a * b
			}
		}
	}
	return w, gram
}
