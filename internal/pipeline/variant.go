package pipeline

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/shortllm/shortllm/internal/eval"
	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/retrain"
	"github.com/shortllm/shortllm/internal/tokenizer"
)

type retrainKey struct {
	LoRAData, CPTData          string // digests
	Steps                      int
	MaxTokens                  int64
	LR                         float64
	Batch, Micro, Warmup, Rank int
	SeqLen                     int
	Seed                       uint64
}

func (r *runner) retrainKey() (retrainKey, error) {
	k := retrainKey{Steps: r.cfg.RetrainSteps, MaxTokens: r.cfg.MaxTokens, LR: r.cfg.LR, Batch: r.cfg.BatchSize,
		Micro: r.cfg.MicroBatchSize, Warmup: r.warmup(), Rank: r.cfg.LoRARank, SeqLen: r.cfg.SeqLen, Seed: r.cfg.Seed}
	var err error
	if k.LoRAData, err = fileDigest(r.cfg.LoRAData); err != nil {
		return k, fmt.Errorf("--lora-data: %w", err)
	}
	if k.CPTData, err = fileDigest(r.cfg.CPTData); err != nil {
		return k, fmt.Errorf("--cpt-data: %w", err)
	}
	return k, nil
}

// warmup defaults to a tenth of the run: the retrain verb's 100 updates would be the whole
// of a short pipeline run.
func (r *runner) warmup() int {
	if r.cfg.WarmupSteps > 0 {
		return r.cfg.WarmupSteps
	}
	return r.cfg.RetrainSteps / 10
}

// addRetrain fills a pruned variant's retraining stage (if any) and evaluation stages.
func (r *runner) addRetrain(v *Variant, ps Stage, k retrainKey, ek evalKey) {
	v.ModelDir = filepath.Join(ps.Dir, "model")
	parent := ps.Hash
	if v.Retrain != RetrainNone {
		if v.Retrain == RetrainLoRA {
			k.CPTData = "" // a data file a mode does not read must not change its hash
		}
		if v.Retrain == RetrainCPT {
			k.LoRAData, k.Rank = "", 0
		}
		rs := newStage("retrain", fmt.Sprintf("%s-%s", ps.Label, v.Retrain), struct {
			Prune, Mode string
			Settings    retrainKey
		}{ps.Hash, v.Retrain, k})
		v.RetrainDir, parent = r.keep(rs), rs.Hash
		out := filepath.Join(rs.Dir, "out")
		switch v.Retrain {
		case RetrainLoRA:
			v.Adapter = out
		case RetrainCPT:
			v.ModelDir = out
		case RetrainCPTLoRA:
			v.ModelDir, v.Adapter = filepath.Join(out, "cpt"), out
		}
	}
	r.addEval(v, parent, ek)
}

type evalKey struct {
	PPL       []pplKey
	SeqLen    int
	MaxChunks int
	ZeroShot  map[string]string // task → file digest
	Limit     int
}

type pplKey struct{ Name, Dataset, Digest string }

func (r *runner) evalKey() (evalKey, error) {
	k := evalKey{SeqLen: r.cfg.SeqLen, MaxChunks: r.cfg.MaxChunks}
	for _, s := range r.plan.ppl {
		d, err := fileDigest(s.Path)
		if err != nil {
			return k, fmt.Errorf("--eval-ppl %s: %w", s.Name, err)
		}
		k.PPL = append(k.PPL, pplKey{s.Name, s.Dataset, d})
	}
	if r.cfg.EvalZeroShot != "" {
		k.ZeroShot, k.Limit = map[string]string{}, r.cfg.Limit
		for _, t := range r.cfg.Tasks {
			d, err := fileDigest(filepath.Join(r.cfg.EvalZeroShot, t+".jsonl"))
			if err != nil {
				return k, fmt.Errorf("--eval-zeroshot: task %s: %w", t, err)
			}
			k.ZeroShot[t] = d
		}
	}
	return k, nil
}

func (r *runner) addEval(v *Variant, parent string, k evalKey) {
	label := "original"
	if v.Criterion != "" {
		label = fmt.Sprintf("%s-%s-%s", v.Criterion, strings.TrimSuffix(v.Ratio, "%"), v.Retrain)
	}
	v.EvalDir = r.keep(newStage("eval", label, struct {
		Model, Adapter string
		Settings       evalKey
	}{parent, v.Adapter, k}))
}

// variant runs a model's retraining and evaluation stages.
func (r *runner) variant(v *Variant) error {
	if v.RetrainDir != "" {
		if err := r.runStageDir(v.RetrainDir, func(dir string) error { return r.retrain(v, dir) }); err != nil {
			return err
		}
	}
	return r.runStageDir(v.EvalDir, func(dir string) error { return r.eval(v, dir) })
}

// keep remembers a planned stage by its directory (what a Variant records) and returns it.
func (r *runner) keep(s Stage) string {
	if s.Dir != "" {
		r.planned[s.Dir] = s
	}
	return s.Dir
}

// runStageDir runs the stage planned at a directory.
func (r *runner) runStageDir(rel string, work func(dir string) error) error {
	return r.runStage(r.planned[rel], work)
}

