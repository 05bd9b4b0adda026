package pipeline

// Search methods run as further criteria: per (method, ratio) a search stage writes
// plan.json, a prune stage applies it as `prune --plan` does, and the pruned model goes
// through the same retraining and evaluation as a criterion's.

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/shortllm/shortllm/internal/prune"
	"github.com/shortllm/shortllm/internal/search"
	"github.com/shortllm/shortllm/internal/stage"
)

// PlanFileName is the plan a search stage writes.
const PlanFileName = "plan.json"

type searchKey struct {
	Model, Method, Calib string
	Samples, SeqLen      int
	Seed                 uint64
	Ratio                float64
	Policy               prune.Policy
	Budget               float64
	DType                string `json:",omitempty"` // compute dtype; "" is f32
}

func parseSearchMethods(l List) error {
	for _, m := range l {
		ok := false
		for _, v := range search.Methods() {
			ok = ok || m == v
		}
		if !ok {
			return fmt.Errorf("--search-methods: unknown method %q (want %s)", m, strings.Join(search.Methods(), ", "))
		}
	}
	return checkUnique("--search-methods", l)
}

// planSearch adds every (method, ratio) search, its prune stage and variants.
func (r *runner) planSearch(man *Manifest, calib string, rk retrainKey, ek evalKey) {
	for _, m := range r.cfg.SearchMethods {
		for i, ratio := range r.plan.ratioNames {
			ss := newStage("search", m+"-"+strings.TrimSuffix(ratio, "%"), searchKey{DType: r.dtypeKey(), Model: r.modelDigest, Method: m,
				Calib: calib, Samples: r.cfg.CalibSamples, SeqLen: r.cfg.SeqLen, Seed: r.cfg.Seed,
				Ratio: r.plan.ratios[i], Policy: r.policy(), Budget: r.cfg.SearchBudget})
			ps := newStage("prune", m+"-"+strings.TrimSuffix(ratio, "%"), pruneKey{Score: ss.Hash,
				Ratio: r.plan.ratios[i], Policy: r.policy()})
			r.searches = append(r.searches, searchStages{m, r.plan.ratios[i], ss, ps})
			for _, mode := range r.plan.retrain {
				v := Variant{Name: fmt.Sprintf("%s %s %s", m, ratio, mode), Criterion: m, Ratio: ratio,
					RatioVal: r.plan.ratios[i], Retrain: mode, PruneDir: ps.Dir}
				r.addRetrain(&v, ps, rk, ek)
				man.Variants = append(man.Variants, v)
			}
		}
	}
}

// searchStages are one (method, ratio)'s search and prune stages.
type searchStages struct {
	method        string
	ratio         float64
	search, prune Stage
}

// runSearches runs every planned search and applies its plan.
func (r *runner) runSearches() error {
	for _, s := range r.searches {
		if err := r.runStage(s.search, func(dir string) error { return r.search(s, dir) }); err != nil {
			return err
		}
		if err := r.runStage(s.prune, func(dir string) error { return r.prunePlan(s, dir) }); err != nil {
			return err
		}
	}
	return nil
}

// search writes DIR/plan.json, as `shortllm search --out` does.
func (r *runner) search(s searchStages, dir string) error {
	o, err := r.computeOriginal()
	if err != nil {
		return err
	}
	plan, err := r.Engine.Search(o, r.calib(), search.Options{Method: s.method,
		Selection: prune.Selection{Ratio: s.ratio, Policy: r.policy()}, Budget: r.cfg.SearchBudget,
		Seed: r.cfg.Seed, Progress: r.progress("search " + s.method)})
	if err != nil {
		return err
	}
	return plan.Write(filepath.Join(dir, PlanFileName))
}

// prunePlan writes DIR/model from the search's plan, as `shortllm prune --plan`.
func (r *runner) prunePlan(s searchStages, dir string) error {
	if _, err := r.loadOriginal(); err != nil {
		return err
	}
	_, err := r.Engine.Prune(context.Background(), stage.PruneJob{Opened: r.orig, PlanFile: filepath.Join(r.cfg.Out, s.search.Dir, PlanFileName),
		Write: prune.WriteOptions{Out: filepath.Join(dir, "model")}})
	return err
}
