package sparsify

import (
	"fmt"
	"path/filepath"

	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/shortllm/shortllm/internal/capture"
	"github.com/shortllm/shortllm/internal/model"
)

// blockModules are a block's linear layers (relative names) and the input point each reads.
var blockModules = []struct{ name, point string }{
	{"self_attn.q_proj", capture.AttnIn},
	{"self_attn.k_proj", capture.AttnIn},
	{"self_attn.v_proj", capture.AttnIn},
	{"self_attn.o_proj", capture.OIn},
	{"mlp.gate_proj", capture.MLPIn},
	{"mlp.up_proj", capture.MLPIn},
	{"mlp.down_proj", capture.DownIn},
}

func weightName(b int, module string) string {
	return fmt.Sprintf("model.layers.%d.%s.weight", b, module)
}

// Run sparsifies r.Model's blocks in place, block by block, and returns the record (without
// ToolVersion and DType, which the writer knows). The model's other tensors are untouched.
func Run(r *model.Runner, o Options) (*Record, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	m := r.Model
	if err := checkShapes(m, o.Pattern); err != nil {
		return nil, err
	}
	rec := newRecord(m, o)
	before := nonzeros(m)
	targets, err := allocate(m, o, rec)
	if err != nil {
		return nil, err
	}
	var sess *capture.Session
	if needsData(o) {
		if sess, err = capture.Start(r, o.Calib.IDs, capture.Options{BatchSize: o.BatchSize}); err != nil {
			return nil, err
		}
	}
	L := m.Config.NumHiddenLayers
	for b := 0; b < L; b++ {
		if err := sparsifyBlock(r, sess, b, targets[b], o); err != nil {
			return nil, fmt.Errorf("sparsify block %d: %w", b, err)
		}
		if sess != nil {
			if err := sess.Advance(); err != nil {
				return nil, err
			}
		}
		if o.Progress != nil {
			o.Progress(b+1, L)
		}
	}
	rec.ParamsBefore = before.total
	measure(m, rec, targets)
	return rec, nil
}

func needsData(o Options) bool { return o.Method != Magnitude || o.Refine != NoRefine }

// checkShapes rejects N:M patterns that do not tile every pruned matrix's input dimension.
func checkShapes(m *model.Model, p Pattern) error {
	for _, mod := range blockModules {
		name := weightName(0, mod.name)
		if err := checkPattern(name, m.Weights[name].Shape().Dimensions[1], p); err != nil {
			return err
		}
	}
	return nil
}

func newRecord(m *model.Model, o Options) *Record {
	src := m.Dir
	if abs, err := filepath.Abs(src); err == nil {
		src = abs
	}
	rec := &Record{SourceModel: src, SourceConfigHash: m.Config.Hash(), Method: o.Method,
		Pattern: o.Pattern.String(), Sparsity: o.Sparsity, Allocation: o.Allocation, Refine: o.Refine}
	s := &rec.Settings
	switch o.Method {
	case SparseGPT, MRP:
		s.Damp, s.BlockSize, s.MRPBlock = o.Damp, o.BlockSize, o.MRPBlock && o.Method == MRP
	}
	if o.Allocation == Alpha {
		s.Epsilon, s.AlphaXmin = o.Epsilon, o.AlphaXmin
	}
	switch o.Refine {
	case DSnoT:
		s.DSnoTCycles, s.DSnoTThreshold, s.DSnoTVarPower, s.DSnoTWithMLP = o.DSnoTCycles, o.DSnoTThreshold, o.DSnoTVarPower, o.DSnoTWithMLP
	case Barber:
		s.BarberThreshold = o.BarberThreshold
	}
	if needsData(o) {
		rec.Calibration, s.Windows = o.Calib, len(o.Calib.IDs)
	}
	return rec
}

// allocate returns each block's target sparsity (AlphaPruning or uniform) and fills the
// record's blocks.
func allocate(m *model.Model, o Options, rec *Record) ([]float64, error) {
	L := m.Config.NumHiddenLayers
	targets := make([]float64, L)
	rec.Blocks = make([]BlockRecord, L)
	for b := range targets {
		targets[b] = o.Sparsity
		rec.Blocks[b].Block = b
	}
	if o.Allocation != Alpha {
		return targets, nil
	}
	alphas := make([]float64, L)
	params := make([]int64, L)
	for b := 0; b < L; b++ {
		rec.Blocks[b].MatrixAlpha = map[string]float64{}
		for _, mod := range blockModules {
			w := loadMatrix(m, weightName(b, mod.name))
			eigs, err := ESDEigenvalues(w)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", weightName(b, mod.name), err)
			}
			a := HillAlpha(eigs, o.AlphaXmin)
			rec.Blocks[b].MatrixAlpha[mod.name] = a
			alphas[b] += a / float64(len(blockModules)) // mapping_type block_wise: the block's mean
			params[b] += int64(len(w.W))
		}
		rec.Blocks[b].Alpha = alphas[b]
	}
	targets, err := AlphaSparsities(alphas, params, o.Sparsity, o.Epsilon)
	if err != nil {
		return nil, err
	}
	return targets, nil
}

// loadMatrix copies a 2-D weight to float64.
func loadMatrix(m *model.Model, name string) Matrix {
	t := m.Weights[name]
	dims := t.Shape().Dimensions
	v := model.Float32Values(t)
	w := make([]float64, len(v))
	for i, x := range v {
		w[i] = float64(x)
	}
	return Matrix{Rows: dims[0], Cols: dims[1], W: w}
}

