package retrain

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/safetensors"
)

// AdapterReport describes a PEFT LoRA adapter directory from its config and the safetensors
// header (no weights are read): what `shortllm inspect` shows for an adapter folder.
type AdapterReport struct {
	Dir           string   `json:"dir"`
	PeftType      string   `json:"peft_type"`
	R             int      `json:"r"`
	LoraAlpha     float64  `json:"lora_alpha"`
	Scale         float64  `json:"scale"`
	LoraDropout   float64  `json:"lora_dropout"`
	UseRslora     bool     `json:"use_rslora"`
	TargetModules []string `json:"target_modules"`
	InferenceMode bool     `json:"inference_mode"`
	// Base is base_model_name_or_path: the model the adapter was trained for.
	Base       string `json:"base_model_name_or_path"`
	ConfigHash string `json:"config_hash,omitempty"` // of the base, recorded by shortllm
	// BaseFound says the base is a local directory with a config.json; BaseMatches that its
	// config hash is the recorded one (nil when there is nothing to compare).
	BaseFound   bool           `json:"base_found"`
	BaseMatches *bool          `json:"base_matches,omitempty"`
	Modules     int            `json:"modules"` // adapted linear layers (lora_A/lora_B pairs)
	Layers      []int          `json:"layers"`  // blocks with at least one adapted layer
	Params      int64          `json:"params"`
	DTypes      map[string]int `json:"dtypes"`
	Bytes       int64          `json:"bytes"`
}

// IsAdapterDir reports whether dir holds a PEFT adapter rather than a model.
func IsAdapterDir(dir string) bool {
	_, errA := os.Stat(filepath.Join(dir, AdapterConfigFile))
	_, errM := os.Stat(filepath.Join(dir, "config.json"))
	return errA == nil && errors.Is(errM, fs.ErrNotExist)
}

// InspectAdapter reads dir/adapter_config.json and the header of adapter_model.safetensors.
func InspectAdapter(dir string) (*AdapterReport, error) {
	cfgPath := filepath.Join(dir, AdapterConfigFile)
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		return nil, fmt.Errorf("adapter %s: %w", dir, err)
	}
	var lc LoRAConfig
	if err := json.Unmarshal(data, &lc); err != nil {
		return nil, fmt.Errorf("adapter %s: %v: %w", cfgPath, err, ErrAdapter)
	}
	r := &AdapterReport{Dir: dir, PeftType: lc.PeftType, R: lc.R, LoraAlpha: lc.LoraAlpha, LoraDropout: lc.LoraDropout,
		UseRslora: lc.UseRslora, TargetModules: lc.TargetModules, InferenceMode: lc.InferenceMode,
		Base: lc.BaseModelNameOrPath, DTypes: map[string]int{}, Layers: []int{}}
	if lc.targetRegex != "" {
		r.TargetModules = []string{lc.targetRegex}
	}
	if lc.R > 0 {
		r.Scale = lc.Scale()
	}
	if err := r.readHeader(filepath.Join(dir, AdapterWeightsFile)); err != nil {
		return nil, err
	}
	r.checkBase()
	return r, nil
}

func (r *AdapterReport) readHeader(path string) error {
	f, err := safetensors.Open(path)
	if err != nil {
		return fmt.Errorf("adapter %s: %w", path, err)
	}
	defer f.Close()
	r.ConfigHash = f.Metadata()[configHashKey]
	layers := map[int]bool{}
	for _, t := range f.Tensors() {
		r.Params += t.NumElements()
		r.Bytes += t.NumElements() * int64(t.DType.Size())
		r.DTypes[string(t.DType)]++
		if strings.HasSuffix(t.Name, ".lora_A.weight") {
			r.Modules++
		}
		if l, ok := layerIndex(t.Name); ok {
			layers[l] = true
		}
	}
	for l := range layers {
		r.Layers = append(r.Layers, l)
	}
	sort.Ints(r.Layers)
	return nil
}

// layerIndex reads N from "...layers.N....".
func layerIndex(name string) (int, bool) {
	_, rest, ok := strings.Cut(name, "layers.")
	if !ok {
		return 0, false
	}
	num, _, _ := strings.Cut(rest, ".")
	n, err := strconv.Atoi(num)
	return n, err == nil
}

// checkBase looks for the base model: base_model_name_or_path as written (absolute, or
// relative to the working directory as older shortllm versions wrote it).
func (r *AdapterReport) checkBase() {
	if r.Base == "" {
		return
	}
	cfg, err := model.LoadConfig(filepath.Join(r.Base, "config.json"))
	if err != nil {
		return
	}
	r.BaseFound = true
	if r.ConfigHash != "" {
		ok := cfg.Hash() == r.ConfigHash
		r.BaseMatches = &ok
	}
}

// PeftBase is base_model_name_or_path as PEFT writes it: the absolute path of a local model
// directory, or the Hugging Face id (without an @revision) of a model from the hub.
func PeftBase(ref string) string {
	if ref == "" {
		return ref
	}
	if _, err := os.Stat(ref); err == nil {
		if abs, err := filepath.Abs(ref); err == nil {
			return abs
		}
		return ref
	}
	id, _, _ := strings.Cut(ref, "@")
	return id
}
