package sparsify

import (
	"fmt"
	"math"
	"slices"
	"testing"
)

// relDiff is ‖a − b‖ / ‖b‖.
func relDiff(a, b []float64) float64 {
	var num, den float64
	for i := range b {
		num += (a[i] - b[i]) * (a[i] - b[i])
		den += b[i] * b[i]
	}
	return math.Sqrt(num / den)
}

// Both OBS solvers against the references on correlated random layers: the same masks and the
// same weights, hence the same reconstruction error. cols = 160 spans two SparseGPT blocks.
func TestOBS_MatchesReference(t *testing.T) {
	const rows, cols, n, windows = 12, 160, 400, 5
	for _, tc := range []struct {
		method string
		p      Pattern
		s      float64
		block  bool
	}{
		{SparseGPT, Pattern{}, 0.5, false},
		{SparseGPT, Pattern{}, 0.37, false},
		{SparseGPT, Pattern{2, 4}, 0.5, false},
		{MRP, Pattern{}, 0.5, false},
		{MRP, Pattern{}, 0.37, false},
		{MRP, Pattern{2, 4}, 0.5, false},
		{MRP, Pattern{}, 0.5, true},
		{MRP, Pattern{4, 8}, 0.5, true},
	} {
		t.Run(fmt.Sprintf("%s_%s_%g_block%v", tc.method, tc.p, tc.s, tc.block), func(t *testing.T) {
			w, gram := randomLayer(7, rows, cols, n)
			gram[5*cols+5] = 0 // a dead input: its row and column of XᵀX are zero
			for j := 0; j < cols; j++ {
				gram[5*cols+j], gram[j*cols+5] = 0, 0
			}
			dense := slices.Clone(w)
			got := Matrix{Rows: rows, Cols: cols, W: slices.Clone(w)}
			hinv, u, err := hessian(gram, windows, got, DefaultDamp)
			if err != nil {
				t.Fatal(err)
			}
			set := obsSettings{sparsity: tc.s, pattern: tc.p, block: DefaultBlockSize}
			var mask Mask
			want := slices.Clone(w)
			h := refHessian(gram, windows, want, rows, cols, DefaultDamp)
			var wantMask []bool
			if tc.method == SparseGPT {
				mask = sparseGPT(got, u, set)
				wantMask = refSparseGPT(t, want, rows, cols, h, tc.s, tc.p, DefaultBlockSize)
			} else {
				if mask, err = mrp(got, hinv, u, set, tc.block); err != nil {
					t.Fatal(err)
				}
				blk := 0
				if tc.block {
					blk = DefaultBlockSize
				}
				wantMask = refMRP(t, want, rows, cols, h, tc.s, tc.p, blk)
			}
			if !slices.Equal([]bool(mask), wantMask) {
				t.Fatalf("masks differ from the reference")
			}
			if d := relDiff(got.W, want); d > 1e-9 {
				t.Fatalf("weights differ from the reference by %.3g (relative)", d)
			}
			eg, ew := reconErr(dense, got.W, rows, cols, gram), reconErr(dense, want, rows, cols, gram)
			if math.Abs(eg/ew-1) > 1e-6 {
				t.Fatalf("reconstruction error %.6g, reference %.6g", eg, ew)
			}
			for r := 0; r < rows; r++ {
				if got.W[r*cols+5] != 0 {
					t.Fatalf("dead input column 5 kept a weight in row %d", r)
				}
			}
			checkCounts(t, "layer", mask, rows, cols, tc.s, tc.p, tc.method != SparseGPT)
		})
	}
}

// MRP's kept weights solve the constrained least-squares problem exactly, so with its own
// mask it can only beat SparseGPT's sequential compensation on the same mask; on random
// layers it also beats SparseGPT overall.
func TestMRP_ErrorBelowSparseGPT(t *testing.T) {
	const rows, cols = 16, 96
	w, gram := randomLayer(11, rows, cols, 300)
	a := Matrix{Rows: rows, Cols: cols, W: slices.Clone(w)}
	b := Matrix{Rows: rows, Cols: cols, W: slices.Clone(w)}
	hinv, u, err := hessian(gram, 4, a, DefaultDamp)
	if err != nil {
		t.Fatal(err)
	}
	set := obsSettings{sparsity: 0.5, block: DefaultBlockSize}
	sparseGPT(a, u, set)
	if _, err := mrp(b, hinv, nil, set, false); err != nil {
		t.Fatal(err)
	}
	es, em := reconErr(w, a.W, rows, cols, gram), reconErr(w, b.W, rows, cols, gram)
	if !(em < es) {
		t.Fatalf("mrp error %.4g not below sparsegpt %.4g", em, es)
	}
}

