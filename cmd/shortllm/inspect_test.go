package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shortllm/shortllm/internal/prune"
	"github.com/shortllm/shortllm/internal/testutil"
)

func TestInspect_TextAndJSON(t *testing.T) {
	src := testutil.SharedDir(t, "models", "deep16")
	code, out, errOut := pruneRun(t, "inspect", "--model", src)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"layers     16   hidden 64   ffn 172   heads 8/4 kv   vocab 512   tied embeddings",
		"params     759872 total: embeddings 32768 · blocks 16 × 45440 · final norm 64 · lm_head tied to embeddings",
		"dtypes     F32 ×146 tensors", "weights    single file, 3054896 bytes", "tokenizer  hf-bpe",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "pruned") {
		t.Errorf("an unpruned model shows a pruning record:\n%s", out)
	}
}

func TestInspect_PrunedModelShowsProvenance(t *testing.T) {
	src := testutil.SharedDir(t, "models", "deep16")
	pruned := filepath.Join(t.TempDir(), "p")
	if code, _, errOut := pruneRun(t, "--quiet", "prune", "--model", src, "--out", pruned, "--blocks", "7,9"); code != 0 {
		t.Fatal(errOut)
	}
	code, out, _ := pruneRun(t, "inspect", "--model", pruned)
	if code != 0 || !strings.Contains(out, "removed 7,9 by explicit --blocks; params 759872 → 668992 (12.0% removed)") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	code, out, _ = pruneRun(t, "inspect", "--json", "--model", pruned)
	var r prune.Report
	if err := json.Unmarshal([]byte(out), &r); code != 0 || err != nil || r.NumLayers != 14 || r.Pruned == nil || r.Params.Total != 668992 {
		t.Fatalf("exit %d, %v: %s", code, err, out)
	}
}

func TestInspect_MissingModel(t *testing.T) {
	code, _, errOut := pruneRun(t, "inspect", "--model", filepath.Join(t.TempDir(), "nope"))
	if code != 1 || !strings.Contains(errOut, "no such directory") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

// TestInspect_CPTAfterPruneNamesRemovedBlocks: the pruning record travels through retraining
// and merging, so inspect of the retrained model still says which blocks were removed; and
// inspect of the LoRA adapter names the base it was trained for (absolute path, same config).
func TestInspect_CPTAfterPruneNamesRemovedBlocks(t *testing.T) {
	demo := demoModel(t)
	tmp := t.TempDir()
	pruned, cpt, lora, merged := filepath.Join(tmp, "p"), filepath.Join(tmp, "cpt"), filepath.Join(tmp, "lora"), filepath.Join(tmp, "m")
	steps := []string{"--max-steps", "1", "--seq-len", "32", "--batch-size", "2", "--micro-batch-size", "2", "--warmup-steps", "0"}
	for _, args := range [][]string{
		{"prune", "--model", filepath.Join(demo, "model"), "--out", pruned, "--blocks", "3,5"},
		append([]string{"retrain", "--model", pruned, "--out", cpt, "--mode", "cpt", "--data", filepath.Join(demo, "data", "cpt.jsonl")}, steps...),
		append([]string{"retrain", "--model", cpt, "--out", lora, "--mode", "lora", "--data", filepath.Join(demo, "data", "cpt.jsonl")}, steps...),
		{"merge", "--model", cpt, "--adapter", lora, "--out", merged},
	} {
		if code, _, errOut := pruneRun(t, append([]string{"--quiet"}, args...)...); code != 0 {
			t.Fatalf("%s: exit %d: %s", args[0], code, errOut)
		}
	}
	for _, dir := range []string{cpt, merged} {
		code, out, _ := pruneRun(t, "inspect", "--model", dir)
		if code != 0 || !strings.Contains(out, "removed 3,5 by explicit --blocks") {
			t.Errorf("inspect %s (exit %d) does not name the removed blocks:\n%s", filepath.Base(dir), code, out)
		}
	}
	var cfg struct {
		Base          string `json:"base_model_name_or_path"`
		InferenceMode bool   `json:"inference_mode"`
	}
	data, err := os.ReadFile(filepath.Join(lora, "adapter_config.json"))
	if err != nil || json.Unmarshal(data, &cfg) != nil {
		t.Fatalf("adapter_config.json: %v", err)
	}
	absCPT, _ := filepath.Abs(cpt)
	if cfg.Base != absCPT || !cfg.InferenceMode {
		t.Errorf("adapter_config: base %q inference_mode %v; want %q (absolute, as PEFT writes) and true", cfg.Base, cfg.InferenceMode, absCPT)
	}
	code, out, _ := pruneRun(t, "inspect", "--model", lora)
	for _, want := range []string{"lora       r 8   alpha 16", "blocks 0,1,2,3,4,5,6,7", "base       " + absCPT + " (found; config sha256"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("inspect of the adapter (exit %d) lacks %q:\n%s", code, want, out)
		}
	}
}
