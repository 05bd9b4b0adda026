package pipeline

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/gomlx/gomlx/backends"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/outdir"
	"github.com/shortllm/shortllm/internal/prune"
	"github.com/shortllm/shortllm/internal/score"
)

// ManifestFile (RUN_DIR/run.json) lists the run's settings and where every stage keeps its
// output; `shortllm report` renders the report from it and the stage outputs.
const ManifestFile = "run.json"

// Env is what a run needs besides its Config.
type Env struct {
	Backend backends.Backend
	Notices io.Writer // one line per stage run or reused; nil discards
	// Progress, if set, returns a progress callback for one piece of work.
	Progress func(desc string) func(done, total int)
	Version  string
	// AfterStage, if set, is called after each stage this run executes (tests slow runs
	// down with it to interrupt them mid-way).
	AfterStage func(dir string)
}

// Log says which stages this run executed and which it found finished.
type Log struct {
	Ran    []string `json:"ran"`
	Reused []string `json:"reused"`
}

// Manifest is run.json.
type Manifest struct {
	Config      Config       `json:"config"`
	ModelDigest string       `json:"model_digest"`
	Scores      []ScoreEntry `json:"scores"`
	Variants    []Variant    `json:"variants"`
	// SpeedDir is the one speed stage, which measures every distinct architecture together
	// (planned once pruning has run; empty without --speed).
	SpeedDir    string `json:"speed_dir,omitempty"`
	ToolVersion string `json:"tool_version"`
}

// ScoreEntry is one criterion's scoring stage (its scores.json).
type ScoreEntry struct {
	Criterion string `json:"criterion"`
	Dir       string `json:"dir"`
}

// Variant is one evaluated model: the original, or (criterion, ratio, retraining).
type Variant struct {
	Name      string  `json:"name"`
	Criterion string  `json:"criterion,omitempty"`
	Ratio     string  `json:"ratio,omitempty"`
	RatioVal  float64 `json:"ratio_value,omitempty"`
	Retrain   string  `json:"retrain,omitempty"`
	// ModelDir and Adapter are what the evaluation loads; stage directories are relative to
	// the run directory.
	ModelDir   string `json:"model_dir"`
	Adapter    string `json:"adapter,omitempty"`
	PruneDir   string `json:"prune_dir,omitempty"`
	RetrainDir string `json:"retrain_dir,omitempty"`
	EvalDir    string `json:"eval_dir"`
	// SparsifyDir is a weight-sparsity variant's sparsify stage (sparsity.go).
	SparsifyDir string `json:"sparsify_dir,omitempty"`
}

// runner carries one run's state.
type runner struct {
	Env
	cfg     Config
	plan    *plan
	notices io.Writer
	version string
	log     Log

	modelDigest string
	orig        *model.Model // loaded once for scoring and pruning
	scores      map[string]Stage
	prunes      map[string]Stage // by criterion + " " + ratio
	searches    []searchStages   // search and prune stages per (search method, ratio)
	planned     map[string]Stage // retrain, eval and speed stages by directory
	sparsifies  []Stage          // one per plan.sparsity entry
	speedArchs  []ArchSpeed      // what the speed stage measures
}

// Run executes every missing stage of the pipeline, writes run.json and returns it with the
// log of what ran. The report is rendered by the caller (Render).
func Run(cfg Config, env Env) (*Manifest, *Log, error) {
	p, err := cfg.validate()
	if err != nil {
		return nil, nil, err
	}
	r := &runner{Env: env, cfg: cfg, plan: p, notices: env.Notices, version: env.Version,
		scores: map[string]Stage{}, prunes: map[string]Stage{}, planned: map[string]Stage{}}
	if r.notices == nil {
		r.notices = io.Discard
	}
	if err := outdir.CheckInputs(cfg.Out, outdir.Options{Inputs: cfg.inputs(p)}); err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(cfg.Out, 0o777); err != nil {
		return nil, nil, fmt.Errorf("--out: %w", err)
	}
	lock, err := lockRunDir(cfg.Out)
	if err != nil {
		return nil, nil, err
	}
	defer lock.Release()
	if r.modelDigest, err = modelDigest(cfg.Model); err != nil {
		return nil, nil, err
	}
	man, err := r.stages()
	if err != nil {
		return nil, nil, err
	}
	return man, &r.log, nil
}

// lockRunDir takes the run directory's lock (see internal/outdir) and removes the
// temporaries a killed run left for the files kept at its top level.
func lockRunDir(dir string) (*outdir.Lock, error) {
	lock, err := outdir.Acquire(dir)
	if err != nil {
		return nil, fmt.Errorf("run directory %s: %w", dir, err)
	}
	for _, f := range []string{ManifestFile, "report.json", "report.md"} {
		if err := outdir.CleanStale(filepath.Join(dir, f)); err != nil {
			lock.Release()
			return nil, fmt.Errorf("run directory %s: %w", dir, err)
		}
	}
	return lock, nil
}

// inputs are the files and directories the run reads; the run directory must not overlap
// any of them.
func (c *Config) inputs(p *plan) []string {
	in := []string{c.Model, c.Calib, c.LoRAData, c.CPTData, c.EvalZeroShot}
	for _, s := range p.ppl {
		in = append(in, s.Path)
	}
	return in
}

