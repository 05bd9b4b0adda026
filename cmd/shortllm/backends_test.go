package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/shortllm/shortllm/internal/testutil"
)

func TestBackends_ProbeJSON(t *testing.T) {
	code, out, errOut := cli(t, "", "--backend", "xla:/nonexistent/xla_cuda_plugin.so", "backends", "--probe", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var info struct {
		Probes []struct {
			Spec string `json:"spec"`
			OK   bool   `json:"ok"`
		} `json:"probes"`
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(info.Probes) < 2 || !info.Probes[0].OK || info.Probes[len(info.Probes)-1].OK {
		t.Errorf("probes: %+v", info.Probes)
	}
}

func TestCheckGolden_Stories260K(t *testing.T) {
	model := testutil.SharedDir(t, "models", "stories260K")
	golden := testutil.SharedDir(t, "goldens", "stories260K.forward.json")
	text := testutil.SharedDir(t, "goldens", "stories260K.greedy200.txt")
	code, out, errOut := cli(t, "", "check-golden", "--model", model, "--golden", golden, "--text", text, "--json")
	if code != 0 || !strings.Contains(out, `"pass":true`) || !strings.Contains(out, `"text_match":true`) {
		t.Fatalf("exit %d: %s\n%s", code, out, errOut)
	}
	// A wrong golden fails with a one-line error naming the file.
	code, _, errOut = cli(t, "", "check-golden", "--model", model, "--golden", testutil.SharedDir(t, "goldens", "deep16.forward.json"))
	if code == 0 || !strings.Contains(errOut, "deep16.forward.json") {
		t.Errorf("mismatched golden: exit %d, %s", code, errOut)
	}
}

func TestEvalPPL_BF16ReportsSpeed(t *testing.T) {
	model := testutil.SharedDir(t, "models", "stories260K")
	data := testutil.SharedDir(t, "data", "stories", "heldout.jsonl")
	code, out, errOut := cli(t, "", "eval", "ppl", "--model", model, "--data", data, "--bos", "once", "--max-chunks", "4", "--batch-size", "2", "--dtype", "bf16", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rep struct {
		DType      string  `json:"dtype"`
		TokensPerS float64 `json:"tokens_per_s"`
		WallS      float64 `json:"wall_s"`
		Timings    []struct {
			Steady float64 `json:"steady_tokens_per_s"`
		} `json:"timings"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if rep.DType != "bf16" || rep.TokensPerS <= 0 || rep.WallS <= 0 || len(rep.Timings) != 1 || rep.Timings[0].Steady <= 0 {
		t.Errorf("report: %+v", rep)
	}
	if code, _, errOut := cli(t, "", "eval", "ppl", "--model", model, "--data", data, "--dtype", "f8"); code == 0 || !strings.Contains(errOut, "--dtype") {
		t.Errorf("--dtype f8: exit %d, %s", code, errOut)
	}
}
