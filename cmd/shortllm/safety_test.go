package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shortllm/shortllm/internal/outdir"
	"github.com/shortllm/shortllm/internal/safetensors"
	"github.com/shortllm/shortllm/internal/testutil"
)

// treeDigest hashes every file (path and content) under dir, so a test can prove an input
// is byte-identical after a command.
func treeDigest(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(h, "%s %x\n", rel, sha256.Sum256(b))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// TestOutRule_ForceNeverDeletesInputs: the data-loss rows of issue 13. Every command that
// writes refuses an --out that is, contains or lies inside its input, even with --force,
// and --force never replaces a folder shortllm did not write.
func TestOutRule_ForceNeverDeletesInputs(t *testing.T) {
	root := t.TempDir()
	model := filepath.Join(root, "models", "s")
	copyDir(t, testutil.SharedDir(t, "models", "stories260K"), model)
	if err := os.WriteFile(filepath.Join(root, "models", "notes.txt"), []byte("unrelated"), 0o644); err != nil {
		t.Fatal(err)
	}
	user := filepath.Join(root, "photos")
	if err := os.MkdirAll(user, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(user, "cat.jpg"), []byte("meow"), 0o644); err != nil {
		t.Fatal(err)
	}
	data := testutil.SharedDir(t, "data", "alpaca", "alpaca_en_demo.json")
	before, userBefore := treeDigest(t, root), treeDigest(t, user)
	parent := filepath.Join(root, "models")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"retrain out = model", []string{"retrain", "--model", model, "--data", data, "--max-steps", "1", "--force", "--out", model}, "is the input"},
		{"retrain out = parent of model", []string{"retrain", "--model", model, "--data", data, "--max-steps", "1", "--force", "--out", parent}, "contains the input"},
		{"merge out = model", []string{"merge", "--model", model, "--adapter", filepath.Join(root, "a"), "--force", "--out", model}, "is the input"},
		{"merge out = parent of model", []string{"merge", "--model", model, "--adapter", filepath.Join(root, "a"), "--force", "--out", parent}, "contains the input"},
		{"prune out = user folder", []string{"prune", "--model", model, "--blocks", "1", "--force", "--out", user}, "not written by shortllm"},
		{"prune out inside model", []string{"prune", "--model", model, "--blocks", "1", "--out", filepath.Join(model, "p")}, "lies inside the input"},
		{"init out = parent of config", []string{"init", "--config", filepath.Join(model, "config.json"), "--force", "--out", parent}, "contains the input"},
		{"score out inside model", []string{"score", "--model", model, "--criterion", "magnitude", "--out", filepath.Join(model, "s.json")}, "lies inside the input"},
		{"eval out = data", []string{"eval", "ppl", "--model", model, "--data", data, "--out", data}, "is the input"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, errOut := cli(t, "", append(c.args, "--quiet")...)
			if code == 0 || !strings.Contains(errOut, c.want) || strings.Count(errOut, "\n") != 1 {
				t.Fatalf("exit %d, stderr %q; want one line with %q", code, errOut, c.want)
			}
		})
	}
	if treeDigest(t, root) != before || treeDigest(t, user) != userBefore {
		t.Fatal("a refused command changed the inputs or the user's folder")
	}
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err == nil {
			err = os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// startHolding starts the CLI in a subprocess and waits until it holds out's lock.
func startHolding(t *testing.T, out string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := retrainCommand(args...)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(outdir.LockPath(out)); err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(cmd.Process.Pid) {
			return cmd
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the first writer never took the lock of %s\n%s", out, logs.String())
	return nil
}

// TestOutRule_SecondWriterFailsAtOnce: the concurrency rows of issue 13. While one process
// writes an --out (or a pipeline run directory), a second writer fails at once with one line
// naming the first one's pid, and does not disturb it.
func TestOutRule_SecondWriterFailsAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs subprocesses")
	}
	stories := testutil.SharedDir(t, "models", "stories260K")
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	first := startHolding(t, out, "retrain", "--quiet", "--model", stories, "--out", out, "--max-steps", "30",
		"--data", testutil.SharedDir(t, "data", "alpaca", "alpaca_en_demo.json"), "--batch-size", "2", "--micro-batch-size", "2",
		"--seq-len", "64", "--step-delay", "300ms")
	want := "in use by pid " + strconv.Itoa(first.Process.Pid)
	for _, args := range [][]string{
		{"prune", "--model", stories, "--blocks", "1", "--out", out, "--force"},
		{"merge", "--model", stories, "--adapter", filepath.Join(dir, "adapter"), "--out", out, "--force"},
	} {
		start := time.Now()
		code, _, errOut := cli(t, "", args...)
		if code == 0 || !strings.Contains(errOut, want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%s: exit %d, stderr %q; want one line with %q", args[0], code, errOut, want)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s took %v to fail; want at once", args[0], d)
		}
	}
	first.Process.Kill()
	first.Wait()

	demo := demoModel(t)
	run := filepath.Join(dir, "run")
	pipe := startHolding(t, run, append(tinyPipeline(demo, run), "--stage-delay", "5s")...)
	want = "in use by pid " + strconv.Itoa(pipe.Process.Pid)
	for _, args := range [][]string{tinyPipeline(demo, run), {"report", run}} {
		code, _, errOut := cli(t, "", args...)
		if code == 0 || !strings.Contains(errOut, want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%s: exit %d, stderr %q; want one line with %q", args[0], code, errOut, want)
		}
	}
}

