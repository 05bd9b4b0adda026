//go:build noxla

package backend

import (
	"strings"
	"testing"
)

func TestBackends_NoXLABuild(t *testing.T) {
	if Describe(false).XLA {
		t.Error("noxla build reports XLA compiled in")
	}
	p := ProbeSpec("xla:cuda")
	if p.OK || !strings.Contains(p.Error, "noxla") {
		t.Errorf("xla probe in a noxla build: %+v", p)
	}
}
