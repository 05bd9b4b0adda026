package pipeline

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pipeline.yaml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestLoadConfigFile_UnknownKeyOneLine: a typo in a key is an error naming it, on one line.
func TestLoadConfigFile_UnknownKeyOneLine(t *testing.T) {
	path := writeConfig(t, "ratios: 20%\nretrain-stepz: 5\n")
	c := Defaults()
	err := LoadConfigFile(path, &c)
	if err == nil || !strings.Contains(err.Error(), "unknown key retrain-stepz") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err = %v; want one line naming retrain-stepz", err)
	}
}

// TestLoadConfigFile_ListsAndRelativePaths: lists may be YAML sequences or comma strings,
// paths are relative to the file, keys absent from the file keep their defaults.
func TestLoadConfigFile_ListsAndRelativePaths(t *testing.T) {
	path := writeConfig(t, "model: m\nratios: [20%, 35%]\ncriteria: ppl,taylor\neval-ppl: wiki=wikitext2:w.raw\ncalib: /abs/c.jsonl\n")
	dir := filepath.Dir(path)
	c := Defaults()
	if err := LoadConfigFile(path, &c); err != nil {
		t.Fatal(err)
	}
	want := Defaults()
	switch {
	case c.Model != filepath.Join(dir, "m"):
		t.Errorf("model %q, want relative to the file", c.Model)
	case strings.Join(c.Ratios, ",") != "20%,35%" || strings.Join(c.Criteria, ",") != "ppl,taylor":
		t.Errorf("ratios %v criteria %v", c.Ratios, c.Criteria)
	case c.EvalPPL[0] != "wiki=wikitext2:"+filepath.Join(dir, "w.raw"):
		t.Errorf("eval-ppl %v", c.EvalPPL)
	case c.Calib != "/abs/c.jsonl":
		t.Errorf("calib %q: an absolute path must stay", c.Calib)
	case c.SeqLen != want.SeqLen || c.LR != want.LR:
		t.Errorf("defaults lost: seq-len %d lr %g", c.SeqLen, c.LR)
	}
}

// TestValidate_BadInput: each mistake is caught before any work, with a one-line message
// naming the flag.
func TestValidate_BadInput(t *testing.T) {
	base := func() Config {
		c := Defaults()
		c.Model, c.Out, c.Calib, c.LoRAData = "m", "o", "config_test.go", "config_test.go"
		c.EvalPPL = List{"x=text:f.txt"}
		return c
	}
	cases := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"unknown retrain stage", func(c *Config) { c.Retrain = List{"none", "qlora"} }, `--retrain: retrain mode "qlora"`},
		{"unknown criterion", func(c *Config) { c.Criteria = List{"ppl", "entropy"} }, `--criteria: unknown stage "entropy"`},
		{"duplicate ratios", func(c *Config) { c.Ratios = List{"20%", "0.2"} }, "--ratios: 20% and 0.2 are the same ratio"},
		{"duplicate criteria", func(c *Config) { c.Criteria = List{"ppl", "ppl"} }, `--criteria: "ppl" is listed twice`},
		{"bad ratio", func(c *Config) { c.Ratios = List{"120%"} }, "--ratios"},
		{"cpt without data", func(c *Config) { c.Retrain = List{"cpt"} }, "--retrain cpt needs --cpt-data"},
		{"nothing to evaluate", func(c *Config) { c.EvalPPL = nil }, "nothing to evaluate"},
		{"bad eval-ppl", func(c *Config) { c.EvalPPL = List{"justafile"} }, "--eval-ppl"},
		{"missing calib file", func(c *Config) { c.Calib = "no/such.jsonl" }, "--calib"},
		{"unknown width criterion", func(c *Config) { c.WidthCriteria = List{"flap", "sparsegpt"} }, `--width-criteria: unknown criterion "sparsegpt"`},
		{"width without calib", func(c *Config) { c.WidthCriteria = List{"flap"}; c.Calib = "" }, "--width-criteria needs --calib"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.edit(&c)
			_, err := c.validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v; want one line containing %q", err, tc.want)
			}
		})
	}
}

// TestNewStage_HashFollowsInputs: the same key gives the same directory; any change moves it.
func TestNewStage_HashFollowsInputs(t *testing.T) {
	a := newStage("prune", "ppl-20.0", pruneKey{Score: "s", Ratio: 0.2})
	b := newStage("prune", "ppl-20.0", pruneKey{Score: "s", Ratio: 0.2})
	c := newStage("prune", "ppl-20.0", pruneKey{Score: "s", Ratio: 0.35})
	if a.Dir != b.Dir || a.Dir == c.Dir {
		t.Fatalf("dirs %s %s %s: want equal for equal keys, different otherwise", a.Dir, b.Dir, c.Dir)
	}
}
