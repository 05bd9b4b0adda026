package search

// exhaustive evaluates every n-subset of the candidates, the ground truth the searches are
// measured against. Sets are visited in lexicographic order, so consecutive sets share their
// longest prefixes and each one runs only the blocks after its last change. One trace step
// per set.
func exhaustive(rn *runner) error {
	total := int(binomial(len(rn.cands), rn.n))
	idx := make([]int, rn.n) // positions into cands, strictly increasing
	for i := range idx {
		idx[i] = i
	}
	set := make([]int, rn.n)
	for step := 0; ; step++ {
		for i, j := range idx {
			set[i] = rn.cands[j]
		}
		if _, ok, err := rn.eval(set); err != nil || !ok {
			return err
		}
		rn.step(step, total)
		if !nextCombination(idx, len(rn.cands)) {
			return nil
		}
	}
}

// nextCombination advances idx to the next k-combination of 0..n−1 in lexicographic order;
// false after the last one.
func nextCombination(idx []int, n int) bool {
	k := len(idx)
	i := k - 1
	for i >= 0 && idx[i] == n-k+i {
		i--
	}
	if i < 0 {
		return false
	}
	idx[i]++
	for j := i + 1; j < k; j++ {
		idx[j] = idx[j-1] + 1
	}
	return true
}
