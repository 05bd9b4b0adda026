package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/shortllm/shortllm/internal/testutil"
)

// TestPlan_7BShape: the paper's 35% of LLaMA-7B is 11 blocks (33.0%), full bf16 CPT does
// not fit one 80 GB device while LoRA does, and --json carries the same numbers.
func TestPlan_7BShape(t *testing.T) {
	cfg := testutil.SharedDir(t, "bench", "llama-2-7b-shape.json")
	code, out, errOut := cli(t, "", "plan", "--config", cfg, "--dtype", "bf16", "--device-memory", "80GB", "--ratio", "35%", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rep planReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if rep.Prune == nil || rep.Prune.Blocks != 11 || rep.Prune.ParamsAfter != 4512198656 {
		t.Errorf("prune 35%%: %+v, want 11 blocks and 4512198656 parameters left", rep.Prune)
	}
	fits := map[string]bool{}
	for _, e := range rep.Estimates {
		fits[string(e.Stage)] = e.Peak <= rep.Device
	}
	if !fits["lora"] || !fits["eval"] || fits["cpt"] {
		t.Errorf("fits on 80 GB: %v; want eval and lora yes, cpt no", fits)
	}
	code, out, _ = cli(t, "", "plan", "--config", cfg, "--stage", "cpt", "--dtype", "bf16", "--device-memory", "80GB")
	if code != 0 || !strings.Contains(out, "does NOT fit") || !strings.Contains(out, "master") {
		t.Errorf("text output (exit %d):\n%s", code, out)
	}
}

func TestPlan_BadInput(t *testing.T) {
	cfg := testutil.SharedDir(t, "bench", "llama-2-7b-shape.json")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"plan"}, "exactly one of --model DIR or --config FILE"},
		{[]string{"plan", "--config", cfg, "--dtype", "f16"}, `--dtype "f16"`},
		{[]string{"plan", "--config", cfg, "--stage", "train"}, `stage "train"`},
		{[]string{"plan", "--config", cfg, "--batch-size", "0"}, "must be positive"},
		{[]string{"plan", "--model", "/nonexistent"}, "/nonexistent/config.json"},
	} {
		code, _, errOut := cli(t, "", tc.args...)
		if code == 0 || !strings.Contains(errOut, tc.want) || strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
			t.Errorf("%v: exit %d, stderr %q; want one line containing %q", tc.args, code, errOut, tc.want)
		}
	}
}
