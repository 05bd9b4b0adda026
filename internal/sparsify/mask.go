package sparsify

import (
	"fmt"
	"math"
	"sort"
)

// Matrix is one linear layer's weight [Rows, Cols] = [out, in], row-major, in float64.
type Matrix struct {
	Rows, Cols int
	W          []float64
}

// Mask marks pruned weights (true) of a Rows×Cols matrix, row-major.
type Mask []bool

// lowest returns the positions of the k smallest values, lower position first among equals
// (torch.sort(stable=True) in Wanda's code).
func lowest(vals []float64, k int) []int {
	idx := make([]int, len(vals))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return vals[idx[a]] < vals[idx[b]] })
	return idx[:k]
}

// rowCount is how many weights of a row of cols a sparsity prunes: int(cols·s), as Wanda's
// `int(W_metric.shape[1]*args.sparsity_ratio)`.
func rowCount(cols int, s float64) int { return int(float64(cols) * s) }

// pruneRows marks the int(cols·s) lowest-metric weights of every row.
func pruneRows(metric []float64, rows, cols int, s float64, mask Mask) {
	k := rowCount(cols, s)
	for r := 0; r < rows; r++ {
		for _, j := range lowest(metric[r*cols:(r+1)*cols], k) {
			mask[r*cols+j] = true
		}
	}
}

// pruneGroups marks the n lowest-metric weights of every group of m consecutive columns
// (torch.topk(tmp, prune_n, largest=False) per group in the released code).
func pruneGroups(metric []float64, rows, cols int, p Pattern, mask Mask) {
	for r := 0; r < rows; r++ {
		for g := 0; g < cols; g += p.M {
			for _, j := range lowest(metric[r*cols+g:r*cols+g+p.M], p.N) {
				mask[r*cols+g+j] = true
			}
		}
	}
}

// pruneWhole marks the int(rows·cols·s) lowest-metric weights of the whole matrix. Wanda's
// prune_magnitude thresholds at sorted[int(numel·s)] with `<=`, which prunes one weight more
// than the share asks; this prunes exactly the share.
func pruneWhole(metric []float64, s float64, mask Mask) {
	for _, j := range lowest(metric, int(float64(len(metric))*s)) {
		mask[j] = true
	}
}

// checkPattern rejects N:M patterns whose groups do not tile a matrix's input dimension: a
// partial group cannot hold N:M and no N:M kernel could run it.
func checkPattern(name string, cols int, p Pattern) error {
	if !p.Unstructured() && cols%p.M != 0 {
		return fmt.Errorf("--pattern %s: %s has %d input columns, not a multiple of %d: %w", p, name, cols, p.M, ErrOptions)
	}
	return nil
}

// applyMask zeroes the pruned weights.
func applyMask(w []float64, mask Mask) {
	for i, m := range mask {
		if m {
			w[i] = 0
		}
	}
}

// magnitudeMask is Wanda's prune_magnitude: |W| over the whole matrix, or per N:M group.
func magnitudeMask(m Matrix, s float64, p Pattern) Mask {
	metric := make([]float64, len(m.W))
	for i, w := range m.W {
		metric[i] = math.Abs(w)
	}
	mask := make(Mask, len(m.W))
	if p.Unstructured() {
		pruneWhole(metric, s, mask)
	} else {
		pruneGroups(metric, m.Rows, m.Cols, p, mask)
	}
	return mask
}

// wandaMetric is |W_ij|·‖X_j‖₂ (Wanda's W_metric); sumSq[j] = Σₜ x_tj². Wanda scales the
// squared norm by 1/N_windows, which changes no comparison within a row.
func wandaMetric(m Matrix, sumSq []float64) []float64 {
	metric := make([]float64, len(m.W))
	for r := 0; r < m.Rows; r++ {
		for j := 0; j < m.Cols; j++ {
			metric[r*m.Cols+j] = math.Abs(m.W[r*m.Cols+j]) * math.Sqrt(sumSq[j])
		}
	}
	return metric
}

// wandaMask compares the Wanda metric within each output row, or per N:M group.
func wandaMask(m Matrix, sumSq []float64, s float64, p Pattern) Mask {
	metric := wandaMetric(m, sumSq)
	mask := make(Mask, len(m.W))
	if p.Unstructured() {
		pruneRows(metric, m.Rows, m.Cols, s, mask)
	} else {
		pruneGroups(metric, m.Rows, m.Cols, p, mask)
	}
	return mask
}