// stages runs score → prune → retrain → eval → speed, writing run.json first so that a
// report can show a partial run.
func (r *runner) stages() (*Manifest, error) {
	man := &Manifest{Config: r.cfg, ModelDigest: r.modelDigest, ToolVersion: r.version}
	if err := r.planStages(man); err != nil {
		return nil, err
	}
	if err := writeJSON(filepath.Join(r.cfg.Out, ManifestFile), man); err != nil {
		return nil, err
	}
	for _, c := range r.plan.criteria {
		if err := r.runStage(r.scores[c], func(dir string) error { return r.score(c, dir) }); err != nil {
			return nil, err
		}
	}
	for _, c := range r.plan.criteria {
		for i, ratio := range r.plan.ratioNames {
			if err := r.runStage(r.prunes[c+" "+ratio], func(dir string) error { return r.prune(c, r.plan.ratios[i], dir) }); err != nil {
				return nil, err
			}
		}
	}
	if err := r.widthPrunes(); err != nil {
		return nil, err
	}
	if err := r.runSearches(); err != nil {
		return nil, err
	}
	if err := r.runSparsify(); err != nil {
		return nil, err
	}
	if err := r.planSpeed(man); err != nil {
		return nil, err
	}
	r.orig = nil // scoring and pruning are done: let the weights go
	for i := range man.Variants {
		if err := r.variant(&man.Variants[i]); err != nil {
			return nil, err
		}
	}
	if man.SpeedDir != "" {
		if err := r.runStageDir(man.SpeedDir, r.speed); err != nil {
			return nil, err
		}
	}
	return man, nil
}

// planStages fixes every stage's directory before anything runs.
func (r *runner) planStages(man *Manifest) error {
	calib, err := fileDigest(r.cfg.Calib)
	if err != nil {
		return fmt.Errorf("--calib: %w", err)
	}
	for _, c := range r.plan.criteria {
		s := newStage("score", c, scoreKey{Model: r.modelDigest, Criterion: c, Calib: calib,
			Samples: r.cfg.CalibSamples, SeqLen: r.cfg.SeqLen, Seed: r.cfg.Seed})
		r.scores[c] = s
		man.Scores = append(man.Scores, ScoreEntry{Criterion: c, Dir: s.Dir})
	}
	evalKey, err := r.evalKey()
	if err != nil {
		return err
	}
	orig := Variant{Name: "original", ModelDir: r.cfg.Model}
	r.addEval(&orig, r.modelDigest, evalKey)
	man.Variants = append(man.Variants, orig)
	retrainKey, err := r.retrainKey()
	if err != nil {
		return err
	}
	for _, c := range r.plan.criteria {
		for i, ratio := range r.plan.ratioNames {
			ps := newStage("prune", c+"-"+strings.TrimSuffix(ratio, "%"), pruneKey{Score: r.scores[c].Hash,
				Ratio: r.plan.ratios[i], Policy: r.policy()})
			r.prunes[c+" "+ratio] = ps
			for _, mode := range r.plan.retrain {
				v := Variant{Name: fmt.Sprintf("%s %s %s", c, ratio, mode), Criterion: c, Ratio: ratio,
					RatioVal: r.plan.ratios[i], Retrain: mode, PruneDir: ps.Dir}
				r.addRetrain(&v, ps, retrainKey, evalKey)
				man.Variants = append(man.Variants, v)
			}
		}
	}
	r.planSearch(man, calib, retrainKey, evalKey)
	if err := r.planWidth(man, retrainKey, evalKey); err != nil {
		return err
	}
	return r.planSparsity(man, evalKey)
}

// policy is the "+" rule in force.
func (r *runner) policy() prune.Policy {
	if r.cfg.NoPlus {
		return prune.Policy{}
	}
	return prune.Policy{KeepFirst: r.cfg.KeepFirst, KeepLast: r.cfg.KeepLast}
}

type scoreKey struct {
	Model, Criterion, Calib string
	Samples, SeqLen         int
	Seed                    uint64
}

type pruneKey struct {
	Score  string
	Ratio  float64
	Policy prune.Policy
}

// loadOriginal loads the input model once, on first use.
func (r *runner) loadOriginal() (*model.Model, error) {
	if r.orig == nil {
		m, err := model.Load(r.cfg.Model, model.LoadOptions{})
		if err != nil {
			return nil, err
		}
		r.orig = m
	}
	return r.orig, nil
}

// score writes DIR/scores.json, as `shortllm score --out` does.
func (r *runner) score(criterion, dir string) error {
	m, err := r.loadOriginal()
	if err != nil {
		return err
	}
	var calib *score.Calibration
	if score.NeedsData(criterion) {
		if calib, err = r.calibration(m); err != nil {
			return err
		}
	}
	res, err := score.Compute(model.NewRunner(r.Backend, m), calib, criterion, score.Options{Progress: r.progress("score " + criterion)})
	if err != nil {
		return err
	}
	res.ToolVersion = r.version
	return score.WriteResults(filepath.Join(dir, "scores.json"), []*score.Result{res})
}

// prune writes DIR/model from the criterion's stored scores, as `shortllm prune --scores`.
func (r *runner) prune(criterion string, ratio float64, dir string) error {
	m, err := r.loadOriginal()
	if err != nil {
		return err
	}
	path := filepath.Join(r.cfg.Out, r.scores[criterion].Dir, "scores.json")
	list, sum, err := prune.ReadScores(path)
	if err != nil {
		return err
	}
	sf, err := prune.PickScores(list, criterion, path)
	if err != nil {
		return err
	}
	if err := sf.Check(m.Config, path); err != nil {
		return err
	}
	if err := sf.CheckWeights(m.Dir, path); err != nil {
		return err
	}
	plan, err := prune.Select(m.Config, prune.Selection{Ratio: ratio, Policy: r.policy()}, prune.StaticRanker(sf))
	if err != nil {
		return err
	}
	_, err = prune.Write(m, plan, prune.WriteOptions{Out: filepath.Join(dir, "model"), ToolVersion: r.version,
		ScoresFile: path, ScoresSHA256: sum})
	return err
}

func (r *runner) progress(desc string) func(done, total int) {
	if r.Progress == nil {
		return nil
	}
	return r.Progress(desc)
}
