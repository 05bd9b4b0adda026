package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shortllm/shortllm/internal/testutil"
)

// cli runs the command line with stdin and returns exit code, stdout and stderr.
func cli(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := execute(args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestGenerate_Stories260KGreedyText(t *testing.T) {
	dir := testutil.SharedDir(t, "models", "stories260K")
	want, err := os.ReadFile(testutil.SharedDir(t, "goldens", "stories260K.greedy200.txt"))
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := cli(t, "", "generate", "--model", dir, "--max-new-tokens", "200", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var doc struct {
		PromptIDs []int  `json:"prompt_ids"`
		IDs       []int  `json:"ids"`
		Text      string `json:"text"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("not one JSON document: %v\n%s", err, out)
	}
	if len(doc.PromptIDs) != 1 || doc.PromptIDs[0] != 1 || len(doc.IDs) != 200 {
		t.Errorf("prompt %v, %d generated ids; want [1] and 200", doc.PromptIDs, len(doc.IDs))
	}
	if doc.Text != string(want) {
		t.Errorf("text differs from llama2.c's expected output:\n got %q\nwant %q", doc.Text, want)
	}
	// Plain output streams the same text.
	code, out, _ = cli(t, "", "generate", "--model", dir, "--max-new-tokens", "200")
	if code != 0 || strings.TrimSuffix(out, "\n") != string(want) {
		t.Errorf("streamed text differs (exit %d):\n%q", code, out)
	}
}

func TestGenerate_SamplingIsSeeded(t *testing.T) {
	dir := testutil.SharedDir(t, "models", "stories260K")
	args := []string{"generate", "--model", dir, "--prompt", "Lily", "--temperature", "0.9", "--top-p", "0.9", "--top-k", "40", "--seed", "7", "--max-new-tokens", "20", "--json"}
	_, a, _ := cli(t, "", args...)
	_, b, _ := cli(t, "", args...)
	args[len(args)-4] = "8"
	_, c, _ := cli(t, "", args...)
	if a != b {
		t.Errorf("same seed, different output:\n%s\n%s", a, b)
	}
	if a == c {
		t.Errorf("different seeds gave identical samples: %s", a)
	}
}

func TestTokenize_RoundTrip(t *testing.T) {
	dir := testutil.SharedDir(t, "tokenizers", "llama3")
	code, out, errOut := cli(t, "Hello, world! Ünïcödé", "tokenize", "--model", dir, "--json", "-")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.HasPrefix(out, `{"ids":[128000,`) {
		t.Errorf("tokenize --json: %s", out)
	}
	code, out, errOut = cli(t, out, "detokenize", "--model", dir, "-")
	if code != 0 || out != "Hello, world! Ünïcödé\n" {
		t.Errorf("detokenize: exit %d, %q %s", code, out, errOut)
	}
}

func TestCLI_BadInputOneLineErrors(t *testing.T) {
	stories := testutil.SharedDir(t, "models", "stories260K")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"missing model dir", []string{"generate", "--model", "/nonexistent/x"}, "no such directory"},
		{"prompt and ids", []string{"generate", "--model", stories, "--prompt", "a", "--prompt-ids", "1"}, "either --prompt or --prompt-ids"},
		{"id outside vocab", []string{"generate", "--model", stories, "--prompt-ids", "1,9999"}, "outside the vocabulary"},
		{"too long", []string{"generate", "--model", stories, "--max-new-tokens", "600"}, "max_position_embeddings"},
		{"detok bad id", []string{"detokenize", "--model", stories, "1,x"}, `"x" is not an integer`},
		{"unknown backend", []string{"--backend", "tpu", "generate", "--model", stories}, `unknown backend`},
		{"ppl empty file", []string{"eval", "ppl", "--model", stories, "--data", emptyFile(t)}, "no text in data file"},
		{"ppl device", []string{"eval", "ppl", "--model", stories, "--data", os.DevNull}, "a device, want a regular file"},
		{"ppl seq too long", []string{"eval", "ppl", "--model", stories, "--data", testutil.SharedDir(t, "data", "ptb", "ptb.valid.txt"), "--seq-len", "1024"}, "max_position_embeddings"},
		{"unknown task", []string{"eval", "zeroshot", "--model", stories, "--data-dir", testutil.SharedDir(t, "data", "zeroshot"), "--tasks", "mmlu"}, "mmlu"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := cli(t, "", c.args...)
			if code == 0 {
				t.Fatalf("exit 0, stdout %q", out)
			}
			if strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, c.want) {
				t.Errorf("stderr %q: want one line mentioning %q", errOut, c.want)
			}
		})
	}
}

// TestBackend_XLAFallsBackToGo: asking for a plugin that is not there prints one notice and
// still runs.
func TestBackend_XLAFallsBackToGo(t *testing.T) {
	dir := testutil.SharedDir(t, "models", "stories260K")
	code, out, errOut := cli(t, "", "--backend", "xla:/nonexistent/pjrt_plugin.so", "generate", "--model", dir, "--max-new-tokens", "3", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "using the pure-Go backend") {
		t.Errorf("want one fallback notice on stderr, got %q", errOut)
	}
	if !strings.Contains(out, `"ids":[403,407,261]`) {
		t.Errorf("fallback run output: %s", out)
	}
}

func TestEvalSpeed_JSONShape(t *testing.T) {
	a := testutil.SharedDir(t, "models", "stories260K")
	b := testutil.SharedDir(t, "models", "deep16")
	code, out, errOut := cli(t, "", "eval", "speed", "--model", b, "--compare", a, "--batch-sizes", "1,2",
		"--prompt-len", "8", "--new-tokens", "4", "--runs", "2", "--warmup", "1", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rep speedReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Models) != 2 || len(rep.Models[1].Points) != 2 || rep.Models[0].RatioToFirst[0] != 1 {
		t.Fatalf("report shape: %+v", rep)
	}
	for _, m := range rep.Models {
		for _, p := range m.Points {
			if p.LatencyS <= 0 || p.Throughput <= 0 || p.PeakMemMB <= 0 {
				t.Errorf("%s batch %d: latency %g, throughput %g, peak %g MB", m.Model, p.BatchSize, p.LatencyS, p.Throughput, p.PeakMemMB)
			}
			// tokens/s must equal batch × new tokens / latency
			if d := p.Throughput - float64(p.BatchSize*4)/p.LatencyS; d > 1e-6 || d < -1e-6 {
				t.Errorf("throughput %g inconsistent with latency %g", p.Throughput, p.LatencyS)
			}
		}
	}
	if rep.Models[1].NumLayers != 5 || rep.Models[0].NumLayers != 16 {
		t.Errorf("layers %d, %d", rep.Models[0].NumLayers, rep.Models[1].NumLayers)
	}
	// The model's memory, not the process's: deep16's F32 weights (759,872 parameters) and a
	// KV cache of 2 (K, V) × 16 blocks × batch × 4 KV heads × 12 positions × head_dim 8 floats.
	for _, p := range rep.Models[0].Points {
		weights, kv := 759872*4.0/(1<<20), 2*16*float64(p.BatchSize)*4*12*8*4/(1<<20)
		if math.Abs(p.WeightsMB-weights) > 1e-9 || math.Abs(p.KVCacheMB-kv) > 1e-9 {
			t.Errorf("batch %d: weights %g MB, KV cache %g MB; want %g and %g", p.BatchSize, p.WeightsMB, p.KVCacheMB, weights, kv)
		}
	}
}

// TestEvalPPL_AdapterEqualsMerged: eval --adapter scores the same as the merged checkpoint,
// and differently from the base model.
func TestEvalPPL_AdapterEqualsMerged(t *testing.T) {
	base := testutil.SharedDir(t, "models", "stories260K")
	data := testutil.SharedDir(t, "data", "stories", "heldout.jsonl")
	out := t.TempDir() + "/lora"
	code, _, errOut := cli(t, "", "--quiet", "retrain", "--model", base, "--out", out, "--mode", "lora",
		"--data", testutil.SharedDir(t, "data", "stories", "lora_batch4x128.json"), "--max-steps", "2",
		"--batch-size", "4", "--micro-batch-size", "4", "--lr", "1e-2", "--warmup-steps", "0", "--merge")
	if code != 0 {
		t.Fatalf("retrain: exit %d: %s", code, errOut)
	}
	ppl := func(args ...string) float64 {
		t.Helper()
		code, stdout, errOut := cli(t, "", append([]string{"--json", "eval", "ppl", "--data", data, "--bos", "once", "--max-chunks", "4"}, args...)...)
		if code != 0 {
			t.Fatalf("eval ppl %v: exit %d: %s", args, code, errOut)
		}
		var rep pplReport
		if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
			t.Fatal(err)
		}
		return rep.Results[0].PPL
	}
	basePPL := ppl("--model", base)
	adapted := ppl("--model", base, "--adapter", out)
	merged := ppl("--model", out+"/merged")
	if adapted == basePPL {
		t.Errorf("adapter changed nothing: ppl %g", adapted)
	}
	if d := (adapted - merged) / merged; d > 1e-5 || d < -1e-5 {
		t.Errorf("--adapter ppl %g, merged checkpoint %g", adapted, merged)
	}
}

func emptyFile(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "empty.txt")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
