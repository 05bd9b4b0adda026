package retrain

import (
	"errors"
	"math"
	"path/filepath"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph code reads like maths
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/shortllm/shortllm/internal/backend"
	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/testutil"
)

// TestMergeAdapter_EqualsAdapterForward: logits of the merged model equal the base model's
// with the adapter applied on the fly (the golden "after" adapter has non-zero B).
func TestMergeAdapter_EqualsAdapterForward(t *testing.T) {
	gdir := testutil.SharedDir(t, "goldens", "stories260K.lora_step")
	m, err := model.Load(testutil.SharedDir(t, "models", "stories260K"), model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := LoadAdapterWeights(gdir, filepath.Join(gdir, "adapter_model.after1.safetensors"), m.Config)
	if err != nil {
		t.Fatal(err)
	}
	b, err := backend.New("go", nil)
	if err != nil {
		t.Fatal(err)
	}
	rows := [][]int{{1, 300, 301, 302, 303, 304, 305, 306}}
	tr := &Trainer{cfg: m.Config, o: Options{Mode: ModeLoRA, Adapter: a}, scale: a.Config.Scale()}
	ids, _ := model.IDsTensor(rows)
	extra := append(append([]*tensors.Tensor{}, orderedTensors(a)...), ids)
	out, err := model.NewRunner(b, m).Run("adapter-forward", func(p model.Params, in []*Node) []*Node {
		train := in[:len(in)-1]
		res := model.Forward(m.Config, p, in[len(in)-1], model.ForwardOptions{Adapters: tr.adapters(train, nil)})
		return []*Node{ConvertDType(res.Logits, dtypes.Float32)}
	}, extra...)
	if err != nil {
		t.Fatal(err)
	}
	want := tensors.MustCopyFlatData[float32](out[0])
	if err := MergeAdapter(m, gdir); err == nil {
		t.Fatal("MergeAdapter on the golden dir read adapter_model.safetensors, which does not exist there")
	}
	if err := Merge(m, a); err != nil {
		t.Fatal(err)
	}
	got, err := model.NewRunner(b, m).Logits(rows, nil)
	if err != nil {
		t.Fatal(err)
	}
	var worst float64
	for i := range got {
		worst = math.Max(worst, math.Abs(float64(got[i]-want[i])))
	}
	if worst > 1e-4 {
		t.Fatalf("merged logits differ from adapter logits by %g", worst)
	}
}

func orderedTensors(a *Adapter) []*tensors.Tensor {
	var out []*tensors.Tensor
	for _, n := range a.Names() {
		out = append(out, a.Tensor(n))
	}
	return out
}

// TestNewAdapter_PEFTInit: B is zero, A is U(−1/√in, 1/√in), the same seed gives the same A.
func TestNewAdapter_PEFTInit(t *testing.T) {
	cfg, err := model.LoadConfig(testutil.SharedDir(t, "models", "stories260K", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	lc := NewLoRAConfig(4, 8, 0, []string{"q_proj", "down_proj"}, false)
	a1, err := NewAdapter(cfg, lc, 3)
	if err != nil {
		t.Fatal(err)
	}
	a2, _ := NewAdapter(cfg, lc, 3)
	if len(a1.Modules) != 2*cfg.NumHiddenLayers {
		t.Fatalf("%d modules, want %d", len(a1.Modules), 2*cfg.NumHiddenLayers)
	}
	for _, mod := range a1.Modules {
		A := tensors.MustCopyFlatData[float32](a1.A[mod])
		in := a1.A[mod].Shape().Dimensions[1]
		bound := 1 / math.Sqrt(float64(in))
		for i, v := range A {
			if math.Abs(float64(v)) > bound || v != tensors.MustCopyFlatData[float32](a2.A[mod])[i] {
				t.Fatalf("%s: A[%d] = %g (bound %g) or not reproducible", mod, i, v, bound)
			}
		}
		for _, v := range tensors.MustCopyFlatData[float32](a1.B[mod]) {
			if v != 0 {
				t.Fatalf("%s: B not zero", mod)
			}
		}
	}
	if s := NewLoRAConfig(4, 8, 0, nil, true).Scale(); s != 4 {
		t.Fatalf("rslora scale %g, want 8/√4 = 4", s)
	}
}

// TestLoRAConfig_TargetErrors: unknown modules and unsupported PEFT options are refused.
func TestLoRAConfig_TargetErrors(t *testing.T) {
	cfg, err := model.LoadConfig(testutil.SharedDir(t, "models", "stories260K", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, lc := range []LoRAConfig{
		NewLoRAConfig(4, 8, 0, []string{"q_proj", "c_attn"}, false),
		NewLoRAConfig(0, 8, 0, DefaultTargetModules, false),
		NewLoRAConfig(4, 8, 1, DefaultTargetModules, false),
		{R: 4, TargetModules: DefaultTargetModules, Bias: "all"},
	} {
		if _, err := NewAdapter(cfg, lc, 1); !errors.Is(err, ErrAdapter) {
			t.Errorf("%+v: got %v, want ErrAdapter", lc, err)
		}
	}
}

// TestAdapter_WriteLoadRoundTrip: PEFT files written by WriteInto load back bit-exact, and a
// model with another config refuses them.
func TestAdapter_WriteLoadRoundTrip(t *testing.T) {
	cfg, err := model.LoadConfig(testutil.SharedDir(t, "models", "stories260K", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewAdapter(cfg, NewLoRAConfig(2, 4, 0.1, []string{"v_proj"}, true), 9)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := a.WriteInto(dir, "base", cfg); err != nil {
		t.Fatal(err)
	}
	b, err := LoadAdapter(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range a.Names() {
		x, y := tensors.MustCopyFlatData[float32](a.Tensor(n)), tensors.MustCopyFlatData[float32](b.Tensor(n))
		for i := range x {
			if x[i] != y[i] {
				t.Fatalf("%s[%d]: %g != %g", n, i, x[i], y[i])
			}
		}
	}
	if !b.Config.UseRslora || b.Config.R != 2 || b.Config.BaseModelNameOrPath != "base" {
		t.Fatalf("config not kept: %+v", b.Config)
	}
	other := cfg.Clone()
	other.RMSNormEps = 1e-6
	if _, err := LoadAdapter(dir, other); !errors.Is(err, ErrAdapter) {
		t.Fatalf("another model: got %v, want ErrAdapter", err)
	}
}
