package pipeline

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/outdir"
	"github.com/shortllm/shortllm/internal/prune"
	"github.com/shortllm/shortllm/internal/retrain"
	"github.com/shortllm/shortllm/internal/score"
	"github.com/shortllm/shortllm/internal/stage"
)

// ManifestFile (RUN_DIR/run.json) lists the run's settings and where every stage keeps its
// output; `shortllm report` renders the report from it and the stage outputs.
const ManifestFile = "run.json"

// Env is what a run needs besides its Config: the stage engine (backend, compute dtype —
// which must be Config.DType —, notices, progress, version) that every stage runs on.
type Env struct {
	Engine *stage.Engine
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
	Name      string       `json:"name"`
	Criterion string       `json:"criterion,omitempty"`
	Ratio     string       `json:"ratio,omitempty"`
	RatioVal  float64      `json:"ratio_value,omitempty"`
	Retrain   retrain.Mode `json:"retrain,omitempty"`
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
	orig        *stage.Opened // loaded once (for copying) for scoring and pruning
	origCompute *model.Model  // orig's weights in the compute dtype, for scoring
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
	if env.Engine == nil {
		return nil, nil, fmt.Errorf("pipeline: no engine")
	}
	if dt, err := model.ParseDType(cfg.DType, "--dtype"); err != nil || dt != env.Engine.Compute {
		return nil, nil, fmt.Errorf("pipeline: dtype %q differs from the engine's %s", cfg.DType, env.Engine.DTypeName())
	}
	// A hub id resolves to its local snapshot, as in every other command.
	if cfg.Model, err = env.Engine.Resolve(context.Background(), cfg.Model); err != nil {
		return nil, nil, err
	}
	r := &runner{Env: env, cfg: cfg, plan: p, notices: env.Engine.Notices, version: env.Engine.Version,
		scores: map[string]Stage{}, prunes: map[string]Stage{}, planned: map[string]Stage{}}
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
	r.orig, r.origCompute = nil, nil // scoring and pruning are done: let the weights go
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
			Samples: r.cfg.CalibSamples, SeqLen: r.cfg.SeqLen, Seed: r.cfg.Seed, DType: r.dtypeKey()})
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
	DType                   string `json:",omitempty"` // "" is f32, so f32 runs keep their hashes
}

// dtypeKey is the compute dtype in stage keys: empty for f32.
func (r *runner) dtypeKey() string {
	if n := r.Engine.DTypeName(); n != "f32" {
		return n
	}
	return ""
}

type pruneKey struct {
	Score  string
	Ratio  float64
	Policy prune.Policy
}

// loadOriginal loads the input model once, on first use, as stored (BF16 stays BF16), so
// that pruned checkpoints are written from the loaded tensors.
func (r *runner) loadOriginal() (*model.Model, error) {
	if r.orig == nil {
		o, err := r.Engine.Open(context.Background(), r.cfg.Model, stage.OpenOptions{Dir: true, CopyOnly: true})
		if err != nil {
			return nil, err
		}
		r.orig = o
	}
	return r.orig.Model, nil
}

// computeOriginal is the input model in the compute dtype (shared tensors where they agree).
func (r *runner) computeOriginal() (*stage.Opened, error) {
	m, err := r.loadOriginal()
	if err != nil {
		return nil, err
	}
	if r.origCompute == nil {
		if r.origCompute, err = m.WithComputeDType(r.Engine.Compute); err != nil {
			return nil, err
		}
	}
	o := *r.orig
	o.Model = r.origCompute
	return &o, nil
}

// runnerFor prepares a runner on the run's engine.
func (r *runner) runnerFor(m *model.Model) (*model.Runner, error) { return r.Engine.Runner(m) }

// calib is the scoring data every data-driven stage reads.
func (r *runner) calib() stage.Calib {
	return stage.Calib{Path: r.cfg.Calib, CalibOptions: score.CalibOptions{Samples: r.cfg.CalibSamples, SeqLen: r.cfg.SeqLen, Seed: r.cfg.Seed}}
}

// score writes DIR/scores.json, as `shortllm score --out` does.
func (r *runner) score(criterion, dir string) error {
	o, err := r.computeOriginal()
	if err != nil {
		return err
	}
	res, err := r.Engine.Score(o, stage.ScoreJob{Criteria: []string{criterion}, Calib: r.calib(), Remat: stage.Remat(r.cfg.Remat)})
	if err != nil {
		return err
	}
	return score.WriteResults(filepath.Join(dir, "scores.json"), res)
}

// prune writes DIR/model from the criterion's stored scores, as `shortllm prune --scores`.
func (r *runner) prune(criterion string, ratio float64, dir string) error {
	if _, err := r.loadOriginal(); err != nil {
		return err
	}
	_, err := r.Engine.Prune(context.Background(), stage.PruneJob{Opened: r.orig, Criterion: criterion,
		Scores:    filepath.Join(r.cfg.Out, r.scores[criterion].Dir, "scores.json"),
		Selection: prune.Selection{Ratio: ratio, Policy: r.policy()}, Write: prune.WriteOptions{Out: filepath.Join(dir, "model")}})
	return err
}

func (r *runner) progress(desc string) func(done, total int) {
	if r.Engine.Progress == nil {
		return nil
	}
	return r.Engine.Progress(desc)
}
