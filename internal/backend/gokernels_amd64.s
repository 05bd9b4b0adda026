#include "textflag.h"

// func dotBlock32(lhs, rhs, out *float32)
// out[i*32+j] += Σ_k lhs[i*32+k]·rhs[j*32+k] for i, j, k in [0, 32): one 32×32 block product
// of SimpleGo's blocked DotGeneral (both operands contracting-axis-last). AVX2 + FMA.
TEXT ·dotBlock32(SB), NOSPLIT, $0-24
	MOVQ lhs+0(FP), SI
	MOVQ rhs+8(FP), DX
	MOVQ out+16(FP), DI
	MOVQ $32, CX

row:
	VMOVUPS 0(SI), Y0
	VMOVUPS 32(SI), Y1
	VMOVUPS 64(SI), Y2
	VMOVUPS 96(SI), Y3
	MOVQ    DX, BX
	MOVQ    $8, R8

col:
	VMULPS      0(BX), Y0, Y4
	VMULPS      128(BX), Y0, Y5
	VMULPS      256(BX), Y0, Y6
	VMULPS      384(BX), Y0, Y7
	VFMADD231PS 32(BX), Y1, Y4
	VFMADD231PS 160(BX), Y1, Y5
	VFMADD231PS 288(BX), Y1, Y6
	VFMADD231PS 416(BX), Y1, Y7
	VFMADD231PS 64(BX), Y2, Y4
	VFMADD231PS 192(BX), Y2, Y5
	VFMADD231PS 320(BX), Y2, Y6
	VFMADD231PS 448(BX), Y2, Y7
	VFMADD231PS 96(BX), Y3, Y4
	VFMADD231PS 224(BX), Y3, Y5
	VFMADD231PS 352(BX), Y3, Y6
	VFMADD231PS 480(BX), Y3, Y7
	VHADDPS     Y5, Y4, Y8
	VHADDPS     Y7, Y6, Y9
	VHADDPS     Y9, Y8, Y10
	VEXTRACTF128 $1, Y10, X11
	VADDPS      X11, X10, X10
	VADDPS      0(DI), X10, X10
	VMOVUPS     X10, 0(DI)
	ADDQ        $512, BX
	ADDQ        $16, DI
	DECQ        R8
	JNZ         col

	ADDQ $128, SI
	DECQ CX
	JNZ  row
	VZEROUPPER
	RET

// func dot4(x, y *float32, stride, n8 int, out *[4]float32)
// out[r] = Σ_{k<8·n8} x[k]·y[r·stride+k] for r in [0, 4). AVX2 + FMA.
TEXT ·dot4(SB), NOSPLIT, $0-40
	MOVQ   x+0(FP), SI
	MOVQ   y+8(FP), DX
	MOVQ   stride+16(FP), R9
	SHLQ   $2, R9
	MOVQ   n8+24(FP), CX
	MOVQ   out+32(FP), DI
	LEAQ   (DX)(R9*1), R10
	LEAQ   (R10)(R9*1), R11
	LEAQ   (R11)(R9*1), R12
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	TESTQ  CX, CX
	JZ     reduce

loop:
	VMOVUPS     (SI), Y0
	VFMADD231PS (DX), Y0, Y4
	VFMADD231PS (R10), Y0, Y5
	VFMADD231PS (R11), Y0, Y6
	VFMADD231PS (R12), Y0, Y7
	ADDQ        $32, SI
	ADDQ        $32, DX
	ADDQ        $32, R10
	ADDQ        $32, R11
	ADDQ        $32, R12
	DECQ        CX
	JNZ         loop

reduce:
	VHADDPS      Y5, Y4, Y8
	VHADDPS      Y7, Y6, Y9
	VHADDPS      Y9, Y8, Y10
	VEXTRACTF128 $1, Y10, X11
	VADDPS       X11, X10, X10
	VMOVUPS      X10, 0(DI)
	VZEROUPPER
	RET

// func dot1(x, y *float32, n8 int) float32
// Σ_{k<8·n8} x[k]·y[k]. AVX2 + FMA.
TEXT ·dot1(SB), NOSPLIT, $0-28
	MOVQ   x+0(FP), SI
	MOVQ   y+8(FP), DX
	MOVQ   n8+16(FP), CX
	VXORPS Y4, Y4, Y4
	TESTQ  CX, CX
	JZ     reduce1

loop1:
	VMOVUPS     (SI), Y0
	VFMADD231PS (DX), Y0, Y4
	ADDQ        $32, SI
	ADDQ        $32, DX
	DECQ        CX
	JNZ         loop1

reduce1:
	VEXTRACTF128 $1, Y4, X5
	VADDPS       X5, X4, X4
	VHADDPS      X4, X4, X4
	VHADDPS      X4, X4, X4
	MOVSS        X4, ret+24(FP)
	VZEROUPPER
	RET
