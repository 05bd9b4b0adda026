package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shortllm/shortllm/internal/testutil"
)

// TestRetrainHelperProcess is not a test: the kill -9 test re-executes the test binary with
// SHORTLLM_RETRAIN_HELPER=1 to run the CLI in a process it can kill.
func TestRetrainHelperProcess(t *testing.T) {
	if os.Getenv("SHORTLLM_RETRAIN_HELPER") != "1" {
		t.Skip("helper process for TestRetrain_KillResume")
	}
	args := os.Args
	for i, a := range args {
		if a == "--" {
			args = args[i+1:]
			break
		}
	}
	os.Exit(execute(args, os.Stdin, os.Stdout, os.Stderr))
}

func retrainCommand(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestRetrainHelperProcess$", "--"}, args...)...)
	cmd.Env = append(os.Environ(), "SHORTLLM_RETRAIN_HELPER=1")
	return cmd
}

func retrainRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := execute(append([]string{"retrain", "--quiet"}, args...), nil, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestRetrain_KillResume kills a training process with SIGKILL after its first checkpoint,
// resumes it, and checks the final weights equal an uninterrupted run's bit for bit — for
// LoRA (shuffled instructions, dropout, validation with best-model selection) and for CPT
// (packed text, weight decay, clipping, cosine schedule). It also checks that the killed run
// left no --out and that its checkpoint refuses another model.
func TestRetrain_KillResume(t *testing.T) {
	if testing.Short() {
		t.Skip("runs training subprocesses")
	}
	stories := testutil.SharedDir(t, "models", "stories260K")
	cases := []struct {
		name, weights string
		args          []string
	}{
		{"lora", "adapter_model.safetensors", []string{"--mode", "lora", "--data", testutil.SharedDir(t, "data", "alpaca", "alpaca_en_demo.json"),
			"--seq-len", "128", "--batch-size", "4", "--micro-batch-size", "2", "--lora-dropout", "0.1", "--lora-r", "4",
			"--val-size", "4", "--eval-every", "2", "--warmup-steps", "2", "--lr", "1e-3"}},
		{"cpt", "model.safetensors", []string{"--mode", "cpt", "--data", testutil.SharedDir(t, "data", "stories", "calib10x128.jsonl"),
			"--seq-len", "64", "--batch-size", "4", "--micro-batch-size", "2", "--schedule", "cosine", "--warmup-steps", "1", "--grad-clip", "0.5"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			common := append([]string{"retrain", "--quiet", "--model", stories, "--max-steps", "6", "--save-every", "2", "--seed", "7"}, c.args...)
			whole, resumed := filepath.Join(dir, "whole"), filepath.Join(dir, "resumed")
			if out, err := retrainCommand(append(common, "--out", whole)...).CombinedOutput(); err != nil {
				t.Fatalf("uninterrupted run: %v\n%s", err, out)
			}
			killAfterCheckpoint(t, retrainCommand(append(common, "--out", resumed, "--step-delay", "400ms")...), resumed)
			if _, err := os.Stat(resumed); !os.IsNotExist(err) {
				t.Fatalf("killed run left %s (%v)", resumed, err)
			}
			code, _, errOut := retrainRunRaw(append(common, "--out", resumed, "--resume", "--model", testutil.SharedDir(t, "models", "deep16"))...)
			if code == 0 || !strings.Contains(errOut, "another model") {
				t.Fatalf("resume on deep16: code %d, stderr %q; want an 'another model' error", code, errOut)
			}
			if out, err := retrainCommand(append(common, "--out", resumed, "--resume")...).CombinedOutput(); err != nil {
				t.Fatalf("resumed run: %v\n%s", err, out)
			}
			var log struct {
				ResumedFrom int `json:"resumed_from_step"`
			}
			if err := json.Unmarshal(readFile(t, filepath.Join(resumed, "train_log.json")), &log); err != nil || log.ResumedFrom < 2 {
				t.Fatalf("resumed run did not continue a checkpoint (resumed_from_step %d, %v)", log.ResumedFrom, err)
			}
			a, b := readFile(t, filepath.Join(whole, c.weights)), readFile(t, filepath.Join(resumed, c.weights))
			if !bytes.Equal(a, b) {
				t.Fatalf("%s after kill + resume differs from the uninterrupted run", c.weights)
			}
			if _, err := os.Stat(resumed + ".ckpt"); !os.IsNotExist(err) {
				t.Errorf("checkpoint dir not removed after success: %v", err)
			}
		})
	}
}

func retrainRunRaw(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := execute(args, nil, &out, &errOut)
	return code, out.String(), errOut.String()
}

// killAfterCheckpoint starts cmd, waits for the first checkpoint of out and SIGKILLs it.
func killAfterCheckpoint(t *testing.T, cmd *exec.Cmd, out string) {
	t.Helper()
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	matches := func() bool {
		m, _ := filepath.Glob(filepath.Join(out+".ckpt", "*", "LATEST"))
		return len(m) > 0
	}
	deadline := time.Now().Add(60 * time.Second)
	for !matches() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if !matches() {
		t.Fatalf("no checkpoint appeared before the deadline (exit %v)\n%s", err, logs.String())
	}
	if err == nil {
		t.Fatalf("run finished before it was killed; the test proves nothing\n%s", logs.String())
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRetrain_BadInputWritesNothing: each bad input fails with one line naming the problem,
// and leaves neither --out nor a temporary directory behind.
func TestRetrain_BadInputWritesNothing(t *testing.T) {
	stories := testutil.SharedDir(t, "models", "stories260K")
	alpaca := testutil.SharedDir(t, "data", "alpaca", "alpaca_en_demo.json")
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	empty := write("empty.json", "[]")
	noOutput := write("noout.jsonl", `{"instruction": "a", "input": ""}`)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"empty dataset", []string{"--data", empty}, "empty.json: no training examples"},
		{"missing field", []string{"--data", noOutput}, `noout.jsonl: record 0: missing field "output"`},
		{"seq-len beyond context", []string{"--data", alpaca, "--seq-len", "1024"}, "max_position_embeddings (512)"},
		{"unknown target module", []string{"--data", alpaca, "--target-modules", "q_proj,qkv_proj"}, `"qkv_proj" matches no linear layer`},
		{"resume without checkpoint", []string{"--data", alpaca, "--resume"}, "no checkpoint"},
		{"cpt+lora without lora data", []string{"--data", alpaca, "--mode", "cpt+lora"}, "--lora-data"},
		{"bad mode", []string{"--data", alpaca, "--mode", "qlora"}, `mode "qlora"`},
		{"bad batch", []string{"--data", alpaca, "--batch-size", "6", "--micro-batch-size", "4"}, "not a multiple"},
		{"bad betas", []string{"--data", alpaca, "--betas", "0.9"}, "--betas"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(dir, "out")
			code, _, errOut := retrainRun(t, append([]string{"--model", stories, "--out", out, "--max-steps", "1"}, c.args...)...)
			if code == 0 || !strings.Contains(errOut, c.want) || strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
				t.Fatalf("code %d, stderr %q; want one line containing %q", code, errOut, c.want)
			}
			left, _ := filepath.Glob(filepath.Join(dir, "out*"))
			hidden, _ := filepath.Glob(filepath.Join(dir, ".out*"))
			if left = append(left, hidden...); len(left) > 0 {
				t.Fatalf("failed run left %v", left)
			}
		})
	}
}

