//go:build !amd64

package backend

const haveVectorKernels = false

func blockProduct32(lhs, rhs, out []float32)              { panic("no vector kernels") }
func dot4(x, y *float32, stride, n8 int, out *[4]float32) { panic("no vector kernels") }
func dot1(x, y *float32, n8 int) float32                  { panic("no vector kernels") }
