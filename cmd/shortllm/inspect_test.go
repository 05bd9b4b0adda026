package main

import (
	"encoding/json"
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
