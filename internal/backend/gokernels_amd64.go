package backend

import "golang.org/x/sys/cpu"

var haveVectorKernels = cpu.X86.HasAVX2 && cpu.X86.HasFMA

//go:noescape
func dotBlock32(lhs, rhs, out *float32)

//go:noescape
func dot4(x, y *float32, stride, n8 int, out *[4]float32)

//go:noescape
func dot1(x, y *float32, n8 int) float32

// blockProduct32 adds the product of two 32×32 blocks (contracting axis last in both) to out.
func blockProduct32(lhs, rhs, out []float32) {
	_, _, _ = lhs[1023], rhs[1023], out[1023]
	dotBlock32(&lhs[0], &rhs[0], &out[0])
}
