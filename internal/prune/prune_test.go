package prune

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"

	"github.com/shortllm/shortllm/internal/backend"
	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/outdir"
	"github.com/shortllm/shortllm/internal/safetensors"
	"github.com/shortllm/shortllm/internal/testutil"
)

func loadShared(t *testing.T, name string) *model.Model {
	t.Helper()
	m, err := model.Load(testutil.SharedDir(t, "models", name), model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func load(t *testing.T, dir string) *model.Model {
	t.Helper()
	m, err := model.Load(dir, model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// criteriaGolden is ../shared/goldens/<model>.criteria.json (float64 reference scores).
type criteriaGolden struct {
	PPL      []float64 `json:"ppl"`
	PPLOrder []int     `json:"ppl_order_least_important_first"`
}

func readCriteria(t *testing.T, name string) criteriaGolden {
	t.Helper()
	data, err := os.ReadFile(testutil.SharedDir(t, "goldens", name+".criteria.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g criteriaGolden
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

// goldenScoreFile writes the golden ppl scores in `shortllm score`'s layout for m.
func goldenScoreFile(t *testing.T, m *model.Model, name string) string {
	t.Helper()
	g := readCriteria(t, name)
	sf := ScoreFile{Model: m.Dir, ConfigHash: m.Config.Hash(), NumLayers: m.Config.NumHiddenLayers,
		Criterion: "ppl", Order: g.PPLOrder, Calibration: json.RawMessage(`{"source":"calib10x128.ids.json"}`)}
	for i := range g.PPL {
		sf.Scores = append(sf.Scores, &g.PPL[i])
	}
	data, _ := json.Marshal(sf)
	path := filepath.Join(t.TempDir(), name+".scores.json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// logits runs rows on m with the given blocks skipped. A model's tensors live on the first
// backend that uses them, so one backend serves a whole test.
func logits(t *testing.T, b backends.Backend, m *model.Model, rows [][]int, skip []int) []float32 {
	t.Helper()
	out, err := model.NewRunner(b, m).Logits(rows, skip)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// maxRelDiff is max|a−b| / max|b|.
func maxRelDiff(a, b []float32) float64 {
	var d, scale float64
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i]-b[i])))
		scale = math.Max(scale, math.Abs(float64(b[i])))
	}
	return d / scale
}

var probe = [][]int{{1, 403, 13, 72, 300, 41, 7, 250, 9, 111, 12, 500}, {1, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}}

// The defining property: the pruned model computes exactly what the original computes with
// the same blocks skipped.
func TestWrite_PrunedLogitsEqualSkippedOriginal(t *testing.T) {
	cases := []struct {
		name   string
		remove []int
	}{
		{"stories260K", []int{1, 3}},
		{"deep16", []int{5, 6, 7, 8, 10, 13}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := loadShared(t, c.name)
			b, err := backend.New("go", io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "pruned")
			if _, err := Write(src, &Plan{Remove: c.remove, Method: "blocks"}, WriteOptions{Out: out}); err != nil {
				t.Fatal(err)
			}
			pruned := load(t, out)
			if got := pruned.Config.NumHiddenLayers; got != src.Config.NumHiddenLayers-len(c.remove) {
				t.Fatalf("num_hidden_layers = %d", got)
			}
			want := logits(t, b, src, probe, c.remove)
			got := logits(t, b, pruned, probe, nil)
			if d := maxRelDiff(got, logits(t, b, src, probe, nil)); d < 1e-3 {
				t.Fatalf("removing %v changed the logits by only %.3g: the comparison cannot see pruning", c.remove, d)
			}
			if d := maxRelDiff(got, want); d > 1e-5 {
				t.Fatalf("pruned logits differ from the skipped original: max rel diff %.3g", d)
			} else {
				t.Logf("%s without %v: max rel diff %.3g over %d logits", c.name, c.remove, d, len(got))
			}
		})
	}
}

// deep16 --ratio 35% with the golden ppl scores removes the least important allowed blocks.
func TestSelect_Deep16Ratio35FromGoldenPPL(t *testing.T) {
	m := loadShared(t, "deep16")
	path := goldenScoreFile(t, m, "deep16")
	list, _, err := ReadScores(path)
	if err != nil {
		t.Fatal(err)
	}
	sf, err := PickScores(list, "ppl", path)
	if err == nil {
		err = sf.Check(m.Config, path)
	}
	if err != nil {
		t.Fatal(err)
	}
	plan, err := Select(m.Config, Selection{Ratio: 0.35, Policy: DefaultPolicy}, StaticRanker(sf))
	if err != nil {
		t.Fatal(err)
	}
	// Golden ppl order least important first: 7 13 6 8 10 5 15 …; 5 blocks (29.9%) is the
	// largest count within 35% (6 would remove 35.9%).
	if want := []int{6, 7, 8, 10, 13}; !slices.Equal(plan.Remove, want) {
		t.Fatalf("removed %v, want %v", plan.Remove, want)
	}
	var allowed []int
	for _, b := range readCriteria(t, "deep16").PPLOrder {
		if DefaultPolicy.Allowed(b, 16) {
			allowed = append(allowed, b)
		}
	}
	if !slices.Equal(slices.Sorted(slices.Values(allowed[:5])), plan.Remove) {
		t.Fatalf("removed %v are not the first 5 allowed of the golden order %v", plan.Remove, allowed)
	}
	if share := CountParams(m.Config).RemovedShare(5); math.Abs(share-227200.0/759872) > 1e-12 {
		t.Fatalf("share %v", share)
	}
}

// Round trip: a sharded BF16 source gives a sharded BF16 output whose surviving tensors are
// byte-identical to the source's (renumbered), and load → save of the output changes nothing.
func TestWrite_ShardedRoundTripByteIdentical(t *testing.T) {
	src := loadShared(t, "rand-gqa-llama3")
	shardedDir := filepath.Join(t.TempDir(), "sharded")
	if err := src.Save(shardedDir, model.SaveOptions{MaxShardSize: 200_000}); err != nil {
		t.Fatal(err)
	}
	sharded := load(t, shardedDir)
	out := filepath.Join(t.TempDir(), "pruned")
	if _, err := Write(sharded, &Plan{Remove: []int{1}, Method: "blocks"}, WriteOptions{Out: out}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, safetensors.IndexFileName)); err != nil {
		t.Fatalf("output is not sharded: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(out, "model-*-of-*.safetensors"))
	if len(files) < 2 {
		t.Fatalf("output has %d shards", len(files))
	}
	before, after := rawTensors(t, shardedDir), rawTensors(t, out)
	for name, b := range after {
		orig := name
		if blk, rest, ok := blockOf(name); ok && blk >= 1 {
			orig = layerPrefix + strconv.Itoa(blk+1) + rest
		}
		if !bytes.Equal(b, before[orig]) {
			t.Errorf("%s differs from source %s", name, orig)
		}
	}
	if len(after) != len(before)-len(src.Config.BlockTensorNames(1)) {
		t.Errorf("output has %d tensors, source %d", len(after), len(before))
	}
	again := filepath.Join(t.TempDir(), "again")
	if err := load(t, out).Save(again, model.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	for name, b := range rawTensors(t, again) {
		if !bytes.Equal(b, after[name]) {
			t.Errorf("%s changed on load → save", name)
		}
	}
}

func rawTensors(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	c, err := safetensors.OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	out := map[string][]byte{}
	for _, n := range c.Names() {
		if out[n], err = c.ReadRaw(n); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestWrite_ConfigAndRecord(t *testing.T) {
	src := loadShared(t, "deep16")
	out := filepath.Join(t.TempDir(), "pruned")
	plan := &Plan{Remove: []int{6, 7, 8, 10, 13}, Method: "ratio", Ratio: 0.35, Policy: &DefaultPolicy}
	if _, err := Write(src, plan, WriteOptions{Out: out, ToolVersion: "test"}); err != nil {
		t.Fatal(err)
	}
	var before, after map[string]any
	readJSON(t, filepath.Join(src.Dir, "config.json"), &before)
	readJSON(t, filepath.Join(out, "config.json"), &after)
	for k, v := range before {
		want, _ := json.Marshal(v)
		if k == "num_hidden_layers" {
			want = []byte("11")
		}
		if got, _ := json.Marshal(after[k]); string(got) != string(want) {
			t.Errorf("config %s = %s, want %s", k, got, want)
		}
	}
	for _, f := range []string{"tokenizer.json", "tokenizer.model", "generation_config.json"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("%s not copied", f)
		}
	}
	rec, ok, err := ReadRecord(out)
	if err != nil || !ok {
		t.Fatalf("record: %v %v", ok, err)
	}
	if rec.ParamsBefore != 759872 || rec.ParamsAfter != 759872-5*45440 || !slices.Equal(rec.KeptBlocks, []int{0, 1, 2, 3, 4, 5, 9, 11, 12, 14, 15}) ||
		rec.SourceModel != absDir(t, src.Dir) || rec.ToolVersion != "test" || rec.NumLayersAfter != 11 {
		t.Fatalf("record %+v", rec)
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatal(err)
	}
}

func TestCheckOut_RefusesDangerousOutputs(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(root, "model")
	existing := filepath.Join(root, "existing")
	user := filepath.Join(root, "user")
	for _, d := range []string{src, existing, user} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(existing, outdir.Marker), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(user, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		src:                            "is the input",
		filepath.Join(src, "pruned"):   "lies inside the input",
		root:                           "contains the input",
		existing:                       "exists (use --force",
		filepath.Join(src, "..", "ok"): "",
	}
	for out, want := range cases {
		err := CheckOut(src, out, false)
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("CheckOut(%s): err = %v, want %q", out, err, want)
		}
	}
	if err := CheckOut(src, existing, true); err != nil {
		t.Errorf("--force on an existing dir: %v", err)
	}
	if err := CheckOut(src, root, true); err == nil {
		t.Error("--force allowed replacing a directory that holds the input")
	}
	if err := CheckOut(src, user, true); err == nil || !strings.Contains(err.Error(), "not written by shortllm") {
		t.Errorf("--force on a user's folder: %v", err)
	}
}

func TestScoreFile_FromAnotherModel(t *testing.T) {
	deep := loadShared(t, "deep16")
	stories := loadShared(t, "stories260K")
	path := goldenScoreFile(t, deep, "deep16")
	list, _, err := ReadScores(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := list[0].Check(stories.Config, path); err == nil || !strings.Contains(err.Error(), "16-block") {
		t.Errorf("layer-count mismatch: %v", err)
	}
	other := deep.Config.Clone()
	other.RMSNormEps = 1e-6 // same depth, different model
	if err := list[0].Check(other, path); err == nil || !strings.Contains(err.Error(), "config_hash") {
		t.Errorf("hash mismatch: %v", err)
	}
}

func TestKeepLayers_PerLayerLists(t *testing.T) {
	cfg, err := model.ParseConfig([]byte(`{"model_type":"llama","hidden_size":8,"intermediate_size":16,
		"num_hidden_layers":4,"num_attention_heads":2,"vocab_size":10,
		"layer_types":["a","b","c","d"],"sliding_window":[1,2,3,4],"other":[1,2]}`))
	if err != nil {
		t.Fatal(err)
	}
	cut, err := cfg.KeepLayers([]int{0, 2, 3})
	if err != nil || !slices.Equal(cut, []string{"layer_types", "sliding_window"}) {
		t.Fatalf("KeepLayers = %v, %v", cut, err)
	}
	data, _ := cfg.MarshalJSON()
	var got map[string]any
	_ = json.Unmarshal(data, &got)
	if s, _ := json.Marshal([]any{got["layer_types"], got["sliding_window"], got["other"], got["num_hidden_layers"]}); string(s) != `[["a","c","d"],[1,3,4],[1,2],3]` {
		t.Fatalf("pruned config: %s", s)
	}
	qwen, err := model.ParseConfig([]byte(`{"model_type":"qwen2","hidden_size":8,"intermediate_size":16,
		"num_hidden_layers":4,"num_attention_heads":2,"vocab_size":10,"use_sliding_window":true,"max_window_layers":2}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := qwen.KeepLayers([]int{0, 1}); !errors.Is(err, model.ErrConfig) || !strings.Contains(err.Error(), "max_window_layers") {
		t.Fatalf("qwen2 sliding window: %v", err)
	}
}

func TestInspect_BeforeAndAfterPruning(t *testing.T) {
	src := loadShared(t, "deep16")
	r, err := Inspect(src.Dir)
	if err != nil {
		t.Fatal(err)
	}
	p := r.Params
	if p.Total != 759872 || p.Embeddings != 32768 || p.FinalNorm != 64 || p.LMHead != 0 || len(p.Blocks) != 16 ||
		p.Blocks[3] != 45440 || r.DTypes["F32"] != 16*9+2 || r.Sharded || r.Tokenizer == "" || r.Pruned != nil {
		t.Fatalf("report %+v", r)
	}
	if p.Total != CountParams(src.Config).Total {
		t.Fatalf("header count %d ≠ config count %d", p.Total, CountParams(src.Config).Total)
	}
	out := filepath.Join(t.TempDir(), "pruned")
	if _, err := Write(src, &Plan{Remove: []int{7}, Method: "blocks"}, WriteOptions{Out: out}); err != nil {
		t.Fatal(err)
	}
	r, err = Inspect(out)
	if err != nil || r.NumLayers != 15 || r.Params.Total != 759872-45440 || r.Pruned == nil || !slices.Equal(r.Pruned.RemovedBlocks, []int{7}) {
		t.Fatalf("pruned report %+v, %v", r, err)
	}
}

func absDir(t *testing.T, dir string) string {
	t.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

func TestPickScores_PlusNamesShareScores(t *testing.T) {
	list := []ScoreFile{{Criterion: "taylor+"}, {Criterion: "mag+"}}
	for _, c := range []struct{ ask, want string }{{"taylor", "taylor+"}, {"taylor+", "taylor+"}, {"magnitude", "mag+"}} {
		got, err := PickScores(list, c.ask, "s.json")
		if err != nil || got.Criterion != c.want {
			t.Errorf("PickScores(%q) = %v, %v; want the %q entry", c.ask, got, err, c.want)
		}
	}
	if _, err := PickScores(list, "ppl", "s.json"); err == nil {
		t.Error("ppl picked from a file without ppl scores")
	}
}
