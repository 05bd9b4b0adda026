package sparsify

// Second-order (OBS) pruning: SparseGPT (Frantar & Alistarh, 2023; IST-DASLab/sparsegpt
// sparsegpt.py fasterprune) and the multiple-removal solution of Zhao et al. (2024). Both
// minimise ‖WX − ŴX‖² row by row with H = XᵀX; they differ in how many weights an update
// removes at once (SparseGPT: one column at a time, freezing the columns it has passed; MRP:
// every pruned weight of the row together, with all kept weights free to compensate).

import (
	"fmt"

	"gonum.org/v1/gonum/mat"
)

// hessian is one layer's H = 2·XᵀX/N_windows (add_batch's scaling: nsamples counts
// sequences) after fasterprune's preparation: a dead input (H_jj = 0) gets H_jj = 1 and its
// weights are zeroed, then λ = damp·mean(diag H) is added to the diagonal. It returns H⁻¹ and
// its upper Cholesky factor U (H⁻¹ = UᵀU). w is changed in place (dead columns).
func hessian(gram []float64, nWindows int, w Matrix, damp float64) (hinv *mat.SymDense, u *mat.TriDense, err error) {
	n := w.Cols
	h := mat.NewSymDense(n, nil)
	scale := 2 / float64(nWindows)
	for i := 0; i < n; i++ {
		for j := i; j < n; j++ {
			h.SetSym(i, j, scale*gram[i*n+j])
		}
	}
	mean := 0.0
	for j := 0; j < n; j++ {
		if h.At(j, j) == 0 {
			h.SetSym(j, j, 1)
			for r := 0; r < w.Rows; r++ {
				w.W[r*n+j] = 0
			}
		}
		mean += h.At(j, j)
	}
	lambda := damp * mean / float64(n)
	for j := 0; j < n; j++ {
		h.SetSym(j, j, h.At(j, j)+lambda)
	}
	// At most three n×n buffers live at once (a 7B down_proj's is 0.97 GB in float64): each
	// step drops what the next no longer needs.
	ch := new(mat.Cholesky)
	if !ch.Factorize(h) {
		return nil, nil, fmt.Errorf("the dampened Hessian is not positive definite")
	}
	h = nil // released for the collector
	hinv = mat.NewSymDense(n, nil)
	if err := ch.InverseTo(hinv); err != nil {
		return nil, nil, fmt.Errorf("invert the Hessian: %w", err)
	}
	ch.Reset()
	chInv := new(mat.Cholesky)
	if !chInv.Factorize(hinv) {
		return nil, nil, fmt.Errorf("the inverse Hessian is not positive definite")
	}
	u = mat.NewTriDense(n, mat.Upper, nil)
	chInv.UTo(u)
	chInv.Reset()
	return hinv, u, nil
}

// obsSettings are what the two solvers share.
type obsSettings struct {
	sparsity float64
	pattern  Pattern
	block    int
}

// blockCount is how many weights of columns [i1, i2) the unstructured share prunes, with the
// rounding carried over so the blocks add up to exactly int(total·s).
func blockCount(perCol int, i1, i2 int, s float64) int {
	return int(float64(perCol*i2)*s) - int(float64(perCol*i1)*s)
}

// sparseGPT prunes m in place and returns the mask. Unstructured masks are chosen per column
// block over all rows (the paper's adaptive mask selection) from w²/U_jj² on the weights as
// updated so far; N:M masks per group when the loop reaches its first column. The released
// code keeps every weight at or below the block's threshold, one more than the share when
// there are no ties; this prunes exactly the share.
func sparseGPT(m Matrix, u *mat.TriDense, o obsSettings) Mask {
	rows, cols := m.Rows, m.Cols
	ur := u.RawTriangular()
	mask := make(Mask, len(m.W))
	errs := make([]float64, rows*o.block) // Err1 [rows, block]
	for i1 := 0; i1 < cols; i1 += o.block {
		i2 := min(i1+o.block, cols)
		if o.pattern.Unstructured() {
			sgptBlockMask(m, u, i1, i2, blockCount(rows, i1, i2, o.sparsity), mask)
		}
		for i := i1; i < i2; i++ {
			if !o.pattern.Unstructured() && i%o.pattern.M == 0 {
				sgptGroupMask(m, u, i, o.pattern, mask)
			}
			d := u.At(i, i)
			ui := ur.Data[i*ur.Stride : i*ur.Stride+cols] // row i of U
			for r := 0; r < rows; r++ {
				row := m.W[r*cols : (r+1)*cols]
				w := row[i]
				q := w
				if mask[r*cols+i] {
					q = 0
				}
				e := (w - q) / d
				errs[r*o.block+i-i1] = e
				if e != 0 {
					for j := i + 1; j < i2; j++ {
						row[j] -= e * ui[j]
					}
				}
				row[i] = q
			}
		}
		lazyUpdate(m, u, errs, o.block, i1, i2)
	}
	return mask
}

// lazyUpdate applies a finished block's errors to the columns after it: W[:, i2:] −= Err1 ·
// U[i1:i2, i2:].
func lazyUpdate(m Matrix, u *mat.TriDense, errs []float64, block, i1, i2 int) {
	cols := m.Cols
	ur := u.RawTriangular()
	for r := 0; r < m.Rows; r++ {
		row := m.W[r*cols+i2 : (r+1)*cols]
		for t := i1; t < i2; t++ {
			e := errs[r*block+t-i1]
			if e == 0 {
				continue
			}
			ut := ur.Data[t*ur.Stride+i2 : t*ur.Stride+cols]
			for j, v := range ut {
				row[j] -= e * v
			}
		}
	}
}

// sgptBlockMask marks the k lowest w²/U_jj² of columns [i1, i2) over all rows.
func sgptBlockMask(m Matrix, u *mat.TriDense, i1, i2, k int, mask Mask) {
	count := i2 - i1
	metric := make([]float64, m.Rows*count)
	for r := 0; r < m.Rows; r++ {
		for j := i1; j < i2; j++ {
			d := u.At(j, j)
			w := m.W[r*m.Cols+j]
			metric[r*count+j-i1] = w * w / (d * d)
		}
	}
	for _, p := range lowest(metric, k) {
		r, j := p/count, p%count
		mask[r*m.Cols+i1+j] = true
	}
}

// sgptGroupMask marks the N lowest w²/U_jj² of columns [i, i+M) in every row.
func sgptGroupMask(m Matrix, u *mat.TriDense, i int, p Pattern, mask Mask) {
	metric := make([]float64, p.M)
	for r := 0; r < m.Rows; r++ {
		for j := 0; j < p.M; j++ {
			d := u.At(i+j, i+j)
			w := m.W[r*m.Cols+i+j]
			metric[j] = w * w / (d * d)
		}
		for _, j := range lowest(metric, p.N) {
			mask[r*m.Cols+i+j] = true
		}
	}
}