// TestMerge_MatchesRetrainMerge: `retrain --merge` and `merge` write the same merged weights,
// and they differ from the base model's.
func TestMerge_MatchesRetrainMerge(t *testing.T) {
	stories := testutil.SharedDir(t, "models", "stories260K")
	dir := t.TempDir()
	out := filepath.Join(dir, "lora")
	code, _, errOut := retrainRun(t, "--model", stories, "--out", out, "--data", testutil.SharedDir(t, "data", "stories", "lora_batch4x128.json"),
		"--batch-size", "4", "--max-steps", "2", "--warmup-steps", "0", "--lr", "1e-2", "--merge")
	if code != 0 {
		t.Fatalf("retrain: %s", errOut)
	}
	merged := filepath.Join(dir, "merged")
	var o, e bytes.Buffer
	if code := execute([]string{"merge", "--model", stories, "--adapter", out, "--out", merged}, nil, &o, &e); code != 0 {
		t.Fatalf("merge: %s", e.String())
	}
	a, b := readFile(t, filepath.Join(out, "merged", "model.safetensors")), readFile(t, filepath.Join(merged, "model.safetensors"))
	if !bytes.Equal(a, b) {
		t.Fatal("merge output differs from retrain --merge")
	}
	if bytes.Equal(a, readFile(t, filepath.Join(stories, "model.safetensors"))) {
		t.Fatal("merged model equals the base model: the adapter did nothing")
	}
}

// CPT in bf16 through the verb: remat on and off train the same step (to bf16 rounding of
// the tied embedding's two gradients), the output keeps the checkpoint's stored dtype (F32:
// written from the float32 master), and train_log.json says bf16 work happened.
func TestRetrain_CPTBF16Remat(t *testing.T) {
	stories := testutil.SharedDir(t, "models", "stories260K")
	batch := testutil.SharedDir(t, "data", "stories", "lora_batch4x128.json")
	loss := map[string]float64{}
	for _, remat := range []string{"off", "on"} {
		out := filepath.Join(t.TempDir(), "cpt")
		code, stdout, errOut := retrainRun(t, "--model", stories, "--out", out, "--mode", "cpt", "--data", batch, "--max-steps", "1",
			"--batch-size", "4", "--micro-batch-size", "2", "--seq-len", "128", "--warmup-steps", "0", "--dtype", "bf16", "--remat", remat, "--json")
		if code != 0 {
			t.Fatalf("remat %s: exit %d: %s", remat, code, errOut)
		}
		var res struct {
			Logs map[string]struct {
				Steps []struct{ Loss float64 }
			}
		}
		if err := json.Unmarshal([]byte(stdout), &res); err != nil || len(res.Logs["cpt"].Steps) != 1 {
			t.Fatalf("remat %s: %v: %s", remat, err, stdout)
		}
		loss[remat] = res.Logs["cpt"].Steps[0].Loss
		var rep struct{ Tensors []struct{ DType string } }
		code, insp, errOut := cli(t, "", "inspect", "--model", out, "--json")
		if code != 0 || json.Unmarshal([]byte(insp), &rep) != nil {
			t.Fatalf("inspect %s: exit %d: %s", out, code, errOut)
		}
		if !strings.Contains(insp, `"F32"`) || strings.Contains(insp, `"BF16"`) {
			t.Errorf("remat %s: the F32 checkpoint was not written as F32 (from the master): %.300s", remat, insp)
		}
	}
	if d := loss["on"] - loss["off"]; d > 1e-4 || d < -1e-4 {
		t.Errorf("bf16 CPT loss with remat %.6f, without %.6f", loss["on"], loss["off"])
	}
	code, _, errOut := retrainRun(t, "--model", stories, "--out", filepath.Join(t.TempDir(), "x"), "--mode", "cpt", "--data", batch, "--remat", "sometimes")
	if code == 0 || !strings.Contains(errOut, "--remat") {
		t.Errorf("--remat sometimes: exit %d, %q", code, errOut)
	}
}
