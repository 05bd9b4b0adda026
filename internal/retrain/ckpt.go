package retrain

// Resumable checkpoints. CheckpointDir/LATEST names the newest step-N directory, which holds
// state.json (update count, log, best validation loss, the model's config hash and the run's
// fingerprint) and state.safetensors (trained tensors, AdamW moments and the best-so-far
// copy, all float32, so a resumed run continues bit for bit; CPT on bf16 weights saves its
// float32 master copy, whose cast the bf16 weights are). The data order and dropout
// masks are functions of (seed, step), so no generator state needs saving.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/shortllm/shortllm/internal/atomicfile"
	"github.com/shortllm/shortllm/internal/inputfile"
	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/safetensors"
)

// ErrCheckpoint marks a checkpoint that cannot be resumed by this run.
var ErrCheckpoint = errors.New("cannot resume checkpoint")

const (
	latestFile  = "LATEST"
	stateFile   = "state.json"
	tensorsFile = "state.safetensors"
)

// state is everything a run needs to continue.
type state struct {
	step        int
	train, m, v []*tensors.Tensor
	best        []*tensors.Tensor
	bestLoss    float64
	bestStep    int
	log         []StepLog
}

type stateJSON struct {
	Step        int       `json:"step"`
	ConfigHash  string    `json:"config_hash"`
	Fingerprint string    `json:"fingerprint"`
	BestLoss    float64   `json:"best_loss"`
	BestStep    int       `json:"best_step"`
	Names       []string  `json:"names"`
	Log         []StepLog `json:"log"`
}

// freshState starts from the current weights with zero moments; a master copy starts as the
// bf16 weights widened (exactly) to float32.
func (t *Trainer) freshState() *state {
	st := &state{}
	for _, n := range t.names {
		var v *tensors.Tensor
		switch {
		case t.o.Mode == ModeLoRA:
			v = t.o.Adapter.Tensor(n)
		case t.master:
			w := t.r.Model.Weights[n]
			v = tensors.FromFlatDataAndDimensions(model.Float32Values(w), w.Shape().Dimensions...)
		default:
			v = t.r.Model.Weights[n]
		}
		st.train = append(st.train, v)
		st.m = append(st.m, tensors.FromShape(v.Shape()))
		st.v = append(st.v, tensors.FromShape(v.Shape()))
	}
	return st
}

