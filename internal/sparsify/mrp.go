package sparsify

// The multiple-removal solution (Zhao et al., 2024, "Pruning Foundation Models for High
// Accuracy without Retraining"; its code link github.com/piuzha/APT holds no code, so the
// choices below are this package's and stated). For one row w with the set R of weights to
// remove, the minimum of ‖(w − ŵ)X‖² subject to ŵ_R = 0 is reached at
//
//	ŵ = w − w_R [(H⁻¹)_RR]⁻¹ (H⁻¹)_{R,:}
//
// (H⁻¹ the dampened inverse Hessian): unlike SparseGPT, every kept weight of the row
// compensates for every removed one. Mask: the weights with the smallest single-removal OBS
// loss w_j²/[H⁻¹]_jj, compared within each output row (int(cols·s) per row) or per N:M
// group.
//
// With MRPBlock the row is handled in column blocks as SparseGPT does (for large layers):
// after the blocks before i1 are final, the remaining inverse Hessian is
// (H_{≥i1})⁻¹ = U_{≥i1}ᵀU_{≥i1}, and because U is upper triangular the removal of R ⊂ [i1, i2)
// only needs U's rows [i1, i2): with A = U_{[i1,i2),R}, z = (AᵀA)⁻¹ w_R and e = A z, the update
// is −eᵀ U_{[i1,i2), ≥i1}, applied lazily to the later blocks.

import (
	"fmt"

	"gonum.org/v1/gonum/mat"
)

// mrp prunes m in place and returns the mask.
func mrp(m Matrix, hinv *mat.SymDense, u *mat.TriDense, o obsSettings, blocked bool) (Mask, error) {
	if !blocked {
		return mrpRows(m, hinv, o)
	}
	return mrpBlocks(m, u, o)
}

// mrpRows removes each row's weights at once with the full H⁻¹.
func mrpRows(m Matrix, hinv *mat.SymDense, o obsSettings) (Mask, error) {
	rows, cols := m.Rows, m.Cols
	diag := make([]float64, cols)
	for j := range diag {
		diag[j] = hinv.At(j, j)
	}
	hr := hinv.RawSymmetric() // upper triangle stored
	at := func(i, j int) float64 {
		if i > j {
			i, j = j, i
		}
		return hr.Data[i*hr.Stride+j]
	}
	mask := make(Mask, len(m.W))
	metric := make([]float64, cols)
	for r := 0; r < rows; r++ {
		row := m.W[r*cols : (r+1)*cols]
		for j, w := range row {
			metric[j] = w * w / diag[j]
		}
		R := rowMask(metric, o, mask[r*cols:(r+1)*cols])
		if len(R) == 0 {
			continue
		}
		g := mat.NewSymDense(len(R), nil)
		for a, ja := range R {
			for b := a; b < len(R); b++ {
				g.SetSym(a, b, at(ja, R[b]))
			}
		}
		z, err := solveSPD(g, gather(row, R))
		if err != nil {
			return nil, fmt.Errorf("row %d: %w", r, err)
		}
		for a, ja := range R {
			for j := 0; j < cols; j++ {
				row[j] -= z[a] * at(ja, j)
			}
		}
		for _, j := range R {
			row[j] = 0 // exactly, not up to rounding
		}
	}
	return mask, nil
}

// rowMask marks one row's pruned weights (unstructured int(cols·s), or N of every M) and
// returns their positions in ascending order.
func rowMask(metric []float64, o obsSettings, mask Mask) []int {
	if o.pattern.Unstructured() {
		for _, j := range lowest(metric, rowCount(len(metric), o.sparsity)) {
			mask[j] = true
		}
	} else {
		for g := 0; g < len(metric); g += o.pattern.M {
			for _, j := range lowest(metric[g:g+o.pattern.M], o.pattern.N) {
				mask[g+j] = true
			}
		}
	}
	var R []int
	for j, p := range mask {
		if p {
			R = append(R, j)
		}
	}
	return R
}

// mrpBlocks removes each row's weights one column block at a time (see the file comment).
func mrpBlocks(m Matrix, u *mat.TriDense, o obsSettings) (Mask, error) {
	rows, cols := m.Rows, m.Cols
	ur := u.RawTriangular()
	U := func(i, j int) float64 { return ur.Data[i*ur.Stride+j] }
	mask := make(Mask, len(m.W))
	errs := make([]float64, rows*o.block)
	for i1 := 0; i1 < cols; i1 += o.block {
		i2 := min(i1+o.block, cols)
		nb := i2 - i1
		// Diagonal of the remaining inverse Hessian: Σ_{t∈[i1,j]} U_tj².
		diag := make([]float64, nb)
		for j := i1; j < i2; j++ {
			for t := i1; t <= j; t++ {
				diag[j-i1] += U(t, j) * U(t, j)
			}
		}
		metric := make([]float64, nb)
		for r := 0; r < rows; r++ {
			row := m.W[r*cols : (r+1)*cols]
			for j := range metric {
				metric[j] = row[i1+j] * row[i1+j] / diag[j]
			}
			// Per-row counts carried over blocks so each row ends at exactly int(cols·s).
			R := rowMaskCount(metric, o, blockCount(1, i1, i2, o.sparsity), mask[r*cols+i1:r*cols+i2])
			e := errs[r*o.block : r*o.block+nb]
			clear(e)
			if len(R) == 0 {
				continue
			}
			g := mat.NewSymDense(len(R), nil)
			for a, ja := range R {
				for b := a; b < len(R); b++ {
					s := 0.0
					for t := i1; t <= i1+min(ja, R[b]); t++ {
						s += U(t, i1+ja) * U(t, i1+R[b])
					}
					g.SetSym(a, b, s)
				}
			}
			z, err := solveSPD(g, gather(row[i1:i2], R))
			if err != nil {
				return nil, fmt.Errorf("row %d: %w", r, err)
			}
			for a, ja := range R { // e = A z, A = U[i1:i2, R]
				for t := i1; t <= i1+ja; t++ {
					e[t-i1] += U(t, i1+ja) * z[a]
				}
			}
			for t := i1; t < i2; t++ { // the block's own columns: −eᵀ U[i1:i2, i1:i2]
				if et := e[t-i1]; et != 0 {
					for j := t; j < i2; j++ {
						row[j] -= et * U(t, j)
					}
				}
			}
			for _, j := range R {
				row[i1+j] = 0
			}
		}
		lazyUpdate(m, u, errs, o.block, i1, i2)
	}
	return mask, nil
}

// rowMaskCount is rowMask with an explicit unstructured count for one block of a row.
func rowMaskCount(metric []float64, o obsSettings, k int, mask Mask) []int {
	if o.pattern.Unstructured() {
		for _, j := range lowest(metric, k) {
			mask[j] = true
		}
		var R []int
		for j, p := range mask {
			if p {
				R = append(R, j)
			}
		}
		return R
	}
	return rowMask(metric, o, mask)
}

func gather(v []float64, idx []int) []float64 {
	out := make([]float64, len(idx))
	for a, j := range idx {
		out[a] = v[j]
	}
	return out
}

// solveSPD solves G z = b for symmetric positive definite G by Cholesky.
func solveSPD(g *mat.SymDense, b []float64) ([]float64, error) {
	var ch mat.Cholesky
	if !ch.Factorize(g) {
		return nil, fmt.Errorf("the removed weights' inverse-Hessian block is not positive definite")
	}
	var z mat.VecDense
	if err := ch.SolveVecTo(&z, mat.NewVecDense(len(b), b)); err != nil {
		return nil, err
	}
	return z.RawVector().Data, nil
}
