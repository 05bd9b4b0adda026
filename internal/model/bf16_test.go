package model

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/dtypes/bfloat16"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph code reads like maths
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// TestRoundToBF16_Nearest: the in-graph cast rounds to nearest as the host's roundBF16 (torch's
// .to(bfloat16)) does, on SimpleGo, whose own convert truncates. Random values over many
// binades, exact ties (nearest-even may differ from Veltkamp's split there; none may be more
// than one ulp off) and values already representable.
func TestRoundToBF16_Nearest(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	vals := []float32{0, 1, -1, 0.1, -3.75, 1e-20, 65504, 1 + 1.0/256, 1 + 3.0/256}
	for range 20000 {
		v := float32(rng.NormFloat64() * math.Pow(2, float64(rng.IntN(40)-20)))
		vals = append(vals, v)
	}
	exec, err := NewExec(testBackend(t), func(x *Node) *Node { return RoundToBF16(x) })
	if err != nil {
		t.Fatal(err)
	}
	out := exec.MustExec(tensors.FromFlatDataAndDimensions(vals, len(vals)))[0]
	if out.DType() != dtypes.BFloat16 {
		t.Fatalf("dtype %s", out.DType())
	}
	got := tensors.MustCopyFlatData[bfloat16.BFloat16](out)
	ties := 0
	for i, v := range vals {
		want := roundBF16(v)
		if got[i] == want {
			continue
		}
		tie := math.Float32bits(v)&0xffff == 0x8000
		if !tie || math.Abs(float64(got[i].Float32()-v)) > math.Abs(float64(want.Float32()-v)) {
			t.Fatalf("%g: got %g, want %g", v, got[i].Float32(), want.Float32())
		}
		ties++
	}
	t.Logf("%d values, %d ties rounded away from even", len(vals), ties)
}