// fingerprint hashes what fixes the run's arithmetic and data order: options and examples.
func (t *Trainer) fingerprint(d *Dataset) string {
	h := sha256.New()
	o := t.o
	fmt.Fprintf(h, "%s|%+v|%s|%d|%d|%d|%d|%d|%d|%d|%d|%d|%s|", o.Mode, o.Optim, o.Schedule, o.WarmupSteps,
		o.BatchSize, o.MicroBatchSize, o.Epochs, o.MaxSteps, o.MaxTokens, o.EvalEvery, o.Seed, o.PadID, o.Fingerprint)
	if o.Adapter != nil {
		js, _ := json.Marshal(o.Adapter.Config)
		h.Write(js)
	}
	if t.master { // a float32 run must not continue a bf16 one's master copy silently
		fmt.Fprintf(h, "master=%s|", t.r.Model.ComputeDType())
	}
	for _, set := range [][]Example{d.Examples, o.Val} {
		js, _ := json.Marshal(set)
		h.Write(js)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// saveCheckpoint writes the state into CheckpointDir/step-N (via a temporary directory),
// then points CheckpointDir/LATEST at it with an atomic rename and removes older steps: a
// kill -9 at any moment leaves LATEST naming a complete checkpoint.
func (t *Trainer) saveCheckpoint(d *Dataset) (err error) {
	dir := t.o.CheckpointDir
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	if err := cleanCheckpointTemps(dir); err != nil {
		return fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	name := fmt.Sprintf("step-%08d", t.st.step)
	tmp := filepath.Join(dir, ".tmp-"+name)
	if err := os.Mkdir(tmp, 0o777); err != nil {
		return fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := t.writeState(tmp, d); err != nil {
		return fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	os.RemoveAll(filepath.Join(dir, name)) // a leftover of a run killed before LATEST moved
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	if err := writeFileAtomic(filepath.Join(dir, latestFile), []byte(name+"\n")); err != nil {
		return fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	return removeOtherSteps(dir, name)
}

func writeFileAtomic(path string, data []byte) error { return atomicfile.Write(path, data) }

// cleanCheckpointTemps removes what a run killed while saving left: .tmp-step-* directories
// and temporaries of LATEST.
func cleanCheckpointTemps(dir string) error {
	temps, _ := filepath.Glob(filepath.Join(dir, ".tmp-*"))
	more, _ := filepath.Glob(filepath.Join(dir, atomicfile.TempPrefix(latestFile)+"*"))
	for _, p := range append(temps, more...) {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	return nil
}

func removeOtherSteps(dir, keep string) error {
	old, _ := filepath.Glob(filepath.Join(dir, "step-*"))
	for _, o := range old {
		if filepath.Base(o) != keep {
			if err := os.RemoveAll(o); err != nil {
				return fmt.Errorf("checkpoint %s: %w", dir, err)
			}
		}
	}
	return nil
}

// latest returns the directory of the newest complete checkpoint under dir. A LATEST that
// names no step directory is an error (ErrCheckpoint), never a silent fresh start.
func latest(dir string) (string, error) {
	path := filepath.Join(dir, latestFile)
	b, err := inputfile.Read(path, inputfile.ConfigLimit)
	if err != nil {
		return "", err
	}
	name := strings.TrimSpace(string(b))
	var step int
	if _, serr := fmt.Sscanf(name, "step-%d", &step); serr != nil || step < 0 || name != fmt.Sprintf("step-%08d", step) {
		return "", fmt.Errorf("%s names %.40q, not a step-N directory (corrupt checkpoint; remove %s to start over): %w", path, name, dir, ErrCheckpoint)
	}
	if st, err := os.Stat(filepath.Join(dir, name)); err != nil || !st.IsDir() {
		return "", fmt.Errorf("%s names %s, which is missing (corrupt checkpoint; remove %s to start over): %w", path, name, dir, ErrCheckpoint)
	}
	return filepath.Join(dir, name), nil
}

func (t *Trainer) writeState(dir string, d *Dataset) error {
	st := t.st
	var ts []safetensors.Tensor
	groups := map[string][]*tensors.Tensor{"train/": st.train, "m/": st.m, "v/": st.v, "best/": st.best}
	for prefix, vals := range groups {
		for i, v := range vals {
			data, err := safetensors.EncodeFloat32(tensors.MustCopyFlatData[float32](v), safetensors.F32)
			if err != nil {
				return err
			}
			ts = append(ts, safetensors.Tensor{Name: prefix + t.names[i], DType: safetensors.F32, Shape: v.Shape().Dimensions, Data: data})
		}
	}
	if err := safetensors.Write(filepath.Join(dir, tensorsFile), ts, nil); err != nil {
		return err
	}
	js, err := json.MarshalIndent(stateJSON{Step: st.step, ConfigHash: t.cfg.Hash(), Fingerprint: t.fingerprint(d),
		BestLoss: st.bestLoss, BestStep: st.bestStep, Names: t.names, Log: st.log}, "", " ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, stateFile), js)
}

// resume loads CheckpointDir after checking it belongs to this model and run.
func (t *Trainer) resume(d *Dataset) error {
	dir, err := latest(t.o.CheckpointDir)
	if err != nil {
		return fmt.Errorf("resume %s: %w", t.o.CheckpointDir, err)
	}
	js, err := inputfile.Read(filepath.Join(dir, stateFile), inputfile.ConfigLimit)
	if err != nil {
		return fmt.Errorf("resume %s: %w", dir, err)
	}
	var sj stateJSON
	if err := json.Unmarshal(js, &sj); err != nil {
		return fmt.Errorf("resume %s: %v: %w", filepath.Join(dir, stateFile), err, ErrCheckpoint)
	}
	if err := sj.check(t.plan.total()); err != nil {
		return fmt.Errorf("resume %s: %v: %w", filepath.Join(dir, stateFile), err, ErrCheckpoint)
	}
	if sj.ConfigHash != t.cfg.Hash() {
		return fmt.Errorf("resume %s: checkpoint is of another model (config hash %.12s, this model %.12s): %w",
			dir, sj.ConfigHash, t.cfg.Hash(), ErrCheckpoint)
	}
	if sj.Fingerprint != t.fingerprint(d) {
		return fmt.Errorf("resume %s: checkpoint was made with other options or data: %w", dir, ErrCheckpoint)
	}
	st, err := t.readState(dir, sj)
	if err != nil {
		return fmt.Errorf("resume %s: %w", dir, err)
	}
	t.st = st
	if t.o.Mode == ModeCPT {
		return t.install(st.train)
	}
	return nil
}

func (t *Trainer) readState(dir string, sj stateJSON) (*state, error) {
	f, err := safetensors.Open(filepath.Join(dir, tensorsFile))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st := &state{step: sj.Step, bestLoss: sj.BestLoss, bestStep: sj.BestStep, log: sj.Log}
	read := func(prefix string) ([]*tensors.Tensor, error) {
		var out []*tensors.Tensor
		for i, n := range t.names {
			vals, err := f.ReadFloat32(prefix + n)
			if err != nil {
				return nil, fmt.Errorf("%v: %w", err, ErrCheckpoint)
			}
			out = append(out, tensors.FromFlatDataAndDimensions(vals, t.st.train[i].Shape().Dimensions...))
		}
		return out, nil
	}
	if st.train, err = read("train/"); err != nil {
		return nil, err
	}
	if st.m, err = read("m/"); err != nil {
		return nil, err
	}
	if st.v, err = read("v/"); err != nil {
		return nil, err
	}
	if sj.BestStep > 0 {
		st.best, err = read("best/")
	}
	return st, err
}

// cloneAll copies tensors (the best-so-far weights must not alias the training state).
func cloneAll(ts []*tensors.Tensor) []*tensors.Tensor {
	out := make([]*tensors.Tensor, len(ts))
	for i, v := range ts {
		out[i] = tensors.FromFlatDataAndDimensions(tensors.MustCopyFlatData[float32](v), v.Shape().Dimensions...)
	}
	return out
}

// check rejects a state.json that cannot belong to a run of total updates.
func (sj *stateJSON) check(total int) error {
	switch {
	case sj.Step < 0 || sj.Step > total:
		return fmt.Errorf("step %d outside [0, %d]", sj.Step, total)
	case len(sj.Log) != sj.Step:
		return fmt.Errorf("log has %d entries for step %d", len(sj.Log), sj.Step)
	case sj.BestStep < 0 || sj.BestStep > sj.Step:
		return fmt.Errorf("best_step %d outside [0, %d]", sj.BestStep, sj.Step)
	case math.IsNaN(sj.BestLoss) || math.IsInf(sj.BestLoss, 0):
		return fmt.Errorf("best_loss is not a number")
	}
	return nil
}

// HasCheckpoint reports whether dir holds a checkpoint: false when there is no LATEST file
// (nothing was saved yet), an error when LATEST is there but broken.
func HasCheckpoint(dir string) (bool, error) {
	_, err := latest(dir)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}
