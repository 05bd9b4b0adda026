package retrain

// Job is a whole `shortllm retrain` run: data, phases (cpt, lora, cpt then lora), checkpoints
// and the output directory.
//
// Output layout (written into a temporary directory beside --out and renamed at the end, so a
// failed or killed run never leaves a half-written --out; see internal/outdir):
//
//	cpt:       --out is a Hugging Face checkpoint, plus train_log.json
//	lora:      --out is a PEFT adapter (adapter_config.json, adapter_model.safetensors),
//	           plus train_log.json and, with --merge, merged/ (the full merged checkpoint)
//	cpt+lora:  as lora, plus cpt/ (the CPT checkpoint the adapter was trained on) and
//	           its train_log.json
//
// Resumable checkpoints live in --out + ".ckpt" (one subdirectory per phase, and cpt-model/
// once CPT has finished); it is removed after a successful run.

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/outdir"
	"github.com/shortllm/shortllm/internal/tokenizer"
)

// Job describes a retraining run.
type Job struct {
	Model     *model.Model
	ModelRef  string // recorded as the adapter's base_model_name_or_path
	Backend   backends.Backend
	Tokenizer *tokenizer.Tokenizer // nil is fine for pre-tokenised data
	Out       string
	Mode      Mode
	// Data trains the first phase; LoRAData the LoRA phase of cpt+lora.
	Data, LoRAData string
	// ValData, or else ValSize examples held out of the training data, is the validation set.
	ValData string
	ValSize int
	DataOptions
	// Loop holds the shared loop settings; Mode, Adapter, Optim, Val and CheckpointDir are
	// filled per phase.
	Loop                Options
	CPTOptim, LoRAOptim AdamW
	LoRA                LoRAConfig
	// AdapterDir continues an existing adapter (AdapterWeights overrides its weights file).
	AdapterDir, AdapterWeights string
	Merge, Force               bool

	// master is CPT's float32 master copy when it trained bf16 weights: what its model
	// outputs are written from.
	master map[string]*tensors.Tensor
}

// Result reports what a job wrote.
type Result struct {
	Out  string           `json:"out"`
	Logs map[Mode]*RunLog `json:"logs"`
	// Finished is set when --resume found the run already complete (nothing was trained).
	Finished bool `json:"already_finished,omitempty"`
}

// CheckpointDir is where a job keeps resumable checkpoints.
func CheckpointDir(out string) string { return filepath.Clean(out) + ".ckpt" }

// Run checks the job, trains every phase and writes the output under shortllm's output rule
// (internal/outdir): --out and OUT.ckpt are locked for the whole run, the output is staged
// beside --out and renamed into place at the end. A --resume of a run that has already
// finished returns its logs with Result.Finished set.
func (j *Job) Run() (*Result, error) {
	if res, ok := j.finished(); ok {
		return res, nil
	}
	if err := j.check(); err != nil {
		return nil, err
	}
	d, err := outdir.Begin(j.Out, outdir.Options{Inputs: j.inputs(), Force: j.Force})
	if err != nil {
		return nil, err
	}
	defer d.Close()
	if err := j.checkCheckpoint(); err != nil {
		return nil, err
	}
	res, err := j.runPhases(d.Path())
	if err != nil {
		return nil, err
	}
	if err := d.Commit(); err != nil {
		return nil, err
	}
	return res, os.RemoveAll(CheckpointDir(j.Out))
}

// inputs are the paths the job reads: --out and OUT.ckpt must overlap none of them.
func (j *Job) inputs() []string {
	return []string{j.Model.Dir, j.Data, j.LoRAData, j.ValData, j.AdapterDir, j.AdapterWeights}
}

// finished recognises `--resume` of a run that completed: --out holds its train_log.json.
// The README's resume command then reports the finished run instead of failing. A
// checkpoint left by a run killed between its commit and the checkpoint's removal is
// removed now (under the output's lock).
func (j *Job) finished() (*Result, bool) {
	if !j.Loop.Resume || j.Out == "" || !outdir.Ours(j.Out) {
		return nil, false
	}
	res := &Result{Out: j.Out, Logs: map[Mode]*RunLog{}, Finished: true}
	logs := map[Mode]string{}
	switch j.Mode {
	case ModeCPT:
		logs[ModeCPT] = filepath.Join(j.Out, "train_log.json")
	case ModeLoRA:
		logs[ModeLoRA] = filepath.Join(j.Out, "train_log.json")
	case ModeCPTLoRA:
		logs[ModeLoRA] = filepath.Join(j.Out, "train_log.json")
		logs[ModeCPT] = filepath.Join(j.Out, "cpt", "train_log.json")
	}
	for phase, path := range logs {
		var l RunLog
		data, err := os.ReadFile(path)
		if err != nil || json.Unmarshal(data, &l) != nil || l.Mode != phase || len(l.Steps) == 0 {
			return nil, false
		}
		res.Logs[phase] = &l
	}
	if len(res.Logs) == 0 {
		return nil, false
	}
	if lock, err := outdir.Acquire(j.Out); err == nil {
		os.RemoveAll(CheckpointDir(j.Out))
		lock.Release()
	}
	return res, true
}

