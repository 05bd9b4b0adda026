package pipeline

// Stages keep their outputs under RUN_DIR/<kind>/<label>-<hash>, where hash covers the
// stage's options and its inputs' identities (the parent stage's hash, data file digests).
// stage.json is written last: a directory without it is an interrupted stage and is redone,
// one with it is finished and reused. Changing a setting changes the hash, so old results
// are never mistaken for new ones, and adding a ratio only adds stages.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/shortllm/shortllm/internal/atomicfile"
)

// StageFile marks a finished stage.
const StageFile = "stage.json"

// Stage names a unit of work and the inputs that determine its result.
type Stage struct {
	Kind  string `json:"kind"`  // score, prune, retrain, eval, speed
	Label string `json:"label"` // readable part of the directory name
	Hash  string `json:"hash"`  // short hash of Key
	Key   any    `json:"key"`   // everything the result depends on
	Dir   string `json:"dir"`   // relative to the run directory
}

// StageRecord is stage.json.
type StageRecord struct {
	Stage
	Started     time.Time `json:"started"`
	Finished    time.Time `json:"finished"`
	Seconds     float64   `json:"seconds"`
	ToolVersion string    `json:"tool_version"`
}

func newStage(kind, label string, key any) Stage {
	data, err := json.Marshal(key)
	if err != nil {
		panic(fmt.Sprintf("stage key %T: %v", key, err)) // keys are plain structs: a bug
	}
	sum := sha256.Sum256(append([]byte(kind+"\x00"), data...))
	h := hex.EncodeToString(sum[:])[:12]
	return Stage{Kind: kind, Label: label, Hash: h, Key: key, Dir: filepath.Join(kind, label+"-"+h)}
}

// done reports whether the stage finished in an earlier (or this) run.
func done(runDir string, s Stage) bool {
	_, err := readStageRecord(filepath.Join(runDir, s.Dir))
	return err == nil
}

func readStageRecord(dir string) (*StageRecord, error) {
	data, err := os.ReadFile(filepath.Join(dir, StageFile))
	if err != nil {
		return nil, err
	}
	var r StageRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, StageFile), err)
	}
	return &r, nil
}

// runStage runs work in the stage's directory unless it has finished before. A leftover
// directory of an interrupted attempt is removed first, so work always starts clean.
func (r *runner) runStage(s Stage, work func(dir string) error) error {
	dir := filepath.Join(r.cfg.Out, s.Dir)
	if done(r.cfg.Out, s) {
		r.log.Reused = append(r.log.Reused, s.Dir)
		fmt.Fprintf(r.notices, "reuse  %s\n", s.Dir)
		return nil
	}
	fmt.Fprintf(r.notices, "run    %s\n", s.Dir)
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	start := time.Now()
	if err := work(dir); err != nil {
		return fmt.Errorf("stage %s: %w", s.Dir, err)
	}
	rec := StageRecord{Stage: s, Started: start, Finished: time.Now(), Seconds: time.Since(start).Seconds(), ToolVersion: r.version}
	if err := writeJSON(filepath.Join(dir, StageFile), rec); err != nil {
		return err
	}
	r.log.Ran = append(r.log.Ran, s.Dir)
	if r.AfterStage != nil {
		r.AfterStage(s.Dir)
	}
	return nil
}

// writeJSON writes v as indented JSON via a temp file + rename.
func writeJSON(path string, v any) error { return atomicfile.WriteJSON(path, v) }

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// fileDigest is a data file's identity in stage keys: its content hash, so a moved copy is
// the same input and an edited file is a different one. "" stays "".
func fileDigest(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// modelDigest identifies a model directory by the content of its config and weight files.
// Reading the weights costs one pass over them per run; names and mtimes alone would tell a
// copied checkpoint from the original and miss an in-place rewrite.
func modelDigest(dir string) (string, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.safetensors"))
	if err != nil {
		return "", err
	}
	sort.Strings(names)
	h := sha256.New()
	for _, p := range append([]string{filepath.Join(dir, "config.json")}, names...) {
		d, err := fileDigest(p)
		if err != nil {
			return "", fmt.Errorf("model %s: %w", dir, err)
		}
		fmt.Fprintf(h, "%s %s\n", filepath.Base(p), d)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
