package main

import (
	"bytes"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shortllm/shortllm/internal/testutil"
)

func scoreRun(t *testing.T, args ...string) (code int, out, errOut string) {
	t.Helper()
	var o, e bytes.Buffer
	code = execute(append([]string{"--quiet", "score"}, args...), strings.NewReader(""), &o, &e)
	return code, o.String(), e.String()
}

// TestScore_JSONDocument runs the verb on stories260K and checks the document's fields: the
// golden's ppl values and order, the calibration record and the file written by --out.
func TestScore_JSONDocument(t *testing.T) {
	mdl := testutil.SharedDir(t, "models", "stories260K")
	calib := testutil.SharedDir(t, "data", "stories", "calib10x128.ids.json")
	outFile := filepath.Join(t.TempDir(), "scores.json")
	code, out, errOut := scoreRun(t, "--json", "--model", mdl, "--calib", calib, "--criterion", "ppl+,mag+",
		"--skip-blocks", "4", "--out", outFile)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var docs []struct {
		Model       string     `json:"model"`
		ConfigHash  string     `json:"config_hash"`
		NumLayers   int        `json:"num_layers"`
		Criterion   string     `json:"criterion"`
		Scores      []*float64 `json:"scores"`
		Order       []int      `json:"order"`
		ToolVersion string     `json:"tool_version"`
		Options     map[string]any
		Calibration *struct {
			Source string  `json:"source"`
			SHA256 string  `json:"sha256"`
			SeqLen int     `json:"seq_len"`
			BOS    bool    `json:"bos"`
			IDs    [][]int `json:"ids"`
		} `json:"calibration"`
	}
	if err := json.Unmarshal([]byte(out), &docs); err != nil {
		t.Fatalf("stdout is not a JSON list: %v\n%s", err, out)
	}
	if len(docs) != 2 || docs[0].Criterion != "ppl+" || docs[1].Criterion != "mag+" {
		t.Fatalf("criteria %+v", docs)
	}
	ppl := docs[0]
	// With block 4 gone, removing block 2 still hurts least (golden order 2, 3, 4, 1, 0).
	if ppl.Model != mdl || len(ppl.ConfigHash) != 64 || ppl.NumLayers != 5 || ppl.ToolVersion != version ||
		ppl.Scores[4] != nil || len(ppl.Order) != 4 || ppl.Order[0] != 2 || ppl.Order[3] != 0 {
		t.Errorf("ppl document: %+v", ppl)
	}
	c := ppl.Calibration
	if c == nil || c.Source != calib || len(c.SHA256) != 64 || c.SeqLen != 128 || c.BOS || len(c.IDs) != 10 {
		t.Errorf("calibration record: %+v", c)
	}
	if docs[1].Calibration != nil || docs[1].Options["weight_reduction"] != "sum" {
		t.Errorf("magnitude document: calibration %v, options %v", docs[1].Calibration, docs[1].Options)
	}
	written, err := os.ReadFile(outFile)
	if err != nil || string(written) != out {
		t.Errorf("--out file differs from stdout (%v)", err)
	}
}

func TestScore_TableAndErrors(t *testing.T) {
	mdl := testutil.SharedDir(t, "models", "stories260K")
	code, out, errOut := scoreRun(t, "--model", mdl, "--criterion", "magnitude")
	if code != 0 || !strings.Contains(out, "# magnitude") || !strings.Contains(out, "    0        4494.02     1 █") {
		t.Errorf("exit %d, table:\n%s%s", code, out, errOut)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--criterion", "entropy"}, `unknown criterion "entropy"`},
		{[]string{"--criterion", "taylor"}, "--calib is required for criterion taylor"},
		{[]string{"--criterion", "bi", "--calib", "/nonexistent/c.json"}, "calib /nonexistent/c.json"},
	} {
		code, _, errOut := scoreRun(t, append([]string{"--model", mdl}, c.args...)...)
		if code == 0 || !strings.Contains(errOut, c.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want one line containing %q", c.args, code, errOut, c.want)
		}
	}
}

// TestScore_PlotOneFilePerCriterion: --plot with two criteria writes FILE-<criterion>.png for
// each, both decodable PNGs.
func TestScore_PlotOneFilePerCriterion(t *testing.T) {
	demo := demoModel(t)
	plot := filepath.Join(t.TempDir(), "blocks.png")
	code, _, errOut := scoreRun(t, "--model", filepath.Join(demo, "model"), "--calib", filepath.Join(demo, "data", "calib.jsonl"),
		"--calib-samples", "4", "--seq-len", "32", "--criterion", "ppl+,magnitude", "--plot", plot)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, name := range []string{"blocks-ppl.png", "blocks-magnitude.png"} {
		f, err := os.Open(filepath.Join(filepath.Dir(plot), name))
		if err != nil {
			t.Fatal(err)
		}
		_, err = png.Decode(f)
		f.Close()
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