// retrain runs a retrain.Job on the pruned model, as `shortllm retrain` does.
func (r *runner) retrain(v *Variant, dir string) error {
	base := filepath.Join(r.cfg.Out, v.PruneDir, "model")
	m, err := model.Load(base, model.LoadOptions{})
	if err != nil {
		return err
	}
	tok, err := tokenizer.Load(base)
	if err != nil {
		return fmt.Errorf("retraining needs the model's tokenizer: %w", err)
	}
	job := &retrain.Job{Model: m, ModelRef: base, Backend: r.Backend, Tokenizer: tok, Out: filepath.Join(dir, "out"),
		Mode: v.Retrain, Data: r.cfg.LoRAData, DataOptions: retrain.DataOptions{SeqLen: r.cfg.SeqLen},
		CPTOptim:  retrain.AdamW{LR: r.cfg.LR, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1, ClipNorm: 1},
		LoRAOptim: retrain.AdamW{LR: r.cfg.LR, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, ClipNorm: 1},
		LoRA:      retrain.NewLoRAConfig(r.cfg.LoRARank, 2*float64(r.cfg.LoRARank), 0.05, retrain.DefaultTargetModules, false),
		Loop: retrain.Options{Schedule: "linear", WarmupSteps: r.warmup(), BatchSize: r.cfg.BatchSize,
			MicroBatchSize: r.cfg.MicroBatchSize, Epochs: 1, MaxSteps: r.cfg.RetrainSteps, MaxTokens: r.cfg.MaxTokens,
			Seed: r.cfg.Seed, PadID: max(tok.PAD(), 0)}}
	if v.Retrain != RetrainLoRA {
		job.Data, job.LoRAData = r.cfg.CPTData, r.cfg.LoRAData
	}
	if p := r.progress("retrain " + v.Name); p != nil {
		job.Loop.OnStep = func(s retrain.StepLog, total int) { p(s.Step, total) }
	}
	_, err = job.Run()
	return err
}

// EvalResult is an eval stage's result.json.
type EvalResult struct {
	Params    int64                `json:"params"`
	NumLayers int                  `json:"num_layers"`
	PPL       []NamedPPL           `json:"ppl"`
	ZeroShot  *eval.ZeroShotReport `json:"zeroshot,omitempty"`
}

// NamedPPL is one dataset × BOS mode.
type NamedPPL struct {
	Name string `json:"name"`
	*eval.PPLResult
}

// eval measures perplexity (BOS once and every chunk, as the paper reports) and zero-shot
// accuracy with the same settings for every model.
func (r *runner) eval(v *Variant, dir string) error {
	lm, tok, m, err := r.load(v)
	if err != nil {
		return err
	}
	res := EvalResult{Params: evalParams(v, m), NumLayers: m.Config.NumHiddenLayers}
	for _, s := range r.plan.ppl {
		for _, bos := range []string{eval.BOSOnce, eval.BOSEvery} {
			p, err := eval.EvalPerplexity(lm, tok, s.Path, s.Dataset, eval.PPLOptions{SeqLen: r.cfg.SeqLen, BOS: bos,
				MaxChunks: r.cfg.MaxChunks, BatchSize: 8, Progress: r.progress(fmt.Sprintf("ppl %s %s bos=%s", v.Name, s.Name, bos))})
			if err != nil {
				return err
			}
			res.PPL = append(res.PPL, NamedPPL{Name: s.Name, PPLResult: p})
		}
	}
	if r.cfg.EvalZeroShot != "" {
		if res.ZeroShot, err = r.zeroShot(lm, tok, v); err != nil {
			return err
		}
	}
	return writeJSON(filepath.Join(dir, "result.json"), res)
}

func (r *runner) zeroShot(lm eval.LM, tok *tokenizer.Tokenizer, v *Variant) (*eval.ZeroShotReport, error) {
	tasks := make([]*eval.Task, 0, len(r.cfg.Tasks))
	for _, name := range r.cfg.Tasks {
		t, err := eval.LoadTask(r.cfg.EvalZeroShot, name, r.cfg.Limit)
		if err != nil {
			return nil, err
		}
		tasks = append(tasks, t)
	}
	// One item per forward pass: on the pure-Go backend a small model spends more time building
	// graphs for big batch shapes than it saves (the demo: 15 vs 25 CPU-s); scores do not
	// depend on it.
	// The model is named as the run records it (relative to the run directory for pruned and
	// retrained models), so results do not depend on where the run directory lies.
	opts := eval.ZeroShotOptions{ModelDir: v.ModelDir}
	if p := r.progress("zero-shot " + v.Name); p != nil {
		opts.Progress = func(_ string, done, total int) { p(done, total) }
	}
	return eval.RunZeroShot(lm, tok, tasks, opts)
}

// load builds the variant's model (merging a LoRA adapter in memory, as `eval --adapter`).
func (r *runner) load(v *Variant) (eval.RunnerLM, *tokenizer.Tokenizer, *model.Model, error) {
	dir := r.path(v.ModelDir)
	m, err := model.Load(dir, model.LoadOptions{})
	if err != nil {
		return eval.RunnerLM{}, nil, nil, err
	}
	if v.Adapter != "" {
		if err := retrain.MergeAdapter(m, r.path(v.Adapter)); err != nil {
			return eval.RunnerLM{}, nil, nil, err
		}
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		return eval.RunnerLM{}, nil, nil, fmt.Errorf("evaluation needs the model's tokenizer: %w", err)
	}
	return eval.RunnerLM{Runner: model.NewRunner(r.Backend, m)}, tok, m, nil
}

// path resolves a manifest path: stage outputs are relative to the run directory, the
// input model is as given.
func (r *runner) path(p string) string {
	if p == r.cfg.Model || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(r.cfg.Out, p)
}
