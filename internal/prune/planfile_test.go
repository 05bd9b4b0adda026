package prune

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shortllm/shortllm/internal/model"
)

// planCfg is a 6-block config for plan checks (no weights needed).
func planCfg(t testing.TB) *model.Config {
	t.Helper()
	cfg := &model.Config{HiddenSize: 8, IntermediateSize: 16, NumHiddenLayers: 6, NumAttentionHeads: 2,
		NumKeyValueHeads: 2, VocabSize: 32, MaxPositionEmbeddings: 16, RMSNormEps: 1e-5, RopeTheta: 1e4}
	return cfg
}

func writePlan(t *testing.T, doc map[string]any) string {
	t.Helper()
	data, _ := json.Marshal(doc)
	path := filepath.Join(t.TempDir(), "plan.json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPlanFile_CheckAndPlan(t *testing.T) {
	cfg := planCfg(t)
	good := func() map[string]any {
		return map[string]any{"model": "m", "config_hash": cfg.Hash(), "num_layers": 6, "unit": "block", "method": "evolution",
			"remove": []map[string]any{{"kind": "block", "block": 4}, {"kind": "block", "block": 2}}, "objective": 2.5,
			"calibration": map[string]any{"source": "c.json"}}
	}
	pf, sum, err := ReadPlanFile(writePlan(t, good()))
	if err != nil || len(sum) != 64 {
		t.Fatal(err, sum)
	}
	if err := pf.Check(cfg, "plan.json"); err != nil {
		t.Fatal(err)
	}
	p := pf.Plan()
	if !slices.Equal(p.Remove, []int{2, 4}) || p.Method != "plan" || p.Ranking.Criterion != "search:evolution" || len(p.Ranking.Calibration) == 0 {
		t.Errorf("plan %+v", p)
	}
	cases := []struct {
		name string
		edit func(map[string]any)
		want string
	}{
		{"other hash", func(d map[string]any) { d["config_hash"] = "abc" }, "belongs to another model"},
		{"other depth", func(d map[string]any) { d["num_layers"] = 5 }, "plan is for a 5-block model"},
		{"head units", func(d map[string]any) { d["unit"] = "head" }, `removes "head" units`},
		{"repeated", func(d map[string]any) {
			d["remove"] = []map[string]any{{"kind": "block", "block": 4}, {"kind": "block", "block": 4}}
		}, "out of range [0, 6) or repeated"},
		{"out of range", func(d map[string]any) { d["remove"] = []map[string]any{{"kind": "block", "block": 6}} }, "block 6 is out of range"},
		{"empty", func(d map[string]any) { d["remove"] = []map[string]any{} }, "removes no block"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := good()
			c.edit(d)
			pf, _, err := ReadPlanFile(writePlan(t, d))
			if err == nil {
				err = pf.Check(cfg, "plan.json")
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err %v, want one line containing %q", err, c.want)
			}
		})
	}
	if _, _, err := ReadPlanFile(writePlan(t, map[string]any{"ids": [][]int{{1, 2}}})); err == nil || !strings.Contains(err.Error(), "not a search plan") {
		t.Errorf("score-like file: %v", err)
	}
}

// FuzzPlanFile: whatever the bytes, a plan that passes Check removes distinct in-range blocks
// and keeps at least one.
func FuzzPlanFile(f *testing.F) {
	cfg := planCfg(f)
	f.Add([]byte(`{"config_hash":"` + cfg.Hash() + `","num_layers":6,"unit":"block","remove":[{"kind":"block","block":3}]}`))
	f.Add([]byte(`{"unit":"block","remove":null}`))
	f.Add([]byte(`{"num_layers":6,"unit":"block","remove":[{"kind":"block","block":-1}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "p.json")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		pf, _, err := ReadPlanFile(path)
		if err != nil || pf.Check(cfg, path) != nil {
			return
		}
		got := pf.Plan().Remove
		if len(got) == 0 || len(got) >= 6 || got[0] < 0 || got[len(got)-1] >= 6 || len(slices.Compact(slices.Clone(got))) != len(got) {
			t.Fatalf("plan %s accepted as %v", data, got)
		}
	})
}
