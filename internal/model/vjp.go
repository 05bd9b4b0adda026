package model

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph code reads like maths
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// GoMLX's stock DotGeneral gradient multiplies the adjoint with a broadcast copy of the
// other operand and reduces it: on SimpleGo that materialises a [batch, M, N, K] tensor
// (17 s and 3.4 GB per step on a 2-layer model). The gradient of a contraction is itself two
// contractions, which is what fastDotGeneralVJP builds (1 s, 115 MB).
//
// GoMLX keeps one global VJP table; we replace its DotGeneral entry exactly once, before the
// first graph is built, and keep the stock function for tests that compare the two.
var dotVJPOnce struct {
	once  sync.Once
	stock VJP
}

// RegisterFastDotGeneralVJP installs the two-DotGeneral gradient (idempotent, goroutine-safe).
func RegisterFastDotGeneralVJP() {
	dotVJPOnce.once.Do(func() {
		dotVJPOnce.stock = VJPRegistration[NodeTypeDotGeneral]
		VJPRegistration[NodeTypeDotGeneral] = fastDotGeneralVJP
	})
}

// StockDotGeneralVJP returns GoMLX's own DotGeneral gradient (for conformance tests).
func StockDotGeneralVJP() VJP {
	RegisterFastDotGeneralVJP()
	return dotVJPOnce.stock
}

// dotAxes are a DotGeneral node's axis lists. GoMLX does not export them; the node's String()
// prints them as "lhsContractingAxes=[..], lhsBatchAxes=[..], ... rhsContractingAxes=[..],
// rhsBatchAxes=[..]", which parseDotAxes reads back (tests compare against the stock VJP).
type dotAxes struct {
	lhsContract, lhsBatch, rhsContract, rhsBatch []int
}

var dotAxesRe = regexp.MustCompile(`lhsContractingAxes=\[([0-9 ]*)\], lhsBatchAxes=\[([0-9 ]*)\], rhs=\[#\d+\], rhsContractingAxes=\[([0-9 ]*)\], rhsBatchAxes=\[([0-9 ]*)\]`)

func parseDotAxes(s string) (dotAxes, error) {
	m := dotAxesRe.FindStringSubmatch(s)
	if m == nil {
		return dotAxes{}, fmt.Errorf("cannot read DotGeneral axes from %q", s)
	}
	lists := make([][]int, 4)
	for i := range lists {
		for _, f := range strings.Fields(m[i+1]) {
			v, err := strconv.Atoi(f)
			if err != nil {
				return dotAxes{}, err
			}
			lists[i] = append(lists[i], v)
		}
	}
	return dotAxes{lists[0], lists[1], lists[2], lists[3]}, nil
}

// crossAxes are the axes of an operand that are neither contracted nor batch, in order.
func crossAxes(rank int, contract, batch []int) []int {
	var out []int
	for a := 0; a < rank; a++ {
		if !slices.Contains(contract, a) && !slices.Contains(batch, a) {
			out = append(out, a)
		}
	}
	return out
}

// fastDotGeneralVJP: with out[b, x, y] = Σ_c lhs[b, x, c]·rhs[b, y, c] (axes grouped by role),
// dL/dlhs[b, x, c] = Σ_y v[b, x, y]·rhs[b, y, c] and dL/drhs[b, y, c] = Σ_x v[b, x, y]·lhs[b, x, c].
func fastDotGeneralVJP(node *Node, vjps []*Node, _ shapes.Shape) []*Node {
	ax, err := parseDotAxes(node.String())
	if err != nil {
		panic(err)
	}
	v := vjps[0]
	lhs, rhs := node.Inputs()[0], node.Inputs()[1]
	lhsCross := crossAxes(lhs.Rank(), ax.lhsContract, ax.lhsBatch)
	rhsCross := crossAxes(rhs.Rank(), ax.rhsContract, ax.rhsBatch)
	nb := len(ax.lhsBatch)
	vBatch := iotaFrom(0, nb)
	vLhsCross := iotaFrom(nb, len(lhsCross))
	vRhsCross := iotaFrom(nb+len(lhsCross), len(rhsCross))

	gradLHS := DotGeneral(v, vRhsCross, vBatch, rhs, rhsCross, ax.rhsBatch)
	gradLHS = toOperandLayout(gradLHS, lhs.Rank(), ax.lhsBatch, lhsCross, ax.lhsContract, ax.rhsContract)
	gradRHS := DotGeneral(v, vLhsCross, vBatch, lhs, lhsCross, ax.lhsBatch)
	gradRHS = toOperandLayout(gradRHS, rhs.Rank(), ax.rhsBatch, rhsCross, ax.rhsContract, ax.lhsContract)
	return []*Node{gradLHS, gradRHS}
}

// toOperandLayout transposes a gradient laid out as [batch..., cross..., other's remaining axes
// in increasing order] back to the operand's own axis order. The trailing axes are the other
// operand's contracting axes sorted by their index there; pairing maps each to our axis.
func toOperandLayout(g *Node, rank int, batch, cross, contract, otherContract []int) *Node {
	order := append(append([]int{}, batch...), cross...)
	sorted := slices.Clone(otherContract)
	slices.Sort(sorted)
	for _, oc := range sorted {
		order = append(order, contract[slices.Index(otherContract, oc)])
	}
	perm := make([]int, rank)
	identity := true
	for pos, axis := range order {
		perm[axis] = pos
		identity = identity && pos == axis
	}
	if identity {
		return g
	}
	return TransposeAllAxes(g, perm...)
}

func iotaFrom(start, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = start + i
	}
	return out
}