// check rejects what would fail late: an existing --out, a missing or stray checkpoint, a
// sequence length beyond the model's context.
func (j *Job) check() error {
	switch j.Mode {
	case ModeLoRA, ModeCPT:
	case ModeCPTLoRA:
		if j.LoRAData == "" {
			return fmt.Errorf("mode cpt+lora needs --lora-data for the LoRA phase: %w", ErrOptions)
		}
	default:
		return fmt.Errorf("mode %q (want lora, cpt or cpt+lora): %w", j.Mode, ErrOptions)
	}
	if j.Out == "" {
		return fmt.Errorf("--out is required: %w", ErrOptions)
	}
	if ctx := j.Model.Config.MaxPositionEmbeddings; j.SeqLen > ctx {
		return fmt.Errorf("seq-len %d exceeds the model's max_position_embeddings (%d): %w", j.SeqLen, ctx, ErrOptions)
	}
	if err := outdir.CheckInputs(CheckpointDir(j.Out), outdir.Options{Inputs: j.inputs(), Flag: "checkpoint"}); err != nil {
		return err
	}
	return j.checkCheckpoint()
}

// checkCheckpoint: --resume needs OUT.ckpt, a fresh run must not silently reuse one.
func (j *Job) checkCheckpoint() error {
	ck := CheckpointDir(j.Out)
	_, err := os.Stat(ck)
	switch {
	case j.Loop.Resume && err != nil:
		return fmt.Errorf("resume: no checkpoint at %s", ck)
	case !j.Loop.Resume && err == nil:
		return fmt.Errorf("checkpoint %s exists: pass --resume to continue it, or remove it", ck)
	}
	return nil
}

func (j *Job) runPhases(stage string) (*Result, error) {
	res := &Result{Out: j.Out, Logs: map[Mode]*RunLog{}}
	r := model.NewRunner(j.Backend, j.Model)
	if j.Mode != ModeLoRA {
		log, err := j.cptPhase(r)
		if err != nil {
			return nil, err
		}
		res.Logs[ModeCPT] = log
		if j.Mode == ModeCPT {
			return res, j.saveModel(stage, "", log, "train_log.json")
		}
		if err := j.saveModel(stage, "cpt", log, "train_log.json"); err != nil {
			return nil, err
		}
	}
	log, a, err := j.loraPhase(r)
	if err != nil {
		return nil, err
	}
	res.Logs[ModeLoRA] = log
	return res, j.writeLoRA(stage, a, log)
}

// cptPhase trains all weights, or loads the finished CPT model of an interrupted cpt+lora run.
func (j *Job) cptPhase(r *model.Runner) (*RunLog, error) {
	done := filepath.Join(CheckpointDir(j.Out), "cpt-model")
	if j.Loop.Resume && model.IsModelDir(done) {
		return j.reloadCPT(done)
	}
	o, err := j.phaseOptions(ModeCPT, j.CPTOptim)
	if err != nil {
		return nil, err
	}
	log, err := j.train(r, j.Data, o)
	if err != nil || j.Mode != ModeCPTLoRA {
		return log, err
	}
	// Keep the CPT result so a resumed run goes straight to the LoRA phase.
	js, _ := json.MarshalIndent(log, "", " ")
	return log, j.trainedModel().Save(done, model.SaveOptions{Force: true, Extra: map[string][]byte{"train_log.json": js}})
}

// trainedModel is the model to write after CPT: j.Model, with the float32 master weights in
// place of their bf16 casts when CPT kept a master copy (each tensor is still written in its
// stored dtype; a BF16 one gets the same round-to-nearest cast).
func (j *Job) trainedModel() *model.Model {
	if j.master == nil {
		return j.Model
	}
	m := *j.Model
	m.Weights = make(map[string]*tensors.Tensor, len(j.Model.Weights))
	for n, w := range j.Model.Weights {
		m.Weights[n] = w
		if v := j.master[n]; v != nil {
			m.Weights[n] = v
		}
	}
	return &m
}

// reloadCPT loads the finished CPT model in the job's compute dtype (and, for bf16, its
// float32 values as the master copy the outputs are written from, as the finished phase had).
func (j *Job) reloadCPT(dir string) (*RunLog, error) {
	dt := j.Model.ComputeDType()
	m, err := model.Load(dir, model.LoadOptions{DType: dt})
	if err != nil {
		return nil, err
	}
	j.Model.Weights = m.Weights
	if dt == dtypes.BFloat16 {
		m32, err := model.Load(dir, model.LoadOptions{})
		if err != nil {
			return nil, err
		}
		j.master = m32.Weights
	}
	var log RunLog
	data, err := os.ReadFile(filepath.Join(dir, "train_log.json"))
	if err == nil {
		err = json.Unmarshal(data, &log)
	}
	if err != nil {
		return nil, fmt.Errorf("resume %s: %w", dir, err)
	}
	return &log, nil
}

