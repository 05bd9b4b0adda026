package backend

import (
	"reflect"
	"runtime"
	"sync"
	"unsafe"

	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// SimpleGo's blocked DotGeneral first copies both operands into 32×32 blocks
// ([batch, crossBlocks, contractBlocks, 32, 32]) with a generic per-element loop on one core
// (a fifth of perplexity evaluation's CPU time once the block products are vector code). The
// float32 copy below handles the two layouts linear layers give — [batch…, cross…,
// contract…] (the forward pass) and [batch…, contract…, cross…] (weights and activations in the
// backward pass) — with row copies, over every core; other layouts go to SimpleGo's copy.

//go:linkname sgFill github.com/gomlx/gomlx/backends/simplego.fillBufferDTypeMap
var sgFill *simplego.DTypeMap

//go:linkname sgFlatToBlock github.com/gomlx/gomlx/backends/simplego.dotGeneralFlatToBlockDTypeMap
var sgFlatToBlock *simplego.DTypeMap

type flatToBlockFn = func(source, blkOutput *simplego.Buffer, contractingAxes, batchAxes []int, batchSize, crossSize, contractingSize, blkLog2Dim int)

var shapeOffset uintptr // offset of simplego.Buffer's shape field

func bufferShape(b *simplego.Buffer) *shapes.Shape {
	return (*shapes.Shape)(unsafe.Add(unsafe.Pointer(b), shapeOffset))
}

// replaceBlocking installs the float32 copy; it returns false (and changes nothing) when
// SimpleGo's table or Buffer do not look as expected.
func replaceBlocking(f32 int) bool {
	if sgFlatToBlock == nil || sgFill == nil {
		return false
	}
	sf, ok := bufferType.Elem().FieldByName("shape")
	if !ok || sf.Type != reflect.TypeOf(shapes.Shape{}) {
		return false
	}
	shapeOffset = sf.Offset
	orig, ok := sgFlatToBlock.Map[f32].(flatToBlockFn)
	if !ok {
		return false
	}
	// Buffer.Zeros (every DotGeneral zeroes its blocked operands and outputs): SimpleGo's fill
	// is an element loop; a zero fill is a memory clear.
	fill, ok := sgFill.Map[f32].(func(*simplego.Buffer, any))
	if !ok {
		return false
	}
	sgFill.Map[f32] = func(b *simplego.Buffer, v any) {
		if v == nil || v == any(float32(0)) {
			clear(flat(b))
			return
		}
		fill(b, v)
	}
	sgFlatToBlock.Map[f32] = flatToBlockFn(func(src, dst *simplego.Buffer, contract, batch []int, bs, cs, ks, log2 int) {
		transposed, ok := blockLayout(bufferShape(src).Rank(), contract, batch)
		if log2 != 5 || !ok {
			orig(src, dst, contract, batch, bs, cs, ks, log2)
			return
		}
		copyToBlocks(flat(src), flat(dst), bs, cs, ks, transposed)
	})
	return true
}

// blockLayout reports whether an operand's axes are [batch…, cross…, contract…] or (transposed)
// [batch…, contract…, cross…], each group in the order DotGeneral lists it.
func blockLayout(rank int, contract, batch []int) (transposed, ok bool) {
	for i, a := range batch {
		if a != i {
			return false, false
		}
	}
	nb, nk := len(batch), len(contract)
	inOrder := func(start int) bool {
		for i, a := range contract {
			if a != start+i {
				return false
			}
		}
		return true
	}
	switch {
	case inOrder(rank - nk):
		return false, true
	case inOrder(nb):
		return true, true
	}
	return false, false
}

// copyToBlocks copies src ([bs, cs, ks], or [bs, ks, cs] when transposed) into dst [bs,
// ceil(cs/32), ceil(ks/32), 32, 32], whose padding is already zero.
func copyToBlocks(src, dst []float32, bs, cs, ks int, transposed bool) {
	cb, kb := (cs+31)/32, (ks+31)/32
	rows, outer := cs, cb // source rows per example, and groups of 32 of them
	if transposed {
		rows, outer = ks, kb
	}
	groups := bs * outer
	work := func(g0, g1 int) {
		for g := g0; g < g1; g++ {
			b, r0 := g/outer, (g%outer)*32
			for r := r0; r < min(r0+32, rows); r++ {
				row := src[(b*rows+r)*(cs*ks/rows) : (b*rows+r+1)*(cs*ks/rows)]
				if !transposed { // row r is cross index c: its contracting values, 32 per block
					base := (b*cb+r>>5)*kb*1024 + (r&31)*32
					for k0 := 0; k0 < ks; k0 += 32 {
						copy(dst[base+k0*32:base+k0*32+min(32, ks-k0)], row[k0:])
					}
					continue
				}
				// row r is contracting index k: one column of each cross block
				base := (b*cb*kb+r>>5)*1024 + (r & 31)
				for c0 := 0; c0 < cs; c0 += 32 {
					blk := dst[base+(c0>>5)*kb*1024:]
					seg := row[c0:min(c0+32, cs)]
					for i, v := range seg {
						blk[i*32] = v
					}
				}
			}
		}
	}
	w := min(runtime.GOMAXPROCS(0), groups)
	if w <= 1 || bs*cs*ks < 1<<16 {
		work(0, groups)
		return
	}
	var wg sync.WaitGroup
	step := (groups + w - 1) / w
	for g0 := 0; g0 < groups; g0 += step {
		wg.Add(1)
		go func(g0, g1 int) {
			defer wg.Done()
			work(g0, g1)
		}(g0, min(g0+step, groups))
	}
	wg.Wait()
}
