package pipeline

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/shortllm/shortllm/internal/eval"
	"github.com/shortllm/shortllm/internal/retrain"
	"github.com/shortllm/shortllm/internal/stage"
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
	DType                      string `json:",omitempty"` // compute dtype; "" is f32
}

func (r *runner) retrainKey() (retrainKey, error) {
	k := retrainKey{Steps: r.cfg.RetrainSteps, MaxTokens: r.cfg.MaxTokens, LR: r.cfg.LR, Batch: r.cfg.BatchSize,
		Micro: r.cfg.MicroBatchSize, Warmup: r.warmup(), Rank: r.cfg.LoRARank, SeqLen: r.cfg.SeqLen, Seed: r.cfg.Seed, DType: r.dtypeKey()}
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
	if v.Retrain != retrain.ModeNone {
		if v.Retrain == retrain.ModeLoRA {
			k.CPTData = "" // a data file a mode does not read must not change its hash
		}
		if v.Retrain == retrain.ModeCPT {
			k.LoRAData, k.Rank = "", 0
		}
		rs := newStage("retrain", fmt.Sprintf("%s-%s", ps.Label, v.Retrain), struct {
			Prune, Mode string
			Settings    retrainKey
		}{ps.Hash, string(v.Retrain), k})
		v.RetrainDir, parent = r.keep(rs), rs.Hash
		out := filepath.Join(rs.Dir, "out")
		switch v.Retrain {
		case retrain.ModeLoRA:
			v.Adapter = out
		case retrain.ModeCPT:
			v.ModelDir = out
		case retrain.ModeCPTLoRA:
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
	DType     string `json:",omitempty"` // compute dtype; "" is f32
}

type pplKey struct{ Name, Dataset, Digest string }

func (r *runner) evalKey() (evalKey, error) {
	k := evalKey{SeqLen: r.cfg.SeqLen, MaxChunks: r.cfg.MaxChunks, DType: r.dtypeKey()}
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
	job := &retrain.Job{Out: filepath.Join(dir, "out"),
		Mode: v.Retrain, Data: r.cfg.LoRAData, DataOptions: retrain.DataOptions{SeqLen: r.cfg.SeqLen},
		CPTOptim:  retrain.DefaultAdamW(retrain.ModeCPT, r.cfg.LR),
		LoRAOptim: retrain.DefaultAdamW(retrain.ModeLoRA, r.cfg.LR),
		LoRA:      retrain.NewLoRAConfig(r.cfg.LoRARank, 2*float64(r.cfg.LoRARank), 0.05, retrain.DefaultTargetModules, false),
		Loop: retrain.Options{Schedule: "linear", WarmupSteps: r.warmup(), BatchSize: r.cfg.BatchSize,
			MicroBatchSize: r.cfg.MicroBatchSize, Epochs: 1, MaxSteps: r.cfg.RetrainSteps, MaxTokens: r.cfg.MaxTokens,
			Seed: r.cfg.Seed}}
	if v.Retrain != retrain.ModeLoRA {
		job.Data, job.LoRAData = r.cfg.CPTData, r.cfg.LoRAData
	}
	if p := r.progress("retrain " + v.Name); p != nil {
		job.Loop.OnStep = func(s retrain.StepLog, total int) { p(s.Step, total) }
	}
	_, err := r.Engine.Retrain(context.Background(), base, job, stage.Remat(r.cfg.Remat))
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
	o, err := r.Engine.Open(context.Background(), r.path(v.ModelDir), stage.OpenOptions{Dir: true, NeedTokenizer: true, Adapter: r.adapterPath(v)})
	if err != nil {
		return fmt.Errorf("evaluation: %w", err)
	}
	res := EvalResult{Params: evalParams(v, o.Model), NumLayers: o.Model.Config.NumHiddenLayers}
	job := stage.PPLJob{SeqLen: r.cfg.SeqLen, MaxChunks: r.cfg.MaxChunks, BatchSize: 8}
	for _, s := range r.plan.ppl {
		job.Files = append(job.Files, stage.PPLFile{Name: s.Name, Path: s.Path, Dataset: s.Dataset})
	}
	runs, err := r.Engine.PPL(o, job)
	if err != nil {
		return err
	}
	for _, run := range runs {
		res.PPL = append(res.PPL, NamedPPL{Name: run.Name, PPLResult: run.Result})
	}
	if r.cfg.EvalZeroShot != "" {
		run, err := r.runnerFor(o.Model)
		if err != nil {
			return err
		}
		if res.ZeroShot, err = r.zeroShot(eval.RunnerLM{Runner: run}, o.Tok, v); err != nil {
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

// adapterPath is the variant's adapter directory, or "".
func (r *runner) adapterPath(v *Variant) string {
	if v.Adapter == "" {
		return ""
	}
	return r.path(v.Adapter)
}

// path resolves a manifest path: stage outputs are relative to the run directory, the
// input model is as given.
func (r *runner) path(p string) string {
	if p == r.cfg.Model || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(r.cfg.Out, p)
}
