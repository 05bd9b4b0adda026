package stage

import (
	"bytes"
	"context"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/prune"
	"github.com/shortllm/shortllm/internal/retrain"
	"github.com/shortllm/shortllm/internal/safetensors"
	"github.com/shortllm/shortllm/internal/testutil"
)

func newTestEngine(t *testing.T, dtype string) *Engine {
	t.Helper()
	e, err := NewEngine(Settings{Backend: "go", DType: dtype, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func deep16Calib(t *testing.T) Calib {
	return Calib{Path: testutil.SharedDir(t, "data", "stories", "calib10x128.ids.json")}
}

// bf16 compute against f32 on deep16, stage by stage: the blocks each criterion would remove
// at 35% ("+" policy) must agree, and perplexity must stay within 1%.
func TestBF16AgreesWithF32_Deep16(t *testing.T) {
	ctx := context.Background()
	dir := testutil.SharedDir(t, "models", "deep16")
	f32, bf16 := newTestEngine(t, "f32"), newTestEngine(t, "bf16")
	removed := map[string][2][]int{}
	ppl := [2]float64{}
	for k, e := range []*Engine{f32, bf16} {
		o, err := e.Open(ctx, dir, OpenOptions{NeedTokenizer: true})
		if err != nil {
			t.Fatal(err)
		}
		if got := model.DTypeName(o.Model.ComputeDType()); got != e.DTypeName() {
			t.Fatalf("%s engine opened the model in %s", e.DTypeName(), got)
		}
		res, err := e.Score(o, ScoreJob{Criteria: []string{"ppl", "taylor"}, Calib: deep16Calib(t), Remat: RematOff})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			plan, err := prune.Select(o.Model.Config, prune.Selection{Ratio: 0.35, Policy: prune.DefaultPolicy},
				prune.StaticRanker(&prune.ScoreFile{Criterion: r.Criterion, Scores: r.Scores, Order: r.Order, NumLayers: r.NumLayers}))
			if err != nil {
				t.Fatal(err)
			}
			v := removed[r.Criterion]
			v[k] = plan.Remove
			removed[r.Criterion] = v
		}
		runs, err := e.PPL(o, PPLJob{Files: []PPLFile{{Path: testutil.SharedDir(t, "data", "stories", "heldout.jsonl"), Dataset: "text"}},
			BOS: []string{"once"}, SeqLen: 128, MaxChunks: 24, BatchSize: 8})
		if err != nil {
			t.Fatal(err)
		}
		ppl[k] = runs[0].Result.PPL
	}
	for c, v := range removed {
		t.Logf("%s removes f32 %v, bf16 %v", c, v[0], v[1])
		if !slices.Equal(v[0], v[1]) {
			t.Errorf("%s: bf16 removes %v, f32 %v", c, v[1], v[0])
		}
	}
	rel := math.Abs(ppl[1]-ppl[0]) / ppl[0]
	t.Logf("held-out PPL f32 %.4f, bf16 %.4f (%+.2f%%)", ppl[0], ppl[1], 100*(ppl[1]-ppl[0])/ppl[0])
	if rel > 0.01 {
		t.Errorf("bf16 PPL %.4f differs from f32 %.4f by %.2f%% > 1%%", ppl[1], ppl[0], 100*rel)
	}
}

// prune --criterion in bf16 scores on a bf16 copy but writes the tensors as loaded: the
// checkpoint is byte-identical to the f32 run's when both pick the same blocks.
func TestPrune_BF16ScoresWritesLoadedTensors(t *testing.T) {
	ctx := context.Background()
	dir := testutil.SharedDir(t, "models", "deep16")
	var recs []*prune.Record
	var weights [][]byte
	for _, dt := range []string{"f32", "bf16"} {
		out := filepath.Join(t.TempDir(), "out")
		rec, err := newTestEngine(t, dt).Prune(ctx, PruneJob{Model: dir, Criterion: "ppl", Calib: deep16Calib(t),
			Selection: prune.Selection{NumBlocks: 4, Policy: prune.DefaultPolicy}, Write: prune.WriteOptions{Out: out}})
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(filepath.Join(out, "model.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		recs, weights = append(recs, rec), append(weights, data)
	}
	if !slices.Equal(recs[0].RemovedBlocks, recs[1].RemovedBlocks) {
		t.Fatalf("bf16 removed %v, f32 %v", recs[1].RemovedBlocks, recs[0].RemovedBlocks)
	}
	if !bytes.Equal(weights[0], weights[1]) {
		t.Error("bf16-scored prune wrote different weights from the f32 one (tensors must be written as loaded)")
	}
}

// Merging holds BF16 tensors as bfloat16 and rounds once: the result is bit-identical to
// loading in float32, merging and saving BF16 (the exact path, twice the memory).
func TestMerge_BF16CheckpointBitIdentical(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	src := filepath.Join(tmp, "bf16")
	m, err := model.Load(testutil.SharedDir(t, "models", "stories260K"), model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Save(src, model.SaveOptions{DType: safetensors.BF16}); err != nil {
		t.Fatal(err)
	}
	adapter := filepath.Join(tmp, "adapter")
	golden := testutil.SharedDir(t, "goldens", "stories260K.lora_step")
	copyFile(t, filepath.Join(golden, "adapter_config.json"), filepath.Join(adapter, "adapter_config.json"))
	copyFile(t, filepath.Join(golden, "adapter_model.after1.safetensors"), filepath.Join(adapter, "adapter_model.safetensors"))

	exact, err := model.Load(src, model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := retrain.MergeAdapter(exact, adapter); err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(tmp, "exact")
	if err := exact.Save(want, model.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, dt := range []string{"f32", "bf16"} {
		out := filepath.Join(tmp, "merged-"+dt)
		if _, err := newTestEngine(t, dt).Merge(ctx, MergeJob{Model: src, Adapter: adapter, Out: out}); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(readFile(t, filepath.Join(want, "model.safetensors")), readFile(t, filepath.Join(out, "model.safetensors"))) {
			t.Errorf("%s merge of a BF16 checkpoint differs from the float32 merge saved as BF16", dt)
		}
	}
	base := readFile(t, filepath.Join(src, "model.safetensors"))
	if bytes.Equal(base, readFile(t, filepath.Join(want, "model.safetensors"))) {
		t.Fatal("the adapter changed nothing: the test cannot tell merges apart")
	}
}

func TestParseRemat(t *testing.T) {
	for in, want := range map[string]Remat{"": RematAuto, "auto": RematAuto, "on": RematOn, "off": RematOff} {
		if got, err := ParseRemat(in); err != nil || got != want {
			t.Errorf("ParseRemat(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseRemat("sometimes"); err == nil {
		t.Error("ParseRemat(sometimes) accepted")
	}
}

func TestOpen_ResolveErrors(t *testing.T) {
	e := newTestEngine(t, "f32")
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for ref, want := range map[string]string{"": "no model given", file: "not a directory", "./nowhere": "no such directory"} {
		if _, err := e.Open(context.Background(), ref, OpenOptions{}); err == nil || !bytes.Contains([]byte(err.Error()), []byte(want)) {
			t.Errorf("Open(%q): %v, want %q", ref, err, want)
		}
	}
	if _, err := NewEngine(Settings{DType: "f16"}); err == nil {
		t.Error("NewEngine accepted compute dtype f16 (SimpleGo has no float16)")
	}
}

func TestScore_CalibRequired(t *testing.T) {
	e := newTestEngine(t, "f32")
	o, err := e.Open(context.Background(), testutil.SharedDir(t, "models", "stories260K"), OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Score(o, ScoreJob{Criteria: []string{"taylor"}}); err == nil {
		t.Error("taylor without calibration data accepted")
	}
	res, err := e.Score(o, ScoreJob{Criteria: []string{"magnitude"}})
	if err != nil || len(res) != 1 || res[0].ToolVersion != "test" {
		t.Fatalf("magnitude without data: %v, %+v", err, res)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// A short LoRA's update is smaller than half a bfloat16 step of most weights: merged into
// bf16 weights it mostly vanishes. The merge measures that, reports it and says so.
func TestOpen_AdapterMergeLossReported(t *testing.T) {
	adapter := filepath.Join(t.TempDir(), "adapter")
	golden := testutil.SharedDir(t, "goldens", "stories260K.lora_step")
	copyFile(t, filepath.Join(golden, "adapter_config.json"), filepath.Join(adapter, "adapter_config.json"))
	copyFile(t, filepath.Join(golden, "adapter_model.after1.safetensors"), filepath.Join(adapter, "adapter_model.safetensors"))
	dir := testutil.SharedDir(t, "models", "stories260K")
	got := map[string]float64{}
	for _, dt := range []string{"f32", "bf16"} {
		e := newTestEngine(t, dt)
		var notices bytes.Buffer
		e.Notices = &notices
		o, err := e.Open(context.Background(), dir, OpenOptions{Adapter: adapter})
		if err != nil {
			t.Fatal(err)
		}
		got[dt] = o.AdapterMergeRelErr
		if e.Provenance(o).AdapterMergeRelErr != o.AdapterMergeRelErr {
			t.Error("provenance does not carry the merge error")
		}
		if noticed := bytes.Contains(notices.Bytes(), []byte("--dtype f32")); noticed != (o.AdapterMergeRelErr > MergeLossNotice) {
			t.Errorf("%s: merge error %.3g, notice %q", dt, o.AdapterMergeRelErr, notices.String())
		}
	}
	t.Logf("merge relative error: f32 %.3g, bf16 %.3g", got["f32"], got["bf16"])
	if got["f32"] > 1e-5 {
		t.Errorf("float32 merge loses %.3g of the update", got["f32"])
	}
	if got["bf16"] < 10*got["f32"] || got["bf16"] < 1e-3 {
		t.Errorf("bf16 merge error %.3g not above float32's %.3g: the measure sees no rounding", got["bf16"], got["f32"])
	}
}
