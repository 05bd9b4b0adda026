package backend

// Faster float32 DotGeneral kernels for SimpleGo (GoMLX v0.26's pure-Go backend).
//
// A profile of perplexity evaluation on a 125M-parameter model puts 85–90% of the CPU time in
// SimpleGo's blocked DotGeneral kernel, a scalar Go loop; batch-1 decoding spends it in the
// row-dot kernel of its small-product path. SimpleGo picks its kernels per dtype from two
// tables (dotGeneralKernelDTypeMap: one 32×32 block product of the blocked path;
// dotGeneralNormalizedDTypeMap: the small path's [batch, rows, contract]·[batch, cols,
// contract] product). On CPUs with AVX2 and FMA, InstallGoKernels replaces their float32
// entries with vector kernels (gokernels_amd64.s) that compute the same sums (in a different
// order: eight partial sums per dot product instead of one). Everything else — shapes,
// blocking, padding, parallelism, bf16 — stays SimpleGo's.
//
// The tables are unexported: they are reached with go:linkname, and the kernels' argument
// types are read with reflect, both checked against what this file expects; on any mismatch
// (another GoMLX version) nothing is replaced and GoKernels() says why. SHORTLLM_GO_KERNELS=off
// keeps SimpleGo's own kernels, =kernels replaces only the two products (A/B checks).

import (
	"fmt"
	"os"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
)

// GoKernelsEnv set to "off" keeps SimpleGo's own DotGeneral kernels; "kernels" replaces the
// block and small products but keeps SimpleGo's operand blocking and fills.
const GoKernelsEnv = "SHORTLLM_GO_KERNELS"

//go:linkname sgBlockKernels github.com/gomlx/gomlx/backends/simplego.dotGeneralKernelDTypeMap
var sgBlockKernels *simplego.DTypeMap

//go:linkname sgSmallKernels github.com/gomlx/gomlx/backends/simplego.dotGeneralNormalizedDTypeMap
var sgSmallKernels *simplego.DTypeMap

var goKernels struct {
	once   sync.Once
	status string // "" until installed; then "avx2" or why not
}

// GoKernels reports which float32 DotGeneral kernels SimpleGo runs: "avx2" (this package's)
// or "simplego: <reason>".
func GoKernels() string {
	installGoKernels()
	return goKernels.status
}

// installGoKernels replaces SimpleGo's float32 DotGeneral kernels once, before the first
// go backend is created.
func installGoKernels() {
	goKernels.once.Do(func() {
		switch {
		case strings.EqualFold(os.Getenv(GoKernelsEnv), "off"):
			goKernels.status = "simplego: $" + GoKernelsEnv + "=off"
		case !haveVectorKernels:
			goKernels.status = "simplego: no AVX2+FMA on this CPU"
		default:
			if err := replaceKernels(); err != nil {
				goKernels.status = "simplego: " + err.Error()
			} else if goKernels.status == "" {
				goKernels.status = "avx2"
			}
		}
	})
}

var (
	bufferType   = reflect.TypeOf((*simplego.Buffer)(nil))
	flatOffset   uintptr // offset of simplego.Buffer's flat field (an any holding []T)
	intType      = reflect.TypeOf(0)
	smallFieldIx [3][]int // contractingSize, lhsCrossSize, rhsCrossSize in dotGeneralNodeData
)

// flat returns a float32 buffer's data.
func flat(b *simplego.Buffer) []float32 {
	return (*(*any)(unsafe.Add(unsafe.Pointer(b), flatOffset))).([]float32)
}

