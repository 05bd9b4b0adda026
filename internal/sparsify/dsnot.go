package sparsify

// DSnoT (Zhang et al., 2023; github.com/zyxxmu/DSnoT lib/prune.py prune_DSnoT): training-free
// prune-and-grow cycles on each row's mask. Per row, with the dense weights W and the input
// statistic μ_j = Σₜ x_tj / N_windows (sum_metric_row), D_j = W_j·μ_j is weight j's expected
// contribution to the output and e = Σ_{j pruned} D_j the row's expected reconstruction error
// (dense minus sparse). Each cycle regrows the pruned weight that moves e towards 0 most per
// unit of input variance (largest |D_j|/Var_j^p of the sign of e) and prunes the kept weight
// with the smallest Wanda metric among those whose D has the opposite sign, until |e| ≤ the
// update threshold or the cycle limit. For N:M the pruned partner is the kept weight with the
// smallest Wanda metric in the regrown weight's group, and a swap that would flip the sign of
// e is not made (as released). The released code skips MLP matrices by default
// (--skip_layer mlp); so does this, unless DSnoTWithMLP.
//
// Differences from the released code: a row stops when its candidates of the needed sign run
// out (the released code then walks its pointers into the kept weights and changes the
// sparsity); Var is the variance over all calibration tokens (the released code averages
// per-window variances, the windows being fed one at a time); weights are the dense ones and the result is dense ⊙ mask for every method, as the
// released code does for its sparsegpt initial method (no OBS update).

import (
	"math"
	"sort"
)

// dsnotStats are one input point's statistics DSnoT reads.
type dsnotStats struct {
	mu    []float64 // Σₜ x_tj / N_windows
	vari  []float64 // per-channel variance (population)
	sumSq []float64 // Σₜ x_tj², for the Wanda metric
}

type dsnotSettings struct {
	cycles    int
	threshold float64
	varPower  float64
	pattern   Pattern
}

// dsnot refines mask in place for dense matrix m.
func dsnot(m Matrix, mask Mask, st dsnotStats, o dsnotSettings) {
	wanda := wandaMetric(m, st.sumSq)
	for r := 0; r < m.Rows; r++ {
		lo, hi := r*m.Cols, (r+1)*m.Cols
		d := make([]float64, m.Cols)
		for j := range d {
			d[j] = m.W[lo+j] * st.mu[j]
		}
		if o.pattern.Unstructured() {
			dsnotRow(d, wanda[lo:hi], st.vari, mask[lo:hi], o)
		} else {
			dsnotRowNM(d, wanda[lo:hi], st.vari, mask[lo:hi], o)
		}
	}
}

// regrowOrder lists the pruned weights by D_j/Var_j^p ascending (torch.sort stable).
func regrowOrder(d, vari []float64, mask Mask, p float64) []int {
	var idx []int
	key := make([]float64, len(d))
	for j, pruned := range mask {
		if pruned {
			idx = append(idx, j)
			key[j] = d[j] / math.Pow(vari[j], p)
		}
	}
	sortStableBy(idx, key)
	return idx
}

// pruneOrder lists the kept weights with D < 0 by Wanda metric ascending, then those with
// D > 0 by Wanda metric descending (return_reorder_indice), so both ends hold the cheapest
// weight of each sign.
func pruneOrder(d, wanda []float64, mask Mask) []int {
	var kept []int
	for j, pruned := range mask {
		if !pruned {
			kept = append(kept, j)
		}
	}
	sortStableBy(kept, wanda)
	var neg, pos []int
	for _, j := range kept {
		switch {
		case d[j] < 0:
			neg = append(neg, j)
		case d[j] > 0:
			pos = append(pos, j)
		}
	}
	for i, k := 0, len(pos)-1; i < k; i, k = i+1, k-1 {
		pos[i], pos[k] = pos[k], pos[i]
	}
	return append(neg, pos...)
}

func dsnotRow(d, wanda, vari []float64, mask Mask, o dsnotSettings) {
	e := 0.0
	for j, p := range mask {
		if p {
			e += d[j]
		}
	}
	grow := regrowOrder(d, vari, mask, o.varPower)
	prune := pruneOrder(d, wanda, mask)
	gLo, gHi, pLo, pHi := 0, len(grow)-1, 0, len(prune)-1
	for c := 0; c < o.cycles && math.Abs(e) > o.threshold; c++ {
		if gLo > gHi || pLo > pHi {
			return
		}
		var g, p int
		if e > 0 {
			g, gHi = grow[gHi], gHi-1
		} else {
			g, gLo = grow[gLo], gLo+1
		}
		if e < 0 {
			p, pHi = prune[pHi], pHi-1
		} else {
			p, pLo = prune[pLo], pLo+1
		}
		// Each move must shrink e from its side; otherwise this row's candidates ran out.
		if d[g]*e <= 0 || d[p]*e >= 0 {
			return
		}
		mask[g], mask[p] = false, true
		e += d[p] - d[g]
	}
}

func dsnotRowNM(d, wanda, vari []float64, mask Mask, o dsnotSettings) {
	e := 0.0
	for j, p := range mask {
		if p {
			e += d[j]
		}
	}
	sign0 := math.Copysign(1, e)
	if e == 0 {
		return
	}
	grow := regrowOrder(d, vari, mask, o.varPower)
	gLo, gHi := 0, len(grow)-1
	for c := 0; c < o.cycles && math.Abs(e) > o.threshold; c++ {
		if gLo > gHi {
			return
		}
		var g int
		if e > 0 {
			g, gHi = grow[gHi], gHi-1
		} else {
			g, gLo = grow[gLo], gLo+1
		}
		if d[g]*e <= 0 {
			return
		}
		start := g - g%o.pattern.M
		p := -1
		for j := start; j < start+o.pattern.M; j++ {
			if !mask[j] && (p < 0 || wanda[j] < wanda[p]) {
				p = j
			}
		}
		after := e + d[p] - d[g]
		if math.Copysign(1, after) != sign0 || after == 0 {
			return
		}
		mask[g], mask[p] = false, true
		e = after
	}
}

// sortStableBy orders idx by key[idx] ascending, keeping equal keys in index order.
func sortStableBy(idx []int, key []float64) {
	sort.SliceStable(idx, func(a, b int) bool { return key[idx[a]] < key[idx[b]] })
}
