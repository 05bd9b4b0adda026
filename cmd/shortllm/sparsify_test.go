package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shortllm/shortllm/internal/testutil"
)

func TestSparsify_BadInputOneLineError(t *testing.T) {
	model := testutil.SharedDir(t, "models", "deep16")
	calib := testutil.SharedDir(t, "data", "stories", "calib10x128.ids.json")
	for _, tc := range []struct {
		name, want string
		args       []string
	}{
		{"sparsity 150%", "--sparsity", []string{"--method", "wanda", "--sparsity", "150%", "--calib", calib}},
		{"pattern 3:2", "--pattern", []string{"--method", "wanda", "--sparsity", "50%", "--pattern", "3:2", "--calib", calib}},
		{"unknown method", "--method", []string{"--method", "obs", "--sparsity", "50%", "--calib", calib}},
		{"missing calib", "--calib", []string{"--method", "sparsegpt", "--sparsity", "50%"}},
		{"4:8 on ffn 172", "not a multiple of 8", []string{"--method", "magnitude", "--sparsity", "50%", "--pattern", "4:8"}},
		{"calib file missing", "nope.json", []string{"--method", "wanda", "--sparsity", "50%", "--calib", "nope.json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			code, stdout, stderr := pruneRun(t, append([]string{"sparsify", "--quiet", "--model", model, "--out", out}, tc.args...)...)
			if code == 0 || stdout != "" {
				t.Fatalf("exit %d, stdout %q", code, stdout)
			}
			if strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("stderr %q: want one line naming %q", stderr, tc.want)
			}
			if _, err := os.Stat(out); err == nil {
				t.Fatal("output directory written despite the error")
			}
		})
	}
}

// A magnitude run end to end: the --json record, and inspect's measured sparsity per block.
func TestSparsify_MagnitudeThenInspect(t *testing.T) {
	model := testutil.SharedDir(t, "models", "deep16")
	out := filepath.Join(t.TempDir(), "mag")
	code, stdout, stderr := pruneRun(t, "sparsify", "--json", "--quiet", "--model", model, "--out", out, "--method", "magnitude", "--sparsity", "0.5", "--pattern", "2:4")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var rec struct {
		Out              string  `json:"out"`
		Pattern          string  `json:"pattern"`
		MeasuredSparsity float64 `json:"measured_sparsity"`
		NonzeroParams    int64   `json:"nonzero_params"`
		Matrices         []any   `json:"matrices"`
	}
	if err := json.Unmarshal([]byte(stdout), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Out != out || rec.Pattern != "2:4" || rec.MeasuredSparsity != 0.5 || len(rec.Matrices) != 112 {
		t.Fatalf("record %+v", rec)
	}
	code, stdout, stderr = pruneRun(t, "inspect", "--model", out)
	if code != 0 {
		t.Fatalf("inspect exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "sparsified magnitude 2:4") || !strings.Contains(stdout, "15:50.0%") {
		t.Fatalf("inspect output lacks the sparsity lines:\n%s", stdout)
	}
}
