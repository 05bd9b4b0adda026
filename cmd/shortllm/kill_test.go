package main

import (
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shortllm/shortllm/internal/testutil"
)

// TestKill9_RandomPoints is issue 13's crash test: prune, retrain (--save-every 1), merge
// and a pipeline are killed with SIGKILL at random moments. After every kill the input is
// byte-identical, --out is absent or complete (equal to an uninterrupted run's), and the
// next run completes, leaves no temporary or lock file, and (retrain) resumes to weights
// bit-identical to the uninterrupted run. SHORTLLM_KILL_ITERS sets the kills per command
// (default 3; the full check is 20).
func TestKill9_RandomPoints(t *testing.T) {
	if testing.Short() {
		t.Skip("runs subprocesses")
	}
	iters := 3
	if v, err := strconv.Atoi(os.Getenv("SHORTLLM_KILL_ITERS")); err == nil && v > 0 {
		iters = v
	}
	root := t.TempDir()
	model := filepath.Join(root, "in", "stories260K")
	copyDir(t, testutil.SharedDir(t, "models", "stories260K"), model)
	text := testutil.SharedDir(t, "data", "stories", "calib10x128.jsonl")
	adapter := filepath.Join(root, "in", "adapter")
	if code, _, errOut := retrainRun(t, "--model", model, "--out", adapter, "--data", testutil.SharedDir(t, "data", "stories", "lora_batch4x128.json"),
		"--batch-size", "4", "--max-steps", "1", "--lr", "1e-2", "--warmup-steps", "0"); code != 0 {
		t.Fatal(errOut)
	}
	inputs := filepath.Join(root, "in")
	demo, err := filepath.Abs(demoModel(t))
	if err != nil {
		t.Fatal(err)
	}
	retrainArgs := func(out string) []string {
		return []string{"retrain", "--quiet", "--model", model, "--out", out, "--mode", "cpt", "--data", text, "--seq-len", "64",
			"--batch-size", "2", "--micro-batch-size", "2", "--max-steps", "4", "--warmup-steps", "1", "--save-every", "1", "--seed", "3"}
	}
	cmds := []struct {
		name string
		args func(out string) []string
		// compare lists the files whose bytes must equal the uninterrupted run's.
		compare []string
	}{
		{"prune", func(out string) []string {
			return []string{"prune", "--quiet", "--model", model, "--out", out, "--blocks", "1,3", "--force"}
		}, []string{"model.safetensors", "config.json", "shortllm_prune.json"}},
		{"merge", func(out string) []string {
			return []string{"merge", "--quiet", "--model", model, "--adapter", adapter, "--out", out, "--force"}
		}, []string{"model.safetensors", "config.json"}},
		{"retrain", retrainArgs, []string{"model.safetensors", "config.json"}},
		{"pipeline", func(out string) []string {
			return []string{"pipeline", "--quiet", "--config", filepath.Join(demo, "pipeline.yaml"), "--out", out, "--criteria", "ppl",
				"--retrain", "none,lora", "--retrain-steps", "2", "--max-chunks", "2", "--calib-samples", "4", "--speed=false", "--ratios", "20%"}
		}, nil},
	}
	for _, c := range cmds {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			ref := filepath.Join(dir, "ref")
			start := time.Now()
			if out, err := retrainCommand(c.args(ref)...).CombinedOutput(); err != nil {
				t.Fatalf("uninterrupted run: %v\n%s", err, out)
			}
			took := time.Since(start)
			want := outputDigests(t, ref, c.compare)
			inBefore, demoBefore := treeDigest(t, inputs), treeDigest(t, demo)
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 13))
			out := filepath.Join(dir, "out")
			killed, dirty := 0, 0 // dirty: the kill left temporaries or a lock for the next run to clean
			for i := range iters {
				// Mostly before the uninterrupted run's end; the tail covers a kill at the
				// very end (after the rename, before the exit).
				delay := time.Duration(rng.Float64() * 1.05 * float64(took))
				if killAfter(t, retrainCommand(c.args(out)...), delay) {
					killed++
				}
				if len(leftovers(t, dir)) > 0 {
					dirty++
				}
				if treeDigest(t, inputs) != inBefore || treeDigest(t, demo) != demoBefore {
					t.Fatalf("iteration %d: the input changed after a kill at %v", i, delay)
				}
				if c.name != "pipeline" {
					if _, err := os.Stat(out); err == nil && outputDigests(t, out, c.compare) != want {
						t.Fatalf("iteration %d: --out exists but is not complete after a kill at %v", i, delay)
					}
				}
				finishArgs := c.args(out)
				if c.name == "retrain" {
					finishArgs = append(finishArgs, "--resume")
					if _, err := os.Stat(out + ".ckpt"); err != nil {
						if _, err := os.Stat(out); err != nil {
							finishArgs = finishArgs[:len(finishArgs)-1] // killed before the first checkpoint
						}
					}
				}
				if msg, err := retrainCommand(finishArgs...).CombinedOutput(); err != nil {
					t.Fatalf("iteration %d: the run after a kill at %v failed: %v\n%s", i, delay, err, msg)
				}
				if got := outputDigests(t, out, c.compare); got != want {
					t.Fatalf("iteration %d: the run after a kill at %v differs from the uninterrupted run", i, delay)
				}
				if left := leftovers(t, dir); len(left) > 0 {
					t.Fatalf("iteration %d: left %v after the next run", i, left)
				}
				if c.name == "retrain" || c.name == "pipeline" {
					os.RemoveAll(out) // the next iteration starts fresh (prune and merge replace it)
				}
			}
			t.Logf("%s: %d iterations, %d killed mid-run, %d of them leaving temporaries or a lock (uninterrupted run %v)",
				c.name, iters, killed, dirty, took.Round(time.Millisecond))
		})
	}
}

// killAfter starts cmd, SIGKILLs it after delay and reports whether it was still running.
func killAfter(t *testing.T, cmd *exec.Cmd, delay time.Duration) bool {
	t.Helper()
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run failed before it was killed: %v\n%s", err, logs.String())
		}
		return false
	case <-time.After(delay):
		cmd.Process.Kill()
		<-done
		return true
	}
}

// outputDigests hashes the named files of an output (nil: every result the pipeline keeps,
// which excludes timings: scores, eval results and weights).
func outputDigests(t *testing.T, dir string, names []string) string {
	t.Helper()
	var b strings.Builder
	if names == nil {
		filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
			if err == nil && (e.Name() == "scores.json" || e.Name() == "result.json" || strings.HasSuffix(e.Name(), ".safetensors")) {
				rel, _ := filepath.Rel(dir, p)
				data, _ := os.ReadFile(p)
				b.WriteString(rel + " " + strconv.Itoa(len(data)) + " " + string(data) + "\n")
			}
			return nil
		})
		return b.String()
	}
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return "missing " + n
		}
		b.WriteString(n + " " + string(data) + "\n")
	}
	return b.String()
}

// leftovers lists temporary, lock and checkpoint entries anywhere under dir.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	var left []string
	filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err == nil && (strings.Contains(e.Name(), ".tmp-") || strings.HasSuffix(e.Name(), ".lock") ||
			strings.HasSuffix(e.Name(), ".ckpt") || strings.HasSuffix(e.Name(), ".incomplete")) {
			left = append(left, p)
		}
		return nil
	})
	return left
}