// nanModel copies stories260K with one NaN in block 0's down_proj: every activation after it
// is NaN, as in a checkpoint whose training diverged.
func nanModel(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "nan")
	copyDir(t, testutil.SharedDir(t, "models", "stories260K"), dir)
	path := filepath.Join(dir, "model.safetensors")
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var ts []safetensors.Tensor
	for _, info := range f.Tensors() {
		raw, err := f.ReadRaw(info.Name)
		if err != nil {
			t.Fatal(err)
		}
		if info.Name == "model.layers.0.mlp.down_proj.weight" {
			binary.LittleEndian.PutUint32(raw, math.Float32bits(float32(math.NaN())))
		}
		ts = append(ts, safetensors.Tensor{Name: info.Name, DType: info.DType, Shape: info.Shape, Data: raw})
	}
	f.Close()
	if err := safetensors.Write(path, ts, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestCLI_NoSilentWrongNumbers: the "silent wrong results" rows of issue 13. NaN weights,
// out-of-range --skip-blocks and unlabelled training data fail with one line naming where.
func TestCLI_NoSilentWrongNumbers(t *testing.T) {
	stories := testutil.SharedDir(t, "models", "stories260K")
	nan := nanModel(t)
	heldout := testutil.SharedDir(t, "data", "stories", "heldout.jsonl")
	zs := testutil.SharedDir(t, "data", "zeroshot")
	long := filepath.Join(t.TempDir(), "long.json")
	if err := os.WriteFile(long, []byte(`[{"instruction": "`+strings.Repeat("tell me a story ", 40)+`", "input": "", "output": "ok"}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, div := filepath.Join(t.TempDir(), "out"), filepath.Join(t.TempDir(), "div")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"ppl skip out of range", []string{"eval", "ppl", "--model", stories, "--data", heldout, "--skip-blocks", "9,-1", "--max-chunks", "1"}, "block 9 is outside 0..4"},
		{"zeroshot skip out of range", []string{"eval", "zeroshot", "--model", stories, "--data-dir", zs, "--tasks", "piqa", "--limit", "1", "--skip-blocks", "-1"}, "block -1 is outside 0..4"},
		{"score skip out of range", []string{"score", "--model", stories, "--criterion", "magnitude", "--skip-blocks", "5"}, "block 5 is outside 0..4"},
		{"ppl NaN weights", []string{"eval", "ppl", "--model", nan, "--data", heldout, "--max-chunks", "2", "--bos", "once"}, "chunk 0 of 2"},
		{"zeroshot NaN weights", []string{"eval", "zeroshot", "--model", nan, "--data-dir", zs, "--tasks", "piqa", "--limit", "1"}, "piqa item 0 choice 0"},
		{"score NaN weights", []string{"score", "--model", nan, "--criterion", "magnitude"}, "not finite"},
		{"cpt NaN weights", []string{"retrain", "--model", nan, "--out", out, "--mode", "cpt", "--data", heldout, "--max-steps", "2", "--seq-len", "64", "--batch-size", "2", "--micro-batch-size", "2"}, "step 1: loss is NaN"},
		{"cpt diverges after a checkpoint", []string{"retrain", "--model", stories, "--out", div, "--mode", "cpt", "--data", heldout, "--max-steps", "5", "--seq-len", "64",
			"--batch-size", "2", "--micro-batch-size", "2", "--lr", "1e30", "--eps", "1e-30", "--warmup-steps", "0", "--grad-clip", "0", "--save-every", "1"},
			"step 2: gradient norm is NaN; last good checkpoint: " + filepath.Join(div+".ckpt", "cpt", "step-00000001")},
		{"lora all labels masked", []string{"retrain", "--model", stories, "--out", out, "--data", long, "--seq-len", "32", "--max-steps", "1"}, "none of the 1 examples has a label token"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, errOut := cli(t, "", append(c.args, "--quiet")...)
			if code == 0 || !strings.Contains(errOut, c.want) || strings.Count(errOut, "\n") != 1 || strings.Contains(errOut, "json: unsupported") {
				t.Fatalf("exit %d, stdout %q, stderr %q; want one line with %q", code, stdout, errOut, c.want)
			}
		})
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a failed retrain left %s", out)
	}
}

// TestCLI_FlagRangesFailBeforeWork: the "panics" and "minor" rows of issue 13: every bad
// count or probability is a one-line error naming the flag, before any model is loaded
// (the model path here does not exist, so a check that came after loading would say so).
func TestCLI_FlagRangesFailBeforeWork(t *testing.T) {
	none := filepath.Join(t.TempDir(), "no-such-model")
	demo := demoModel(t)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"generate", "--model", none, "--max-new-tokens", "-5"}, "--max-new-tokens -5"},
		{[]string{"generate", "--model", none, "--temperature", "-1"}, "--temperature -1"},
		{[]string{"generate", "--model", none, "--top-p", "2"}, "--top-p 2"},
		{[]string{"generate", "--model", none, "--top-k", "-3"}, "--top-k -3"},
		{[]string{"eval", "speed", "--model", none, "--batch-sizes", "-1"}, "--batch-sizes: -1"},
		{[]string{"eval", "speed", "--model", none, "--warmup", "-1"}, "--warmup -1"},
		{[]string{"eval", "zeroshot", "--model", none, "--data-dir", none, "--batch-size", "0"}, "--batch-size 0"},
		{[]string{"eval", "ppl", "--model", none, "--data", none, "--batch-size", "0"}, "--batch-size 0"},
		{[]string{"score", "--model", none, "--batch-size", "-1"}, "--batch-size -1: want at least 1"},
		{[]string{"prune", "--model", none, "--out", none + "2", "--num-blocks", "0"}, "--num-blocks 0"},
		{[]string{"retrain", "--model", none, "--out", none + "2", "--data", none, "--warmup-steps", "-1"}, "--warmup-steps -1"},
		{[]string{"retrain", "--model", none, "--out", none + "2", "--data", none, "--lora-dropout", "1.5"}, "--lora-dropout 1.5"},
		{tinyPipeline(demo, filepath.Join(t.TempDir(), "run"), "--speed-warmup", "-1"), "speed-warmup -1"},
		{tinyPipeline(demo, filepath.Join(t.TempDir(), "run"), "--limit", "-2"), "limit -2"},
		{tinyPipeline(demo, filepath.Join(t.TempDir(), "run"), "--max-chunks", "-1"), "max-chunks -1"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args[:2], " ")+" "+c.want, func(t *testing.T) {
			code, _, errOut := cli(t, "", c.args...)
			if code == 0 || !strings.Contains(errOut, c.want) || strings.Count(errOut, "\n") != 1 || strings.Contains(errOut, "no-such-model") && !strings.Contains(errOut, c.want) {
				t.Fatalf("exit %d, stderr %q; want one line with %q", code, errOut, c.want)
			}
		})
	}
}

// TestCLI_InputsThatAreNotFiles: the "hangs" and "messages" rows: a FIFO shard, a config or
// tokenizer that is /dev/zero, a FIFO data file and an alpaca file that is one object fail
// at once with one line naming the file.
func TestCLI_InputsThatAreNotFiles(t *testing.T) {
	stories := testutil.SharedDir(t, "models", "stories260K")
	root := t.TempDir()
	variant := func(name, file, target string) string {
		dir := filepath.Join(root, name)
		copyDir(t, stories, dir)
		os.Remove(filepath.Join(dir, file))
		if target == "fifo" {
			if err := syscall.Mkfifo(filepath.Join(dir, file), 0o644); err != nil {
				t.Skip("no mkfifo:", err)
			}
		} else if err := os.Symlink(target, filepath.Join(dir, file)); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	fifoShard := variant("fifo", "model.safetensors", "fifo")
	zeroConfig := variant("zeroconfig", "config.json", "/dev/zero")
	zeroTok := variant("zerotok", "tokenizer.json", "/dev/zero")
	os.Remove(filepath.Join(zeroTok, "tokenizer.model"))
	fifoData := filepath.Join(root, "data.jsonl")
	syscall.Mkfifo(fifoData, 0o644)
	object := filepath.Join(root, "alpaca.json")
	os.WriteFile(object, []byte(`{"instruction": "Say hi", "input": "", "output": "hi"}`), 0o644)
	heldout := testutil.SharedDir(t, "data", "stories", "heldout.jsonl")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"FIFO shard", []string{"generate", "--model", fifoShard, "--max-new-tokens", "2"}, "a FIFO, want a regular file"},
		{"config /dev/zero", []string{"generate", "--model", zeroConfig, "--max-new-tokens", "2"}, "a device, want a regular file"},
		{"tokenizer /dev/zero", []string{"eval", "ppl", "--model", zeroTok, "--data", heldout}, "a device, want a regular file"},
		{"FIFO data", []string{"eval", "ppl", "--model", stories, "--data", fifoData}, "a FIFO, want a regular file"},
		{"alpaca object", []string{"retrain", "--model", stories, "--out", filepath.Join(root, "o"), "--data", object, "--max-steps", "1"}, "a JSON object with keys [input instruction output]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			type res struct {
				code   int
				errOut string
			}
			done := make(chan res, 1)
			go func() {
				code, _, errOut := cli(t, "", append(c.args, "--quiet")...)
				done <- res{code, errOut}
			}()
			select {
			case r := <-done:
				if r.code == 0 || !strings.Contains(r.errOut, c.want) || strings.Count(r.errOut, "\n") != 1 {
					t.Fatalf("exit %d, stderr %q; want one line with %q", r.code, r.errOut, c.want)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("hangs")
			}
		})
	}
}

// TestCLI_UnknownCommandOneLine: a typo gets one readable line and a non-zero exit.
func TestCLI_UnknownCommandOneLine(t *testing.T) {
	for args, want := range map[string]string{
		"evl":      `unknown command "evl" for "shortllm"; did you mean eval?`,
		"eval pll": `unknown command "pll" for "shortllm eval"`,
	} {
		code, _, errOut := cli(t, "", strings.Fields(args)...)
		if code == 0 || strings.TrimSpace(errOut) != "shortllm: "+want {
			t.Errorf("%s: exit %d, stderr %q; want %q", args, code, errOut, want)
		}
	}
}

// TestPrune_ScoresOfOtherWeightsRefused: a scores file computed for a checkpoint with the
// same config but other weights (here: a random init of stories260K's config) is refused;
// the model it was computed for is accepted.
func TestPrune_ScoresOfOtherWeightsRefused(t *testing.T) {
	stories := testutil.SharedDir(t, "models", "stories260K")
	dir := t.TempDir()
	scores := filepath.Join(dir, "scores.json")
	if code, _, errOut := cli(t, "", "score", "--quiet", "--model", stories, "--criterion", "magnitude", "--out", scores); code != 0 {
		t.Fatal(errOut)
	}
	other := filepath.Join(dir, "other")
	if code, _, errOut := cli(t, "", "init", "--config", filepath.Join(stories, "config.json"), "--tokenizer", stories, "--out", other, "--seed", "3"); code != 0 {
		t.Fatal(errOut)
	}
	code, _, errOut := cli(t, "", "prune", "--model", other, "--out", filepath.Join(dir, "p1"), "--num-blocks", "1", "--no-plus", "--scores", scores)
	if code == 0 || !strings.Contains(errOut, "computed for other weights") || strings.Count(errOut, "\n") != 1 {
		t.Fatalf("exit %d, stderr %q; want one line 'computed for other weights'", code, errOut)
	}
	if code, _, errOut := cli(t, "", "prune", "--model", stories, "--out", filepath.Join(dir, "p2"), "--num-blocks", "1", "--no-plus", "--scores", scores); code != 0 {
		t.Fatalf("the scored model itself: %s", errOut)
	}
}

// TestRetrain_ResumeAfterFinishedRun: the README's second command (--resume) after the run
// finished reports the finished run instead of failing with "exists".
func TestRetrain_ResumeAfterFinishedRun(t *testing.T) {
	stories := testutil.SharedDir(t, "models", "stories260K")
	out := filepath.Join(t.TempDir(), "cpt")
	args := []string{"--model", stories, "--out", out, "--mode", "cpt", "--data", testutil.SharedDir(t, "data", "stories", "calib10x128.jsonl"),
		"--seq-len", "64", "--batch-size", "2", "--micro-batch-size", "2", "--max-steps", "2", "--save-every", "1"}
	if code, _, errOut := retrainRun(t, args...); code != 0 {
		t.Fatal(errOut)
	}
	before := treeDigest(t, out)
	code, stdout, errOut := retrainRun(t, append(args, "--resume")...)
	if code != 0 || !strings.Contains(stdout, "already finished") || !strings.Contains(stdout, "cpt: 2 steps") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, errOut)
	}
	if treeDigest(t, out) != before {
		t.Error("--resume of a finished run changed its output")
	}
}
