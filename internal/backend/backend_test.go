package backend

import (
	"strings"
	"testing"
)

func TestDescribe_ProbeNeverFails(t *testing.T) {
	info := Describe(false)
	if len(info.Probes) != 0 {
		t.Errorf("probes without --probe: %+v", info.Probes)
	}
	info = Describe(true, "xla:/nonexistent/xla_cuda_plugin.so", "nosuch")
	got := map[string]Probe{}
	for _, p := range info.Probes {
		got[p.Spec] = p
	}
	if p := got["go"]; !p.OK || len(p.Devices) == 0 {
		t.Errorf("go backend probe: %+v", p)
	}
	if p := got["xla:/nonexistent/xla_cuda_plugin.so"]; p.OK || p.Error == "" {
		t.Errorf("missing plugin probed OK: %+v", p)
	}
	if p := got["nosuch"]; p.OK || !strings.Contains(p.Error, "unknown backend") {
		t.Errorf("unknown backend: %+v", p)
	}
}
