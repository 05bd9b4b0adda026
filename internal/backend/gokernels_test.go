package backend

import (
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// TestGoKernels_DotGeneral checks the float32 DotGeneral on the go backend against a float64
// product, on shapes that take SimpleGo's small path and its blocked path (with padding, odd
// contracting lengths and batch axes), and that the vector kernels are installed where the CPU
// has them.
func TestGoKernels_DotGeneral(t *testing.T) {
	b, err := New("go", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kernels: %s", GoKernels())
	if haveVectorKernels && os.Getenv(GoKernelsEnv) == "" && GoKernels() != "avx2" {
		t.Fatalf("vector kernels not installed: %s", GoKernels())
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct{ batch, M, N, K int }{
		{1, 1, 7, 5}, {1, 3, 5, 13}, {1, 1, 8003, 64}, {1, 2, 4001, 70}, {2, 4, 9, 16}, {3, 17, 33, 100}, // small path
		{1, 1, 20000, 40}, {1, 64, 300, 70}, {2, 40, 500, 576}, {1, 129, 257, 33}, // blocked path
	} {
		lhs := make([]float32, c.batch*c.M*c.K)
		rhs := make([]float32, c.batch*c.N*c.K)
		for i := range lhs {
			lhs[i] = float32(rng.NormFloat64())
		}
		for i := range rhs {
			rhs[i] = float32(rng.NormFloat64())
		}
		lt := tensors.FromFlatDataAndDimensions(lhs, c.batch, c.M, c.K)
		rt := tensors.FromFlatDataAndDimensions(rhs, c.batch, c.N, c.K)
		out := MustExecOnce(b, func(l, r *Node) *Node {
			return DotGeneral(l, []int{2}, []int{0}, r, []int{2}, []int{0})
		}, lt, rt)
		got := tensors.MustCopyFlatData[float32](out)
		for bi := 0; bi < c.batch; bi++ {
			for i := 0; i < c.M; i++ {
				for j := 0; j < c.N; j++ {
					var want, mag float64
					for k := 0; k < c.K; k++ {
						p := float64(lhs[(bi*c.M+i)*c.K+k]) * float64(rhs[(bi*c.N+j)*c.K+k])
						want += p
						mag += math.Abs(p)
					}
					g := float64(got[(bi*c.M+i)*c.N+j])
					if math.Abs(g-want) > 1e-5*mag+1e-6 {
						t.Fatalf("%+v: out[%d,%d,%d] = %g, want %g", c, bi, i, j, g, want)
					}
				}
			}
		}
	}
}

// TestGoKernels_Layouts checks the blocked path with operands in the layouts the backward pass
// gives ([contract, cross]: transposed blocking) and one SimpleGo's own copy handles (batch
// axis not first), against a float64 product.
func TestGoKernels_Layouts(t *testing.T) {
	b, err := New("go", nil)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	randT := func(dims ...int) (*tensors.Tensor, []float32) {
		n := 1
		for _, d := range dims {
			n *= d
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return tensors.FromFlatDataAndDimensions(v, dims...), v
	}
	// out[i, j] = Σ_{a,b} x[a, b, i]·y[a, b, j]: both operands contract their leading axes.
	const A, B, M, N = 3, 45, 70, 300
	xt, x := randT(A, B, M)
	yt, y := randT(A, B, N)
	got := tensors.MustCopyFlatData[float32](MustExecOnce(b, func(l, r *Node) *Node {
		return DotGeneral(l, []int{0, 1}, nil, r, []int{0, 1}, nil)
	}, xt, yt))
	for i := 0; i < M; i++ {
		for j := 0; j < N; j++ {
			var want, mag float64
			for k := 0; k < A*B; k++ {
				p := float64(x[k*M+i]) * float64(y[k*N+j])
				want, mag = want+p, mag+math.Abs(p)
			}
			if g := float64(got[i*N+j]); math.Abs(g-want) > 1e-5*mag+1e-6 {
				t.Fatalf("transposed: out[%d,%d] = %g, want %g", i, j, g, want)
			}
		}
	}
	// out[h, i, j] = Σ_k q[i, h, k]·kk[h, j, k]: lhs's batch axis is its second.
	const H, T, S, D = 3, 130, 130, 64 // T·S over the small-path limit
	qt, q := randT(T, H, D)
	kt, kk := randT(H, S, D)
	got = tensors.MustCopyFlatData[float32](MustExecOnce(b, func(l, r *Node) *Node {
		return DotGeneral(l, []int{2}, []int{1}, r, []int{2}, []int{0})
	}, qt, kt))
	for h := 0; h < H; h++ {
		for i := 0; i < T; i++ {
			for j := 0; j < S; j++ {
				var want, mag float64
				for k := 0; k < D; k++ {
					p := float64(q[(i*H+h)*D+k]) * float64(kk[(h*S+j)*D+k])
					want, mag = want+p, mag+math.Abs(p)
				}
				if g := float64(got[(h*T+i)*S+j]); math.Abs(g-want) > 1e-5*mag+1e-6 {
					t.Fatalf("batch second: out[%d,%d,%d] = %g, want %g", h, i, j, g, want)
				}
			}
		}
	}
}

// BenchmarkGoDotGeneral times one linear layer's product on the go backend (a 1024-token
// batch through a 576→1536 projection, smol125's gate_proj): GFLOP/s of the kernels in use
// ($SHORTLLM_GO_KERNELS=off for SimpleGo's own).
func BenchmarkGoDotGeneral(b *testing.B) {
	be, err := New("go", nil)
	if err != nil {
		b.Fatal(err)
	}
	const M, K, N = 1024, 576, 1536
	x := tensors.FromShape(shapes.Make(dtypes.Float32, M, K))
	w := tensors.FromShape(shapes.Make(dtypes.Float32, N, K))
	exec := MustNewExec(be, func(x, w *Node) *Node { return DotGeneral(x, []int{1}, nil, w, []int{1}, nil) })
	exec.MustExec(x, w)[0].FinalizeAll()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		exec.MustExec(x, w)[0].FinalizeAll()
	}
	b.ReportMetric(float64(2*M*K*N)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}
