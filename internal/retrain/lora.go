package retrain

// LoRA adapters in PEFT's layout: adapter_config.json + adapter_model.safetensors with keys
// base_model.model.{module}.lora_A.weight [r, in] and .lora_B.weight [out, r]; the layer
// computes W x + scale · B A dropout(x) with scale = alpha/r (alpha/√r with use_rslora).

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/shortllm/shortllm/internal/inputfile"
	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/safetensors"
)

// ErrAdapter marks an adapter that does not fit the model or cannot be read.
var ErrAdapter = errors.New("invalid LoRA adapter")

// Adapter file names, as PEFT writes them.
const (
	AdapterConfigFile  = "adapter_config.json"
	AdapterWeightsFile = "adapter_model.safetensors"
	pefPrefix          = "base_model.model."
	configHashKey      = "shortllm.config_hash"
)

// DefaultTargetModules are all seven linear layers of a LLaMA block.
var DefaultTargetModules = []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

// LoRAConfig mirrors PEFT's adapter_config.json (LoraConfig) for the fields shortllm uses;
// the remaining PEFT defaults are written so PEFT loads the file as it is.
type LoRAConfig struct {
	PeftType            string   `json:"peft_type"`
	TaskType            string   `json:"task_type"`
	R                   int      `json:"r"`
	LoraAlpha           float64  `json:"lora_alpha"`
	LoraDropout         float64  `json:"lora_dropout"`
	TargetModules       []string `json:"target_modules"`
	Bias                string   `json:"bias"`
	FanInFanOut         bool     `json:"fan_in_fan_out"`
	UseRslora           bool     `json:"use_rslora"`
	BaseModelNameOrPath string   `json:"base_model_name_or_path"`
	InferenceMode       bool     `json:"inference_mode"`
	InitLoraWeights     bool     `json:"init_lora_weights"`
	ModulesToSave       []string `json:"modules_to_save"`
	LayersToTransform   []int    `json:"layers_to_transform"`
	RankPattern         struct{} `json:"rank_pattern"`
	AlphaPattern        struct{} `json:"alpha_pattern"`
	// targetRegex is set when target_modules was a string (PEFT: a full-match regex).
	targetRegex string
}

// NewLoRAConfig returns PEFT's defaults for a causal LM with the given hyper-parameters.
func NewLoRAConfig(r int, alpha, dropout float64, targets []string, rslora bool) LoRAConfig {
	return LoRAConfig{PeftType: "LORA", TaskType: "CAUSAL_LM", R: r, LoraAlpha: alpha, LoraDropout: dropout,
		TargetModules: targets, Bias: "none", UseRslora: rslora, InitLoraWeights: true}
}