// storeMatrix writes w back into the model in the tensor's dtype.
func storeMatrix(m *model.Model, name string, w Matrix) error {
	old := m.Weights[name]
	v := make([]float32, len(w.W))
	for i, x := range w.W {
		v[i] = float32(x)
	}
	t, err := model.TensorFromFloat32(v, []int{w.Rows, w.Cols}, old.DType())
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	m.Weights[name] = t
	old.FinalizeAll()
	return nil
}

// statsFor lists what the method and refinement read from the block's inputs.
func statsFor(o Options) capture.Stats {
	var s capture.Stats
	switch o.Method {
	case Wanda:
		s |= capture.SumSq
	case SparseGPT, MRP:
		s |= capture.Gram
	}
	if o.Refine == DSnoT {
		s |= capture.SumSq | capture.Sum
	}
	return s
}

// sparsifyBlock prunes block b's seven matrices at sparsity s.
func sparsifyBlock(r *model.Runner, sess *capture.Session, b int, s float64, o Options) error {
	m := r.Model
	var ins map[string]*capture.Input
	if st := statsFor(o); st != 0 {
		var err error
		if ins, err = sess.Capture(st); err != nil {
			return err
		}
	}
	dense := map[string]Matrix{}
	masks := map[string]Mask{}
	for _, mod := range blockModules {
		name := weightName(b, mod.name)
		w := loadMatrix(m, name)
		dense[mod.name] = Matrix{Rows: w.Rows, Cols: w.Cols, W: append([]float64(nil), w.W...)}
		mask, err := pruneMatrix(w, ins[mod.point], s, o)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if o.Refine == DSnoT && (o.DSnoTWithMLP || mod.point == capture.AttnIn || mod.point == capture.OIn) {
			d := dense[mod.name]
			dsnot(d, mask, dsnotInputs(ins[mod.point], len(o.Calib.IDs)), dsnotSettings{cycles: o.DSnoTCycles,
				threshold: o.DSnoTThreshold, varPower: o.DSnoTVarPower, pattern: o.Pattern})
			w = maskedCopy(d, mask)
		}
		masks[mod.name] = mask
		if err := storeMatrix(m, name, w); err != nil {
			return err
		}
	}
	if o.Refine == Barber {
		return barber(r, sess, b, dense, masks, o)
	}
	return nil
}

// maskedCopy is dense ⊙ ¬mask.
func maskedCopy(d Matrix, mask Mask) Matrix {
	w := Matrix{Rows: d.Rows, Cols: d.Cols, W: append([]float64(nil), d.W...)}
	applyMask(w.W, mask)
	return w
}

func dsnotInputs(in *capture.Input, windows int) dsnotStats {
	st := dsnotStats{mu: make([]float64, in.Dim), vari: make([]float64, in.Dim), sumSq: in.SumSq}
	n := float64(in.Tokens)
	for j := range st.mu {
		st.mu[j] = in.Sum[j] / float64(windows)
		mean := in.Sum[j] / n
		st.vari[j] = in.SumSq[j]/n - mean*mean
	}
	return st
}

// pruneMatrix applies the method to w in place (zeros, and OBS updates for sparsegpt and mrp).
func pruneMatrix(w Matrix, in *capture.Input, s float64, o Options) (Mask, error) {
	var mask Mask
	switch o.Method {
	case Magnitude:
		mask = magnitudeMask(w, s, o.Pattern)
	case Wanda:
		mask = wandaMask(w, in.SumSq, s, o.Pattern)
	case SparseGPT, MRP:
		hinv, u, err := hessian(in.Gram, len(o.Calib.IDs), w, o.Damp)
		if err != nil {
			return nil, err
		}
		set := obsSettings{sparsity: s, pattern: o.Pattern, block: o.BlockSize}
		if o.Method == SparseGPT {
			hinv = nil // only U is needed from here
			return sparseGPT(w, u, set), nil
		}
		if o.MRPBlock {
			hinv = nil
		} else {
			u = nil
		}
		return mrp(w, hinv, u, set, o.MRPBlock)
	}
	applyMask(w.W, mask)
	return mask, nil
}

type counts struct{ total, nonzero int64 }

// NonzeroParams counts m's nonzero parameters (a tied head once): the size the reports give a
// sparse model.
func NonzeroParams(m *model.Model) int64 { return nonzeros(m).nonzero }

// nonzeros counts every parameter (a tied head once) and the nonzero ones.
func nonzeros(m *model.Model) counts {
	var c counts
	for _, t := range m.Weights {
		c.total += int64(t.Shape().Size())
		c.nonzero += countNonzero(t)
	}
	return c
}

func countNonzero(t *tensors.Tensor) int64 {
	var n int64
	for _, v := range model.Float32Values(t) {
		if v != 0 {
			n++
		}
	}
	return n
}

// measure fills the per-matrix and per-block measured sparsity.
func measure(m *model.Model, rec *Record, targets []float64) {
	for b := range targets {
		var zeros, size int64
		for _, mod := range blockModules {
			name := weightName(b, mod.name)
			t := m.Weights[name]
			dims := t.Shape().Dimensions
			n := int64(t.Shape().Size())
			z := n - countNonzero(t)
			rec.Matrices = append(rec.Matrices, MatrixRecord{Name: name, Rows: dims[0], Cols: dims[1],
				Target: targets[b], Zeros: z, Sparsity: float64(z) / float64(n)})
			zeros += z
			size += n
		}
		rec.Blocks[b].Target = targets[b]
		rec.Blocks[b].Sparsity = float64(zeros) / float64(size)
		rec.PrunableParams += size
		rec.ZeroParams += zeros
	}
	rec.MeasuredSparsity = float64(rec.ZeroParams) / float64(rec.PrunableParams)
	rec.NonzeroParams = nonzeros(m).nonzero
}
