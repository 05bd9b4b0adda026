//go:build noxla

package main

import (
	"strings"
	"testing"
)

// The static build says plainly that XLA is not in it (CI runs this with -tags noxla).
func TestBackends_NoXLASaysNotCompiled(t *testing.T) {
	code, out, errOut := cli(t, "", "backends", "--probe")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "xla compiled in:   false (built with -tags noxla") || !strings.Contains(out, "probe go: SimpleGo") {
		t.Errorf("backends output:\n%s", out)
	}
}
