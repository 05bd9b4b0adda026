package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/testutil"
)

// TestPruneWidth_HeadsRecordedAndLoadable: --heads removes whole KV groups as listed; the
// record lists the units per block and the saved model loads with the new widths.
func TestPruneWidth_HeadsRecordedAndLoadable(t *testing.T) {
	src := testutil.SharedDir(t, "models", "deep16")
	out := filepath.Join(t.TempDir(), "w")
	rec := pruneJSON(t, "prune", "--model", src, "--out", out, "--width", "--heads", "3.0,3.1,5.6,5.7")
	if rec.Method != "width" || rec.Width == nil || len(rec.RemovedBlocks) != 0 {
		t.Fatalf("record %+v", rec)
	}
	if u := rec.Width.Layers[5]; len(u.Heads) != 2 || len(u.KVHeads) != 1 || u.KVHeads[0] != 3 {
		t.Errorf("block 5 units %+v, want heads 6,7 and KV head 3", u)
	}
	m, err := model.Load(out, model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if w := m.Config.Width(3); w.NumAttentionHeads != 6 || w.NumKeyValueHeads != 3 || w.IntermediateSize != 172 {
		t.Errorf("block 3 widths %+v", w)
	}
	if rec.ParamsBefore-rec.ParamsAfter != 2*3072 {
		t.Errorf("removed %d parameters, want two KV groups of 3072", rec.ParamsBefore-rec.ParamsAfter)
	}
}

// TestPruneWidth_BadInputOneLine: each mistake is one line on stderr, exit 1, no output dir.
func TestPruneWidth_BadInputOneLine(t *testing.T) {
	src := testutil.SharedDir(t, "models", "deep16")
	calib := testutil.SharedDir(t, "data", "stories", "calib10x128.ids.json")
	out := filepath.Join(t.TempDir(), "w")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"breaks GQA group", []string{"--heads", "3.0"}, "--heads: block 3: removing query heads [0] breaks GQA group 0 (heads [0 1]); remove whole groups or pass --within-groups"},
		{"unequal groups", []string{"--heads", "3.0", "--within-groups"}, "repeat_kv needs the same number in every group"},
		{"every head", []string{"--heads", "2.0,2.1,2.2,2.3,2.4,2.5,2.6,2.7"}, "block 2: removing all 8 attention heads leaves none"},
		{"ratio removes every head", []string{"--criterion", "llm-pruner", "--ratio", "70%", "--calib", calib}, "--ratio 70.0% removes every attention head of block 4"},
		{"unknown criterion", []string{"--criterion", "taylor", "--ratio", "20%", "--calib", calib}, `--width --criterion "taylor"`},
		{"width flag without --width", []string{"--within-groups", "--blocks", "3"}, "--within-groups, --no-bias-compensation and --heads need --width"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"prune", "--quiet", "--model", src, "--out", out}, c.args...)
			if c.name != "width flag without --width" {
				args = append(args, "--width")
			}
			code, _, errOut := pruneRun(t, args...)
			if code != 1 || !strings.Contains(errOut, c.want) || strings.Count(errOut, "\n") != 1 {
				t.Fatalf("exit %d, stderr %q; want one line containing %q", code, errOut, c.want)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Fatalf("bad input created %s", out)
			}
		})
	}
}

// TestScoreWidth_JSONShape: score with a width criterion gives one score per KV group and
// per FFN channel of every block (shape only: the values are checked in internal/width).
func TestScoreWidth_JSONShape(t *testing.T) {
	src := testutil.SharedDir(t, "models", "deep16")
	calib := testutil.SharedDir(t, "data", "stories", "calib10x128.ids.json")
	code, out, errOut := pruneRun(t, "score", "--quiet", "--json", "--model", src, "--calib", calib, "--criterion", "wanda-sp")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var doc struct {
		Criterion string      `json:"criterion"`
		Heads     [][]float64 `json:"heads"`
		Channels  [][]float64 `json:"channels"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Criterion != "wanda-sp" || len(doc.Heads) != 16 || len(doc.Heads[7]) != 4 || len(doc.Channels[15]) != 172 {
		t.Errorf("doc: criterion %q, %d blocks", doc.Criterion, len(doc.Heads))
	}
}
