package pipeline

// Width pruning beside depth pruning: each width criterion (llm-pruner, wanda-sp, flap) is
// pruned at the same parameter ratios as the block criteria, then retrained, evaluated and
// timed by the same stages. Scoring happens inside the prune stage (Wanda-sp prunes block by
// block while it scores, FLAP's bias compensation needs the activation means), so a width
// criterion has no separate score stage.

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/shortllm/shortllm/internal/prune"
	"github.com/shortllm/shortllm/internal/stage"
	"github.com/shortllm/shortllm/internal/width"
)

func parseWidthCriteria(l List) ([]string, error) {
	for _, c := range l {
		if !width.IsCriterion(c) {
			return nil, fmt.Errorf("--width-criteria: unknown criterion %q (want %s)", c, strings.Join(width.Criteria(), ", "))
		}
	}
	return l, checkUnique("--width-criteria", l)
}

type widthPruneKey struct {
	Model, Criterion, Calib string
	Samples, SeqLen         int
	Seed                    uint64
	Ratio                   float64
	DType                   string `json:",omitempty"` // compute dtype; "" is f32
}

// planWidth adds the width criteria's prune stages and their variants.
func (r *runner) planWidth(man *Manifest, rk retrainKey, ek evalKey) error {
	calib, err := fileDigest(r.cfg.Calib)
	if err != nil {
		return fmt.Errorf("--calib: %w", err)
	}
	for _, c := range r.plan.widthCriteria {
		for i, ratio := range r.plan.ratioNames {
			ps := newStage("prune", c+"-"+strings.TrimSuffix(ratio, "%"), widthPruneKey{DType: r.dtypeKey(), Model: r.modelDigest, Criterion: c,
				Calib: calib, Samples: r.cfg.CalibSamples, SeqLen: r.cfg.SeqLen, Seed: r.cfg.Seed, Ratio: r.plan.ratios[i]})
			r.prunes[c+" "+ratio] = ps
			for _, mode := range r.plan.retrain {
				v := Variant{Name: fmt.Sprintf("%s %s %s", c, ratio, mode), Criterion: c, Ratio: ratio,
					RatioVal: r.plan.ratios[i], Retrain: mode, PruneDir: ps.Dir}
				r.addRetrain(&v, ps, rk, ek)
				man.Variants = append(man.Variants, v)
			}
		}
	}
	return nil
}

// widthPrunes runs every width prune stage.
func (r *runner) widthPrunes() error {
	for _, c := range r.plan.widthCriteria {
		for i, ratio := range r.plan.ratioNames {
			if err := r.runStage(r.prunes[c+" "+ratio], func(dir string) error { return r.widthPrune(c, r.plan.ratios[i], dir) }); err != nil {
				return err
			}
		}
	}
	return nil
}

// widthPrune writes DIR/model, as `shortllm prune --width --criterion C --ratio R` does.
func (r *runner) widthPrune(criterion string, ratio float64, dir string) error {
	o, err := r.computeOriginal()
	if err != nil {
		return err
	}
	res, calib, err := r.Engine.WidthPlan(o, stage.WidthJob{Calib: r.calib(), Options: width.Options{Criterion: criterion, Ratio: ratio,
		Progress: func(stage string) func(int, int) { return r.progress(stage) }}})
	if err != nil {
		return err
	}
	_, err = width.Write(r.orig.Model, res, prune.WriteOptions{Out: filepath.Join(dir, "model"), ToolVersion: r.version}, calib)
	return err
}