func replaceKernels() error {
	if sgBlockKernels == nil || sgSmallKernels == nil {
		return fmt.Errorf("kernel tables not found")
	}
	f, ok := bufferType.Elem().FieldByName("flat")
	if !ok || f.Type.Kind() != reflect.Interface || f.Type.NumMethod() != 0 {
		return fmt.Errorf("simplego.Buffer has no flat any field")
	}
	flatOffset = f.Offset

	// Blocked path: func(lhs, rhs, output *Buffer, blockDim int) kernelFuncType, with
	// kernelFuncType func(lhsBlockIdx, rhsBlockIdx, outputBlockIdx int).
	block := reflect.ValueOf(sgBlockKernels.Map[dtypes.Float32])
	bt := block.Type()
	if !block.IsValid() || bt.Kind() != reflect.Func || bt.NumIn() != 4 || bt.NumOut() != 1 ||
		bt.In(0) != bufferType || bt.In(1) != bufferType || bt.In(2) != bufferType || bt.In(3) != intType {
		return fmt.Errorf("unexpected blocked kernel builder %v", bt)
	}
	kt := bt.Out(0)
	if kt.Kind() != reflect.Func || kt.NumIn() != 3 || kt.NumOut() != 0 ||
		kt.In(0) != intType || kt.In(1) != intType || kt.In(2) != intType {
		return fmt.Errorf("unexpected blocked kernel %v", kt)
	}

	// Small path: func(lhs, rhs, output *Buffer, params *dotGeneralNodeData, batchStart, batchEnd int).
	small := reflect.ValueOf(sgSmallKernels.Map[dtypes.Float32])
	st := small.Type()
	if !small.IsValid() || st.Kind() != reflect.Func || st.NumIn() != 6 || st.NumOut() != 0 ||
		st.In(0) != bufferType || st.In(1) != bufferType || st.In(2) != bufferType ||
		st.In(3).Kind() != reflect.Pointer || st.In(3).Elem().Kind() != reflect.Struct ||
		st.In(4) != intType || st.In(5) != intType {
		return fmt.Errorf("unexpected small-path kernel %v", st)
	}
	for i, name := range []string{"contractingSize", "lhsCrossSize", "rhsCrossSize"} {
		sf, ok := st.In(3).Elem().FieldByName(name)
		if !ok || sf.Type != intType {
			return fmt.Errorf("DotGeneral parameters have no int %s", name)
		}
		smallFieldIx[i] = sf.Index
	}

	newBlock := reflect.MakeFunc(bt, func(args []reflect.Value) []reflect.Value {
		if args[3].Int() != 32 {
			return block.Call(args)
		}
		l, r, o := flat(args[0].Interface().(*simplego.Buffer)), flat(args[1].Interface().(*simplego.Buffer)), flat(args[2].Interface().(*simplego.Buffer))
		k := func(li, ri, oi int) {
			blockProduct32(l[li*1024:li*1024+1024], r[ri*1024:ri*1024+1024], o[oi*1024:oi*1024+1024])
		}
		return []reflect.Value{reflect.ValueOf(k).Convert(kt)}
	})
	newSmall := reflect.MakeFunc(st, func(args []reflect.Value) []reflect.Value {
		p := args[3].Elem()
		K := int(p.FieldByIndex(smallFieldIx[0]).Int())
		M := int(p.FieldByIndex(smallFieldIx[1]).Int())
		N := int(p.FieldByIndex(smallFieldIx[2]).Int())
		smallProduct(flat(args[0].Interface().(*simplego.Buffer)), flat(args[1].Interface().(*simplego.Buffer)),
			flat(args[2].Interface().(*simplego.Buffer)), K, M, N, int(args[4].Int()), int(args[5].Int()))
		return nil
	})
	if strings.EqualFold(os.Getenv(GoKernelsEnv), "kernels") {
		goKernels.status = "avx2 (kernels only)"
	} else if !replaceBlocking(int(dtypes.Float32)) {
		return fmt.Errorf("unexpected operand blocking")
	}
	sgBlockKernels.Map[dtypes.Float32] = newBlock.Interface()
	sgSmallKernels.Map[dtypes.Float32] = newSmall.Interface()
	return nil
}

// smallProduct is SimpleGo's small-path product for batches [b0, b1): out[b, i, j] +=
// Σ_k lhs[b, i, k]·rhs[b, j, k], lhs [batch, M, K], rhs [batch, N, K], out [batch, M, N].
// Four rhs rows at a time stay in cache while every lhs row passes over them.
//
// SimpleGo spreads a product over cores by batch only; one large example (batch-1 decoding:
// a matrix times one vector) is split here over column ranges, one per core.
func smallProduct(lhs, rhs, out []float32, K, M, N, b0, b1 int) {
	if w := min(runtime.GOMAXPROCS(0), N/64); b1-b0 == 1 && w > 1 && M*N*K >= 1<<18 {
		var wg sync.WaitGroup
		step := (N/w + 3) / 4 * 4
		for j0 := 0; j0 < N; j0 += step {
			wg.Add(1)
			go func(j0, j1 int) {
				defer wg.Done()
				smallColumns(lhs, rhs, out, K, M, N, b0, j0, j1)
			}(j0, min(j0+step, N))
		}
		wg.Wait()
		return
	}
	for b := b0; b < b1; b++ {
		smallColumns(lhs, rhs, out, K, M, N, b, 0, N)
	}
}

// smallColumns is smallProduct for example b and columns [j0, j1).
func smallColumns(lhs, rhs, out []float32, K, M, N, b, j0, j1 int) {
	k8 := K / 8
	L := lhs[b*M*K : (b+1)*M*K]
	R := rhs[b*N*K : (b+1)*N*K]
	O := out[b*M*N : (b+1)*M*N]
	j := j0
	for ; j+4 <= j1; j += 4 {
		for i := 0; i < M; i++ {
			x := L[i*K : (i+1)*K]
			var s [4]float32
			if k8 > 0 {
				dot4(&x[0], &R[j*K], K, k8, &s)
			}
			for r := 0; r < 4; r++ {
				y := R[(j+r)*K : (j+r+1)*K]
				for k := 8 * k8; k < K; k++ {
					s[r] += x[k] * y[k]
				}
				O[i*N+j+r] += s[r]
			}
		}
	}
	for ; j < j1; j++ {
		y := R[j*K : (j+1)*K]
		for i := 0; i < M; i++ {
			x := L[i*K : (i+1)*K]
			var s float32
			if k8 > 0 {
				s = dot1(&x[0], &y[0], k8)
			}
			for k := 8 * k8; k < K; k++ {
				s += x[k] * y[k]
			}
			O[i*N+j] += s
		}
	}
}
