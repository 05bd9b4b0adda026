package pipeline

// Weight-sparsity variants beside the depth-pruned ones: every --sparsity-methods entry
// (method[+alpha][+dsnot|+barber]) at every --sparsity-patterns pattern and the --sparsity
// share is one sparsify stage (as `shortllm sparsify`) and one evaluated model. Sparse models
// are not retrained: any dense update would fill their zeros. Their #params counts nonzero
// weights; their speed is measured like any model's, and the report says plainly that dense
// kernels gain nothing from zeros.

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/retrain"
	"github.com/shortllm/shortllm/internal/score"
	"github.com/shortllm/shortllm/internal/sparsify"
	"github.com/shortllm/shortllm/internal/stage"
)

// SparseNote is the report's statement about the speed of sparse models.
const SparseNote = "Sparse models keep their zeros in dense tensors: dense kernels (the speed measured here included) run them exactly as fast as the original, whatever the sparsity — unstructured zeros need sparse kernels and 2:4 needs sparse tensor cores to gain speed. Their #params counts nonzero weights; they are evaluated without retraining."

// sparsitySpec is one sparsity variant.
type sparsitySpec struct {
	Method, Allocation, Refine string
	Pattern                    string
	Sparsity                   float64
	entry                      string
	pattern                    sparsify.Pattern
}

// label names the variant in tables and directories ("wanda+alpha_unstructured", "mrp_2of4").
func (s sparsitySpec) label() string {
	return s.entry + "_" + strings.ReplaceAll(s.Pattern, ":", "of")
}

func (s sparsitySpec) options(calib *score.Calibration) sparsify.Options {
	return sparsify.Options{Method: s.Method, Sparsity: s.Sparsity, Pattern: s.pattern, Allocation: s.Allocation,
		Refine: s.Refine, Calib: calib}
}

// parseSparsity checks every sparsity setting up front and expands the variants.
func (c *Config) parseSparsity() ([]sparsitySpec, error) {
	if len(c.SparsityMethods) == 0 {
		return nil, nil
	}
	share, err := sparsify.ParseSparsity(c.Sparsity)
	if err != nil {
		return nil, err
	}
	var out []sparsitySpec
	for _, entry := range c.SparsityMethods {
		parts := strings.Split(entry, "+")
		spec := sparsitySpec{Method: parts[0], Allocation: sparsify.Uniform, entry: entry, Sparsity: share}
		for _, p := range parts[1:] {
			switch p {
			case sparsify.Alpha:
				spec.Allocation = sparsify.Alpha
			case sparsify.DSnoT, sparsify.Barber:
				spec.Refine = p
			default:
				return nil, fmt.Errorf("--sparsity-methods %q: unknown part %q (want method[+alpha][+dsnot|+barber])", entry, p)
			}
		}
		for _, ps := range c.SparsityPatterns {
			pat, err := sparsify.ParsePattern(ps)
			if err != nil {
				return nil, err
			}
			s := spec
			s.Pattern, s.pattern = pat.String(), pat
			if !pat.Unstructured() {
				s.Sparsity = pat.Sparsity() // N:M fixes the share
			}
			o := s.options(&score.Calibration{})
			if err := o.Validate(); err != nil {
				return nil, fmt.Errorf("--sparsity-methods %s --sparsity-patterns %s: %w", entry, ps, err)
			}
			if o.Method != sparsify.Magnitude || o.Refine != "" {
				if c.Calib == "" {
					return nil, fmt.Errorf("--sparsity-methods %s needs --calib FILE", entry)
				}
			}
			out = append(out, s)
		}
	}
	return out, nil
}

type sparsifyKey struct {
	Model, Calib    string
	Spec            sparsitySpec
	Samples, SeqLen int
	Seed            uint64
}

// planSparsity adds a sparsify stage and an evaluated variant per spec.
func (r *runner) planSparsity(man *Manifest, ek evalKey) error {
	calib, err := fileDigest(r.cfg.Calib)
	if err != nil {
		return fmt.Errorf("--calib: %w", err)
	}
	for _, s := range r.plan.sparsity {
		st := newStage("sparsify", s.label(), sparsifyKey{Model: r.modelDigest, Calib: calib, Spec: s,
			Samples: r.cfg.CalibSamples, SeqLen: r.cfg.SeqLen, Seed: r.cfg.Seed})
		ratio := fmt.Sprintf("%g%%", 100*s.Sparsity)
		v := Variant{Name: fmt.Sprintf("%s %s %s", s.entry, s.Pattern, ratio), Criterion: s.label(), Ratio: ratio,
			RatioVal: s.Sparsity, Retrain: retrain.ModeNone, ModelDir: filepath.Join(st.Dir, "model"), SparsifyDir: r.keep(st)}
		r.addEval(&v, st.Hash, ek)
		man.Variants = append(man.Variants, v)
		r.sparsifies = append(r.sparsifies, st)
	}
	return nil
}

// runSparsify runs the planned sparsify stages.
func (r *runner) runSparsify() error {
	for i, st := range r.sparsifies {
		spec := r.plan.sparsity[i]
		if err := r.runStage(st, func(dir string) error { return r.sparsify(spec, dir) }); err != nil {
			return err
		}
	}
	return nil
}

// sparsify writes DIR/model as `shortllm sparsify` does, from a fresh copy of the input model
// (sparsify.Run changes the weights it is given).
func (r *runner) sparsify(s sparsitySpec, dir string) error {
	m, err := model.Load(r.cfg.Model, model.LoadOptions{})
	if err != nil {
		return err
	}
	var calib *score.Calibration
	o := s.options(nil)
	if o.Method != sparsify.Magnitude || o.Refine != "" {
		if calib, err = stage.LoadCalib(m.Dir, r.calib()); err != nil {
			return err
		}
	}
	o.Calib, o.Progress = calib, r.progress("sparsify "+s.label())
	run, err := r.runnerFor(m)
	if err != nil {
		return err
	}
	rec, err := sparsify.Run(run, o)
	if err != nil {
		return err
	}
	return sparsify.Write(m, rec, sparsify.WriteOptions{Out: filepath.Join(dir, "model"), ToolVersion: r.version})
}

// evalParams is the parameter count a row reports: nonzero weights for sparse models.
func evalParams(v *Variant, m *model.Model) int64 {
	if v.SparsifyDir != "" {
		return sparsify.NonzeroParams(m)
	}
	return m.NumParams()
}

// sparsityRow fills a sparse row's removed share from its record and notes the speed caveat.
func (b *builder) sparsityRow(v Variant, row *Row) {
	rec, ok, err := sparsify.ReadRecord(filepath.Join(b.dir, v.SparsifyDir, "model"))
	if err != nil || !ok {
		return
	}
	row.Family = FamilySparsity
	row.RemovedShare = 1 - float64(rec.NonzeroParams)/float64(rec.ParamsBefore)
	for _, n := range b.rep.Notes {
		if n == SparseNote {
			return
		}
	}
	b.rep.Notes = append(b.rep.Notes, SparseNote)
}