// UnmarshalJSON accepts target_modules as a list (suffix match) or a string (full regex).
func (c *LoRAConfig) UnmarshalJSON(b []byte) error {
	type plain LoRAConfig
	var raw struct {
		plain
		TargetModules json.RawMessage `json:"target_modules"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*c = LoRAConfig(raw.plain)
	if len(raw.TargetModules) > 0 && raw.TargetModules[0] == '"' {
		return json.Unmarshal(raw.TargetModules, &c.targetRegex)
	}
	if len(raw.TargetModules) > 0 {
		return json.Unmarshal(raw.TargetModules, &c.TargetModules)
	}
	return nil
}

// Scale is PEFT's scaling: lora_alpha / r, or lora_alpha / √r with use_rslora.
func (c LoRAConfig) Scale() float64 {
	if c.UseRslora {
		return c.LoraAlpha / math.Sqrt(float64(c.R))
	}
	return c.LoraAlpha / float64(c.R)
}

// Validate checks what PEFT would reject and what shortllm does not implement.
func (c LoRAConfig) Validate() error {
	switch {
	case c.PeftType != "" && c.PeftType != "LORA":
		return fmt.Errorf("peft_type %q is not LORA: %w", c.PeftType, ErrAdapter)
	case c.R <= 0:
		return fmt.Errorf("r (%d) must be positive: %w", c.R, ErrAdapter)
	case c.LoraDropout < 0 || c.LoraDropout >= 1:
		return fmt.Errorf("lora_dropout (%g) must be in [0, 1): %w", c.LoraDropout, ErrAdapter)
	case c.Bias != "" && c.Bias != "none":
		return fmt.Errorf("bias %q is not supported (only \"none\"): %w", c.Bias, ErrAdapter)
	case c.FanInFanOut:
		return fmt.Errorf("fan_in_fan_out is not supported for LLaMA linear layers: %w", ErrAdapter)
	case len(c.ModulesToSave) > 0 || len(c.LayersToTransform) > 0:
		return fmt.Errorf("modules_to_save and layers_to_transform are not supported: %w", ErrAdapter)
	case len(c.TargetModules) == 0 && c.targetRegex == "":
		return fmt.Errorf("target_modules is empty: %w", ErrAdapter)
	}
	return nil
}

// Modules lists the model's linear layers the config targets (sorted). As PEFT does, a list
// entry matches a module whose path equals it or ends with "."+entry; a string is a regex that
// must match the whole path. Entries that match nothing are an error.
func (c LoRAConfig) Modules(cfg *model.Config) ([]string, error) {
	linear := linearModules(cfg)
	if c.targetRegex != "" {
		re, err := regexp.Compile("^(?:" + c.targetRegex + ")$")
		if err != nil {
			return nil, fmt.Errorf("target_modules regex %q: %v: %w", c.targetRegex, err, ErrAdapter)
		}
		return matching(linear, re.MatchString, c.targetRegex)
	}
	var out []string
	for _, t := range c.TargetModules {
		got, err := matching(linear, func(m string) bool { return m == t || strings.HasSuffix(m, "."+t) }, t)
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	sort.Strings(out)
	return dedup(out), nil
}

func matching(modules []string, match func(string) bool, what string) ([]string, error) {
	var out []string
	for _, m := range modules {
		if match(m) {
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("target module %q matches no linear layer (have e.g. %s): %w",
			what, strings.Join(DefaultTargetModules, ", "), ErrAdapter)
	}
	return out, nil
}

func dedup(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// linearModules lists every linear layer of the blocks ("model.layers.3.mlp.up_proj").
func linearModules(cfg *model.Config) []string {
	var out []string
	for name := range cfg.ExpectedShapes() {
		if strings.HasSuffix(name, "_proj.weight") {
			out = append(out, strings.TrimSuffix(name, ".weight"))
		}
	}
	sort.Strings(out)
	return out
}

// Adapter holds LoRA weights in float32 by module path: A [r, in], B [out, r].
type Adapter struct {
	Config  LoRAConfig
	Modules []string
	A, B    map[string]*tensors.Tensor
}

// NewAdapter initialises an adapter as PEFT does (init_lora_weights=True): A from nn.Linear's
// default Kaiming-uniform(a=√5), i.e. U(−1/√in, 1/√in); B zero, so training starts at the base
// model. The same seed gives the same adapter (Go's PCG, not torch's generator).
func NewAdapter(cfg *model.Config, lc LoRAConfig, seed uint64) (*Adapter, error) {
	if err := lc.Validate(); err != nil {
		return nil, err
	}
	mods, err := lc.Modules(cfg)
	if err != nil {
		return nil, err
	}
	a := &Adapter{Config: lc, Modules: mods, A: map[string]*tensors.Tensor{}, B: map[string]*tensors.Tensor{}}
	rng := rand.New(rand.NewPCG(seed, 0x10a))
	shapes := cfg.ExpectedShapes()
	for _, m := range mods {
		out, in := shapes[m+".weight"][0], shapes[m+".weight"][1]
		bound := 1 / math.Sqrt(float64(in))
		av := make([]float32, lc.R*in)
		for i := range av {
			av[i] = float32((2*rng.Float64() - 1) * bound)
		}
		a.A[m] = tensors.FromFlatDataAndDimensions(av, lc.R, in)
		a.B[m] = tensors.FromFlatDataAndDimensions(make([]float32, out*lc.R), out, lc.R)
	}
	return a, nil
}

// Key returns the PEFT tensor name of a module's lora_A or lora_B weight.
func Key(module, which string) string { return pefPrefix + module + ".lora_" + which + ".weight" }

// LoadAdapter reads a PEFT LoRA adapter directory and checks it against cfg: every targeted
// module must have A and B with the right shapes, and no other tensor may be present.
func LoadAdapter(dir string, cfg *model.Config) (*Adapter, error) {
	return LoadAdapterWeights(dir, filepath.Join(dir, AdapterWeightsFile), cfg)
}

// LoadAdapterWeights reads the config from dir and the weights from weightsPath.
func LoadAdapterWeights(dir, weightsPath string, cfg *model.Config) (*Adapter, error) {
	cfgPath := filepath.Join(dir, AdapterConfigFile)
	data, err := inputfile.Read(cfgPath, inputfile.ConfigLimit)
	if err != nil {
		return nil, fmt.Errorf("adapter %s: %w", dir, err)
	}
	var lc LoRAConfig
	if err := json.Unmarshal(data, &lc); err != nil {
		return nil, fmt.Errorf("adapter %s: %v: %w", cfgPath, err, ErrAdapter)
	}
	if err := lc.Validate(); err != nil {
		return nil, fmt.Errorf("adapter %s: %w", cfgPath, err)
	}
	mods, err := lc.Modules(cfg)
	if err != nil {
		return nil, fmt.Errorf("adapter %s: %w", cfgPath, err)
	}
	a := &Adapter{Config: lc, Modules: mods, A: map[string]*tensors.Tensor{}, B: map[string]*tensors.Tensor{}}
	if err := a.readWeights(weightsPath, cfg); err != nil {
		return nil, fmt.Errorf("adapter %s: %w", weightsPath, err)
	}
	return a, nil
}

func (a *Adapter) readWeights(path string, cfg *model.Config) error {
	f, err := safetensors.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if h := f.Metadata()[configHashKey]; h != "" && h != cfg.Hash() {
		return fmt.Errorf("made for another model (config hash %.12s, this model %.12s): %w", h, cfg.Hash(), ErrAdapter)
	}
	want := a.expectedShapes(cfg)
	for _, info := range f.Tensors() {
		if _, ok := want[info.Name]; !ok {
			return fmt.Errorf("unexpected tensor %q (target_modules %v, r=%d): %w", info.Name, a.Config.TargetModules, a.Config.R, ErrAdapter)
		}
	}
	for name, shape := range want {
		t, err := readShaped(f, name, shape)
		if err != nil {
			return err
		}
		module, which := splitKey(name)
		if which == "A" {
			a.A[module] = t
		} else {
			a.B[module] = t
		}
	}
	return nil
}

func readShaped(f *safetensors.File, name string, shape []int) (*tensors.Tensor, error) {
	info, ok := f.Info(name)
	if !ok {
		return nil, fmt.Errorf("missing tensor %q: %w", name, ErrAdapter)
	}
	if fmt.Sprint(info.Shape) != fmt.Sprint(shape) {
		return nil, fmt.Errorf("tensor %q has shape %v, want %v: %w", name, info.Shape, shape, ErrAdapter)
	}
	vals, err := f.ReadFloat32(name)
	if err != nil {
		return nil, err
	}
	return tensors.FromFlatDataAndDimensions(vals, shape...), nil
}

// splitKey turns a PEFT key back into (module, "A"|"B").
func splitKey(key string) (string, string) {
	k := strings.TrimPrefix(key, pefPrefix)
	k = strings.TrimSuffix(k, ".weight")
	i := strings.LastIndex(k, ".lora_")
	return k[:i], k[i+len(".lora_"):]
}

// expectedShapes maps every PEFT key of the adapter to its shape.
func (a *Adapter) expectedShapes(cfg *model.Config) map[string][]int {
	shapes := cfg.ExpectedShapes()
	want := map[string][]int{}
	for _, m := range a.Modules {
		out, in := shapes[m+".weight"][0], shapes[m+".weight"][1]
		want[Key(m, "A")] = []int{a.Config.R, in}
		want[Key(m, "B")] = []int{out, a.Config.R}
	}
	return want
}

// Names lists the adapter's PEFT keys in a fixed order (the trainer's parameter order).
func (a *Adapter) Names() []string {
	var names []string
	for _, m := range a.Modules {
		names = append(names, Key(m, "A"), Key(m, "B"))
	}
	return names
}

// Tensor returns the tensor for a PEFT key.
func (a *Adapter) Tensor(key string) *tensors.Tensor {
	m, which := splitKey(key)
	if which == "A" {
		return a.A[m]
	}
	return a.B[m]
}

// SetTensor replaces the tensor for a PEFT key.
func (a *Adapter) SetTensor(key string, t *tensors.Tensor) {
	m, which := splitKey(key)
	if which == "A" {
		a.A[m] = t
	} else {
		a.B[m] = t
	}
}

// WriteInto writes adapter_config.json and adapter_model.safetensors into an existing dir.
// base is recorded as base_model_name_or_path (see PeftBase); the config hash goes into the
// safetensors metadata (PEFT ignores it) so a later load can refuse a different model. As
// PEFT's save_pretrained does, the saved config says inference_mode: true.
func (a *Adapter) WriteInto(dir, base string, cfg *model.Config) error {
	lc := a.Config
	lc.BaseModelNameOrPath, lc.InferenceMode = base, true
	if lc.TargetModules == nil {
		lc.TargetModules = []string{}
	}
	js, err := json.MarshalIndent(lc, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, AdapterConfigFile), append(js, '\n'), 0o644); err != nil {
		return err
	}
	var ts []safetensors.Tensor
	for _, name := range a.Names() {
		t := a.Tensor(name)
		data, err := safetensors.EncodeFloat32(tensors.MustCopyFlatData[float32](t), safetensors.F32)
		if err != nil {
			return err
		}
		ts = append(ts, safetensors.Tensor{Name: name, DType: safetensors.F32, Shape: t.Shape().Dimensions, Data: data})
	}
	meta := map[string]string{"format": "pt", configHashKey: cfg.Hash()}
	return safetensors.Write(filepath.Join(dir, AdapterWeightsFile), ts, meta)
}

// MergeAdapter reads the PEFT adapter in adapterDir and adds it into m's weights in memory
// (W += scale·B·A), as PEFT's merge_and_unload does.
func MergeAdapter(m *model.Model, adapterDir string) error {
	_, err := MergeAdapterStats(m, adapterDir)
	return err
}

// MergeAdapterStats is MergeAdapter, also saying how much of the update the merged weights
// hold (see MergeStats).
func MergeAdapterStats(m *model.Model, adapterDir string) (MergeStats, error) {
	a, err := LoadAdapter(adapterDir, m.Config)
	if err != nil {
		return MergeStats{}, err
	}
	return MergeWithStats(m, a)
}

// MergeStats compares the update the merged weights hold with the one asked for: a merge into
// bfloat16 weights rounds W + ΔW to 8 significant bits, so a small ΔW (a short LoRA run) can
// vanish. RelErr = ‖realised ΔW − ΔW‖ / ‖ΔW‖: about 1e-7 in float32, near 1 when the rounding
// swallows the update.
type MergeStats struct {
	RelErr float64
}

// Merge adds the adapter's deltas into m's weights: W[out, in] += scale · B[out, r] · A[r, in],
// accumulated in float64 and rounded once.
func Merge(m *model.Model, a *Adapter) error {
	_, err := MergeWithStats(m, a)
	return err
}

// MergeWithStats is Merge with MergeStats.
func MergeWithStats(m *model.Model, a *Adapter) (MergeStats, error) {
	scale := a.Config.Scale()
	var want2, lost2 float64
	for _, mod := range a.Modules {
		name := mod + ".weight"
		w, ok := m.Weights[name]
		if !ok {
			return MergeStats{}, fmt.Errorf("merge: model has no tensor %q: %w", name, ErrAdapter)
		}
		vals := model.Float32Values(w)
		A := tensors.MustCopyFlatData[float32](a.A[mod])
		B := tensors.MustCopyFlatData[float32](a.B[mod])
		out, in, r := w.Shape().Dimensions[0], w.Shape().Dimensions[1], a.Config.R
		for o := range out {
			for i := range in {
				var s float64
				for k := range r {
					s += float64(B[o*r+k]) * float64(A[k*in+i])
				}
				d, old := scale*s, vals[o*in+i]
				vals[o*in+i] = float32(float64(old) + d)
				e := float64(model.RoundValue(vals[o*in+i], w.DType())) - float64(old) - d
				want2, lost2 = want2+d*d, lost2+e*e
			}
		}
		t, err := sameDType(vals, w)
		if err != nil {
			return MergeStats{}, fmt.Errorf("merge %s: %w", name, err)
		}
		m.Weights[name] = t
	}
	st := MergeStats{}
	if want2 > 0 {
		st.RelErr = math.Sqrt(lost2 / want2)
	}
	return st, nil
}

// sameDType builds a tensor with like's dtype and shape from float32 values.
func sameDType(vals []float32, like *tensors.Tensor) (*tensors.Tensor, error) {
	return model.TensorFromFloat32(vals, like.Shape().Dimensions, like.DType())
}
