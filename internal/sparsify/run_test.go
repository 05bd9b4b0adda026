package sparsify

import (
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gomlx/gomlx/backends"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/safetensors"
	"github.com/shortllm/shortllm/internal/score"
	"github.com/shortllm/shortllm/internal/testutil"
	"github.com/shortllm/shortllm/internal/testutil/modeltest"
	"github.com/shortllm/shortllm/internal/testutil/refllama"
)

func testBackend(tb testing.TB) backends.Backend { return modeltest.Backend(tb) }

// testCalib is the first n shared calibration windows cut to T tokens: fewer tokens keep the
// tests fast and change nothing the tests check.
func testCalib(tb testing.TB, n, T int) *score.Calibration {
	tb.Helper()
	c, err := score.LoadCalibration(testutil.SharedDir(tb, "data", "stories", "calib10x128.ids.json"), nil, score.CalibOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	c.IDs = c.IDs[:n]
	for i := range c.IDs {
		c.IDs[i] = c.IDs[i][:T]
	}
	return c
}

func deep16(tb testing.TB) *model.Model { return modeltest.Load(tb, "deep16") }

// refRun sparsifies the float64 reference model block by block as Run does: each block's
// inputs X come from the already sparsified earlier blocks, X is taken with the block's dense
// weights, and every matrix is pruned by the reference method. It returns, per matrix, the
// reference's reconstruction error, its mask, and the Gram matrix XᵀX it saw.
type refMatrix struct {
	mask  []bool
	gram  []float64
	dense []float64
	err   float64
}

func refRun(t *testing.T, calib *score.Calibration, o Options) map[string]*refMatrix {
	ref := refllama.Load(t, testutil.SharedDir(t, "models", "deep16"))
	hs := make([][][]float64, len(calib.IDs))
	for w, ids := range calib.IDs {
		hs[w] = ref.Embed(ids)
	}
	out := map[string]*refMatrix{}
	for b := 0; b < ref.Cfg.Layers; b++ {
		grams, sumSq := map[string][]float64{}, map[string][]float64{}
		for w := range hs {
			xs := make([][]float64, len(hs[w]))
			for t, x := range hs[w] {
				xs[t] = slices.Clone(x)
			}
			ref.Block(b, xs, func(point string, rows [][]float64) {
				d := len(rows[0])
				if grams[point] == nil {
					grams[point], sumSq[point] = make([]float64, d*d), make([]float64, d)
				}
				for _, x := range rows {
					for i, a := range x {
						sumSq[point][i] += a * a
						for j, c := range x {
							grams[point][i*d+j] += a * c
						}
					}
				}
			})
		}
		for _, mod := range blockModules {
			name := weightName(b, mod.name)
			w := ref.W[name]
			cols := len(sumSq[mod.point])
			rows := len(w) / cols
			rm := &refMatrix{gram: grams[mod.point], dense: slices.Clone(w)}
			switch o.Method {
			case Magnitude:
				rm.mask = refMaskBy(w, rows, cols, o, func(j int) float64 { return math.Abs(w[j]) }, false)
			case Wanda:
				rm.mask = refMaskBy(w, rows, cols, o, func(j int) float64 { return math.Abs(w[j]) * math.Sqrt(sumSq[mod.point][j%cols]) }, true)
			case SparseGPT, MRP:
				h := refHessian(rm.gram, len(calib.IDs), w, rows, cols, DefaultDamp)
				if o.Method == SparseGPT {
					rm.mask = refSparseGPT(t, w, rows, cols, h, o.Sparsity, o.Pattern, DefaultBlockSize)
				} else {
					rm.mask = refMRP(t, w, rows, cols, h, o.Sparsity, o.Pattern, 0)
				}
			}
			for j, p := range rm.mask {
				if p {
					w[j] = 0
				}
			}
			rm.err = reconErr(rm.dense, w, rows, cols, rm.gram)
			out[name] = rm
		}
		for w := range hs {
			ref.Block(b, hs[w], nil)
		}
	}
	return out
}

// refMaskBy prunes the lowest metric per row (perRow) or over the whole matrix, or N of every
// M per group.
func refMaskBy(w []float64, rows, cols int, o Options, metric func(j int) float64, perRow bool) []bool {
	mask := make([]bool, len(w))
	vals := make([]float64, len(w))
	for j := range w {
		vals[j] = metric(j)
	}
	switch {
	case !o.Pattern.Unstructured():
		for r := 0; r < rows; r++ {
			for g := 0; g < cols; g += o.Pattern.M {
				for _, j := range kLowest(vals[r*cols+g:r*cols+g+o.Pattern.M], o.Pattern.N) {
					mask[r*cols+g+j] = true
				}
			}
		}
	case perRow:
		for r := 0; r < rows; r++ {
			for _, j := range kLowest(vals[r*cols:(r+1)*cols], int(float64(cols)*o.Sparsity)) {
				mask[r*cols+j] = true
			}
		}
	default:
		for _, j := range kLowest(vals, int(float64(len(w))*o.Sparsity)) {
			mask[j] = true
		}
	}
	return mask
}

// On deep16 with real calibration windows, against the float64 reference pipeline: Wanda's and
// magnitude's masks are identical, SparseGPT's and MRP's reconstruction errors ‖WX − ŴX‖ per
// matrix agree within 1e-3 (relative), and every matrix has its exact count of zeros.
func TestRun_Deep16MatchesReference(t *testing.T) {
	calib := testCalib(t, 3, 64)
	for _, o := range []Options{
		{Method: Magnitude, Sparsity: 0.5, Pattern: Pattern{2, 4}},
		{Method: Wanda, Sparsity: 0.5, Calib: calib},
		{Method: SparseGPT, Sparsity: 0.5, Calib: calib},
		{Method: MRP, Sparsity: 0.5, Calib: calib},
	} {
		t.Run(o.Method+"_"+o.Pattern.String(), func(t *testing.T) {
			m := deep16(t)
			rec, err := Run(model.NewRunner(testBackend(t), m), o)
			if err != nil {
				t.Fatal(err)
			}
			ref := refRun(t, calib, o)
			worst := 0.0
			for _, mr := range rec.Matrices {
				got := loadMatrix(m, mr.Name)
				mask := make(Mask, len(got.W))
				for j, w := range got.W {
					mask[j] = w == 0
				}
				rm := ref[mr.Name]
				checkCounts(t, mr.Name, mask, got.Rows, got.Cols, o.Sparsity, o.Pattern, o.Method == Wanda || o.Method == MRP)
				switch o.Method {
				case Magnitude, Wanda:
					if !slices.Equal([]bool(mask), rm.mask) {
						t.Fatalf("%s: mask differs from the reference", mr.Name)
					}
				default:
					e := reconErr(rm.dense, got.W, got.Rows, got.Cols, rm.gram)
					rel := math.Abs(e/rm.err - 1)
					worst = max(worst, rel)
					if rel > 1e-3 {
						t.Fatalf("%s: ‖WX − ŴX‖ = %.6g, reference %.6g (%.2g relative)", mr.Name, e, rm.err, rel)
					}
				}
			}
			t.Logf("%s: worst relative reconstruction-error difference %.2g", o.Method, worst)
		})
	}
}

// Refinements and allocation keep exact counts: every row (or N:M group) of every matrix after
// DSnoT and Barber; with alpha allocation, every Wanda row at its block's int(cols·s_b). The
// refinements must change masks (Barber's released threshold 0.01 swaps nothing in rows of 64
// weights, hence 0.2 here), and kept weights stay dense.
func TestRun_RefineKeepsExactCounts(t *testing.T) {
	calib := testCalib(t, 2, 32)
	plain := deep16(t)
	if _, err := Run(model.NewRunner(testBackend(t), plain), Options{Method: Wanda, Sparsity: 0.5, Calib: calib}); err != nil {
		t.Fatal(err)
	}
	for _, o := range []Options{
		{Method: Wanda, Sparsity: 0.5, Pattern: Pattern{2, 4}, Refine: DSnoT, DSnoTWithMLP: true, Calib: calib},
		{Method: Wanda, Sparsity: 0.5, Refine: Barber, BarberThreshold: 0.2, Calib: calib},
		{Method: Wanda, Sparsity: 0.5, Refine: DSnoT, Calib: calib},
		{Method: Wanda, Sparsity: 0.5, Allocation: Alpha, Calib: calib},
	} {
		t.Run(o.Method+"_"+o.Pattern.String()+"_"+o.Refine+"_"+o.Allocation, func(t *testing.T) {
			m := deep16(t)
			dense := deep16(t)
			rec, err := Run(model.NewRunner(testBackend(t), m), o)
			if err != nil {
				t.Fatal(err)
			}
			moved := 0
			for i, mr := range rec.Matrices {
				if o.Refine != "" && o.Pattern.Unstructured() {
					a, b := loadMatrix(m, mr.Name), loadMatrix(plain, mr.Name)
					for j := range a.W {
						if (a.W[j] == 0) != (b.W[j] == 0) {
							moved++
						}
					}
				}
				got := loadMatrix(m, mr.Name)
				want := loadMatrix(dense, mr.Name)
				mask := make(Mask, len(got.W))
				for j, w := range got.W {
					mask[j] = w == 0
					if w != 0 && w != want.W[j] {
						t.Fatalf("%s: kept weight %d changed (%g → %g)", mr.Name, j, want.W[j], w)
					}
				}
				checkCounts(t, mr.Name, mask, got.Rows, got.Cols, rec.Blocks[i/len(blockModules)].Target, o.Pattern, true)
			}
			if o.Refine != "" && o.Pattern.Unstructured() && moved == 0 {
				t.Fatalf("%s changed no mask entry of plain Wanda", o.Refine)
			}
			if o.Allocation == Alpha {
				lo, hi := 1.0, 0.0
				for _, b := range rec.Blocks {
					lo, hi = math.Min(lo, b.Target), math.Max(hi, b.Target)
				}
				if !(hi > lo) || math.Abs(rec.MeasuredSparsity-0.5) > 0.01 {
					t.Fatalf("alpha allocation: block targets %.3f..%.3f, measured %.4f", lo, hi, rec.MeasuredSparsity)
				}
			}
		})
	}
}

// The written checkpoint keeps every unpruned tensor byte for byte and records the run.
func TestWrite_UnprunedTensorsByteIdentical(t *testing.T) {
	m := deep16(t)
	rec, err := Run(model.NewRunner(testBackend(t), m), Options{Method: Magnitude, Sparsity: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "sparse")
	if err := Write(m, rec, WriteOptions{Out: out, ToolVersion: "test"}); err != nil {
		t.Fatal(err)
	}
	src, err := safetensors.OpenCheckpoint(m.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := safetensors.OpenCheckpoint(out)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	pruned := map[string]bool{}
	for _, mr := range rec.Matrices {
		pruned[mr.Name] = true
	}
	same := 0
	for _, name := range src.Names() {
		a, err1 := src.ReadRaw(name)
		b, err2 := dst.ReadRaw(name)
		if err1 != nil || err2 != nil {
			t.Fatalf("%s: %v %v", name, err1, err2)
		}
		if pruned[name] {
			continue
		}
		if !slices.Equal(a, b) {
			t.Fatalf("unpruned tensor %s changed", name)
		}
		same++
	}
	if same != len(src.Names())-len(rec.Matrices) || same < 3 {
		t.Fatalf("%d unpruned tensors compared", same)
	}
	back, ok, err := ReadRecord(out)
	if err != nil || !ok || back.Method != Magnitude || len(back.Matrices) != 112 || back.ToolVersion != "test" {
		t.Fatalf("record: %+v %v %v", back, ok, err)
	}
	meas, err := Measure(out)
	if err != nil {
		t.Fatal(err)
	}
	for b, s := range meas.Blocks {
		if math.Abs(s.Sparsity-rec.Blocks[b].Sparsity) > 0 {
			t.Fatalf("block %d: measured %.6f, record %.6f", b, s.Sparsity, rec.Blocks[b].Sparsity)
		}
	}
}