func (j *Job) loraPhase(r *model.Runner) (*RunLog, *Adapter, error) {
	a, err := j.adapter()
	if err != nil {
		return nil, nil, err
	}
	o, err := j.phaseOptions(ModeLoRA, j.LoRAOptim)
	if err != nil {
		return nil, nil, err
	}
	o.Adapter = a
	data := j.Data
	if j.Mode == ModeCPTLoRA {
		data = j.LoRAData
	}
	log, err := j.train(r, data, o)
	return log, a, err
}

// adapter is a new PEFT-initialised adapter, or the one to continue.
func (j *Job) adapter() (*Adapter, error) {
	switch {
	case j.AdapterDir != "" && j.AdapterWeights != "":
		return LoadAdapterWeights(j.AdapterDir, j.AdapterWeights, j.Model.Config)
	case j.AdapterDir != "":
		return LoadAdapter(j.AdapterDir, j.Model.Config)
	case j.AdapterWeights != "":
		return nil, fmt.Errorf("--adapter-weights needs --adapter (the directory with adapter_config.json): %w", ErrOptions)
	}
	return NewAdapter(j.Model.Config, j.LoRA, j.Loop.Seed)
}

func (j *Job) phaseOptions(mode Mode, opt AdamW) (Options, error) {
	o := j.Loop
	o.Mode, o.Optim = mode, opt
	o.CheckpointDir = filepath.Join(CheckpointDir(j.Out), string(mode))
	if j.Loop.Resume {
		has, err := HasCheckpoint(o.CheckpointDir)
		if err != nil {
			return o, fmt.Errorf("resume: %w", err)
		}
		o.Resume = has // without one, an earlier phase was interrupted: this one starts fresh
	}
	if o.SaveEvery == 0 {
		o.CheckpointDir = ""
	}
	return o, nil
}

// train loads a phase's data and runs the trainer.
func (j *Job) train(r *model.Runner, path string, o Options) (*RunLog, error) {
	data, err := LoadDataset(path, j.Tokenizer, j.DataOptions)
	if err != nil {
		return nil, err
	}
	if o.Val, err = j.validation(data); err != nil {
		return nil, err
	}
	if len(data.Examples) == 0 {
		return nil, fmt.Errorf("data %s: no training examples left after --val-size %d: %w", path, j.ValSize, ErrData)
	}
	t, err := NewTrainer(r, o)
	if err != nil {
		return nil, err
	}
	log, err := t.Run(data)
	if err == nil && o.Mode == ModeCPT {
		j.master = t.MasterWeights()
	}
	return log, err
}

// validation loads ValData, or moves ValSize examples (a seeded random choice) out of data,
// as alpaca-lora's train_test_split(test_size=val_set_size) does.
func (j *Job) validation(data *Dataset) ([]Example, error) {
	if j.ValData != "" {
		v, err := LoadDataset(j.ValData, j.Tokenizer, j.DataOptions)
		if err != nil {
			return nil, err
		}
		return v.Examples, v.CheckFits(j.Model.Config)
	}
	if j.ValSize <= 0 {
		return nil, nil
	}
	if j.ValSize >= len(data.Examples) {
		return nil, fmt.Errorf("data %s: --val-size %d leaves no training examples (have %d): %w", data.Path, j.ValSize, len(data.Examples), ErrOptions)
	}
	perm := rand.New(rand.NewPCG(j.Loop.Seed, 0x7a1)).Perm(len(data.Examples))
	held := map[int]bool{}
	var val, train []Example
	for _, i := range perm[:j.ValSize] {
		held[i] = true
		val = append(val, data.Examples[i])
	}
	for i, e := range data.Examples {
		if !held[i] {
			train = append(train, e)
		}
	}
	data.Examples = train
	return val, nil
}

// saveModel writes the (trained) model as an HF checkpoint into stage/sub.
func (j *Job) saveModel(stage, sub string, log *RunLog, logName string) error {
	js, err := json.MarshalIndent(log, "", " ")
	if err != nil {
		return err
	}
	dir := stage
	if sub != "" {
		dir = filepath.Join(stage, sub)
	}
	return j.trainedModel().WriteDir(dir, model.SaveOptions{Extra: map[string][]byte{logName: js}})
}

// writeLoRA writes the adapter (and the merged model) into stage.
func (j *Job) writeLoRA(stage string, a *Adapter, log *RunLog) error {
	base := PeftBase(j.ModelRef)
	if j.Mode == ModeCPTLoRA { // the CPT model beside it, where it will be once out is in place
		var err error
		if base, err = filepath.Abs(filepath.Join(j.Out, "cpt")); err != nil {
			return fmt.Errorf("out %s: %w", j.Out, err)
		}
	}
	if err := a.WriteInto(stage, base, j.Model.Config); err != nil {
		return fmt.Errorf("out %s: %w", j.Out, err)
	}
	js, err := json.MarshalIndent(log, "", " ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(stage, "train_log.json"), js, 0o644); err != nil {
		return fmt.Errorf("out %s: %w", j.Out, err)
	}
	if !j.Merge {
		return nil
	}
	if err := Merge(j.Model, a); err != nil {
		return err
	}
	return j.Model.WriteDir(filepath.Join(stage, "merged"), model.SaveOptions{})
}