// checkCounts asserts the exact number of zeros in each comparison group: every row
// (perRow), the whole matrix otherwise, and every N:M group.
func checkCounts(t *testing.T, name string, mask Mask, rows, cols int, s float64, p Pattern, perRow bool) {
	t.Helper()
	if !p.Unstructured() {
		for r := 0; r < rows; r++ {
			for g := 0; g < cols; g += p.M {
				n := 0
				for j := g; j < g+p.M; j++ {
					if mask[r*cols+j] {
						n++
					}
				}
				if n != p.N {
					t.Fatalf("%s row %d group %d: %d pruned, want %d", name, r, g/p.M, n, p.N)
				}
			}
		}
		return
	}
	total := 0
	for r := 0; r < rows; r++ {
		n := 0
		for j := 0; j < cols; j++ {
			if mask[r*cols+j] {
				n++
			}
		}
		if perRow && n != int(float64(cols)*s) {
			t.Fatalf("%s row %d: %d pruned, want %d", name, r, n, int(float64(cols)*s))
		}
		total += n
	}
	if want := int(float64(rows*cols) * s); !perRow && total != want {
		t.Fatalf("%s: %d pruned, want %d", name, total, want)
	}
}

// DSnoT keeps every row's (and group's) count and lowers the rows' expected errors
// |Σ_pruned W_j μ_j| in total (a row may get worse: the released unstructured loop does not
// check the sign of the error after a swap, and N:M prunes the group's lowest Wanda weight
// whatever its sign).
func TestDSnoT_KeepsCountsAndLowersError(t *testing.T) {
	const rows, cols = 20, 64
	w, _ := randomLayer(3, rows, cols, 10)
	st := dsnotStats{mu: make([]float64, cols), vari: make([]float64, cols), sumSq: make([]float64, cols)}
	for j := range st.mu {
		st.mu[j] = math.Sin(float64(j)) * 3
		st.vari[j] = 1 + float64(j%5)
		st.sumSq[j] = 2 + math.Cos(float64(j))
	}
	m := Matrix{Rows: rows, Cols: cols, W: w}
	rowErr := func(mask Mask, r int) float64 {
		e := 0.0
		for j := 0; j < cols; j++ {
			if mask[r*cols+j] {
				e += w[r*cols+j] * st.mu[j]
			}
		}
		return math.Abs(e)
	}
	for _, p := range []Pattern{{}, {2, 4}} {
		mask := wandaMask(m, st.sumSq, 0.5, p)
		before := slices.Clone(mask)
		dsnot(m, mask, st, dsnotSettings{cycles: 50, threshold: 0.1, varPower: 1, pattern: p})
		checkCounts(t, "dsnot "+p.String(), mask, rows, cols, 0.5, p, true)
		changed := 0
		var sumBefore, sumAfter float64
		for r := 0; r < rows; r++ {
			sumBefore += rowErr(before, r)
			sumAfter += rowErr(mask, r)
			if !slices.Equal(mask[r*cols:(r+1)*cols], before[r*cols:(r+1)*cols]) {
				changed++
			}
		}
		if changed == 0 || sumAfter >= sumBefore {
			t.Fatalf("%s: DSnoT changed %d rows, total expected error %.4g → %.4g", p, changed, sumBefore, sumAfter)
		}
	}
}

// Barber's rebuild swaps equal numbers per row (unstructured) and per group (N:M), and the
// swaps follow the score: every regrown weight outscores every newly pruned one of its row.
func TestBarber_RebuildKeepsCounts(t *testing.T) {
	const rows, cols = 10, 48
	score, _ := randomLayer(5, rows, cols, 1)
	for i := range score {
		score[i] = math.Abs(score[i])
	}
	for _, p := range []Pattern{{}, {2, 4}} {
		// Start from a fixed mask (the first half of every group of 4), far from the score's choice.
		mask := make(Mask, len(score))
		for i := range mask {
			mask[i] = i%4 < 2
		}
		before := slices.Clone(mask)
		rebuildMask(score, rows, cols, mask, p, 0.5)
		checkCounts(t, "barber "+p.String(), mask, rows, cols, 0.5, p, true)
		if slices.Equal([]bool(mask), []bool(before)) {
			t.Fatalf("%s: nothing rebuilt", p)
		}
		for r := 0; r < rows; r++ {
			minGrown, maxCut := math.Inf(1), math.Inf(-1)
			for j := 0; j < cols; j++ {
				i := r*cols + j
				if before[i] && !mask[i] {
					minGrown = math.Min(minGrown, score[i])
				}
				if !before[i] && mask[i] {
					maxCut = math.Max(maxCut, score[i])
				}
			}
			if p.Unstructured() && minGrown < maxCut {
				t.Fatalf("row %d: regrew a weight scoring %.3g but pruned one scoring %.3g", r, minGrown, maxCut)
			}
		}
	}
}
