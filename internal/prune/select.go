package prune

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Policy is the "+" rule of Shortened LLaMA, which shortened-llm applies to every criterion:
// the first KeepFirst and the last KeepLast blocks are never candidates for removal, because
// removing them hurts far more than any score predicts. The zero Policy allows every block.
type Policy struct {
	KeepFirst int `json:"keep_first"`
	KeepLast  int `json:"keep_last"`
}

// DefaultPolicy is shortened-llm's "+" setting: keep blocks 0–3 and the last two.
var DefaultPolicy = Policy{KeepFirst: 4, KeepLast: 2}

// Allowed reports whether block b of numLayers may be removed.
func (p Policy) Allowed(b, numLayers int) bool {
	return b >= p.KeepFirst && b < numLayers-p.KeepLast
}

// Candidates counts the removable blocks.
func (p Policy) Candidates(numLayers int) int {
	return max(0, numLayers-p.KeepFirst-p.KeepLast)
}

// check refuses a policy that cannot remove n blocks, naming the flags that would allow it:
// pruning fewer blocks than asked would silently change the experiment.
func (p Policy) check(n, numLayers int) error {
	if p.KeepFirst < 0 || p.KeepLast < 0 {
		return fmt.Errorf("--keep-first and --keep-last must not be negative")
	}
	if c := p.Candidates(numLayers); c < n {
		return fmt.Errorf("removing %d of %d blocks needs %d candidates, but --keep-first %d --keep-last %d leave %d; lower --keep-first/--keep-last or pass --no-plus",
			n, numLayers, n, p.KeepFirst, p.KeepLast, c)
	}
	return nil
}

// Choose takes the first n blocks of order (least important first) that the policy allows.
func Choose(order []int, n, numLayers int, p Policy) ([]int, error) {
	if err := p.check(n, numLayers); err != nil {
		return nil, err
	}
	if err := checkOrder(order, numLayers); err != nil {
		return nil, err
	}
	var out []int
	for _, b := range order {
		if len(out) < n && p.Allowed(b, numLayers) {
			out = append(out, b)
		}
	}
	if len(out) < n {
		return nil, fmt.Errorf("the score order ranks only %d removable blocks, %d are needed", len(out), n)
	}
	slices.Sort(out)
	return out, nil
}

func checkOrder(order []int, numLayers int) error {
	seen := map[int]bool{}
	for _, b := range order {
		if b < 0 || b >= numLayers || seen[b] {
			return fmt.Errorf("score order %v: block %d is out of range [0, %d) or repeated", order, b, numLayers)
		}
		seen[b] = true
	}
	return nil
}

// ParseBlocks reads --blocks "3,5,7": distinct original block indices, at least one kept.
func ParseBlocks(s string, numLayers int) ([]int, error) {
	var out []int
	seen := map[int]bool{}
	for _, f := range strings.Split(s, ",") {
		b, err := strconv.Atoi(strings.TrimSpace(f))
		switch {
		case err != nil:
			return nil, fmt.Errorf("--blocks %q: %q is not a block index", s, f)
		case b < 0 || b >= numLayers:
			return nil, fmt.Errorf("--blocks %q: block %d is out of range (the model has blocks 0..%d)", s, b, numLayers-1)
		case seen[b]:
			return nil, fmt.Errorf("--blocks %q: block %d is listed twice", s, b)
		}
		seen[b] = true
		out = append(out, b)
	}
	if len(out) >= numLayers {
		return nil, fmt.Errorf("--blocks %q would remove all %d blocks", s, numLayers)
	}
	slices.Sort(out)
	return out, nil
}

// Kept lists the blocks that survive removing remove (ascending).
func Kept(remove []int, numLayers int) []int {
	var keep []int
	for b := range numLayers {
		if !slices.Contains(remove, b) {
			keep = append(keep, b)
		}
	}
	return keep
}
