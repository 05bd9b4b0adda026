package pipeline

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseConfig: any pipeline.yaml either loads and validates, or fails with a one-line
// error; it never panics. Seeded with the demo's pipeline.yaml and edge cases of each key.
func FuzzParseConfig(f *testing.F) {
	if demo, err := os.ReadFile(filepath.Join("..", "..", "testdata", "demo", "pipeline.yaml")); err == nil {
		f.Add(demo)
	}
	for _, s := range []string{
		"", "ratios: 20%,35%\n", "ratios: [20%, 35%]\ncriteria: [ppl]\n", "retrain-steps: -1\n", "speed-warmup: -1\n",
		"limit: 99999999999999999999\n", "eval-ppl: a=text:x.txt,b=wikitext2:\n", "ratios: {a: 1}\n", "seed: -3\n",
		"lr: .nan\n", "ratios: 120%\n", "model: !!binary aGVsbG8=\n", "&a [*a]\n", "criteria: [ppl, ppl]\n",
		"speed-batch-sizes: 0,-1\n", "out: ../../x\nmodel: /\n", "? [a]\n: b\n", "tasks:\n  - piqa\n  - 7\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := Defaults()
		err := ParseConfig(data, "fuzz/pipeline.yaml", &c)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\n") {
				t.Fatalf("multi-line error: %q", err)
			}
			return
		}
		c.Model, c.Out = "m", "o"
		if _, err := c.validate(); err != nil && strings.ContainsAny(err.Error(), "\n") {
			t.Fatalf("multi-line validation error: %q", err)
		}
	})
}
