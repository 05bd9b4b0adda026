package model

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sort"

	"github.com/shortllm/shortllm/internal/inputfile"
)

// ErrConfig marks a config.json that cannot describe a LLaMA-family model.
var ErrConfig = errors.New("invalid model config")

// RopeScaling mirrors config.json's "rope_scaling". Type is "default", "linear" or "llama3"
// (HF accepts the kind under either "rope_type" or the older "type").
type RopeScaling struct {
	Type                          string  `json:"-"`
	Factor                        float64 `json:"factor,omitempty"`
	LowFreqFactor                 float64 `json:"low_freq_factor,omitempty"`
	HighFreqFactor                float64 `json:"high_freq_factor,omitempty"`
	OriginalMaxPositionEmbeddings int     `json:"original_max_position_embeddings,omitempty"`
}

// Config mirrors a Hugging Face config.json for model_type llama, mistral or qwen2 — the
// families that share the LLaMA block layout. Fields not listed are kept in Extra verbatim, so a
// config that is loaded and saved again differs only in what shortllm changed.
type Config struct {
	ModelType             string       `json:"model_type"`
	HiddenSize            int          `json:"hidden_size"`
	IntermediateSize      int          `json:"intermediate_size"`
	NumHiddenLayers       int          `json:"num_hidden_layers"`
	NumAttentionHeads     int          `json:"num_attention_heads"`
	NumKeyValueHeads      int          `json:"num_key_value_heads"`
	HeadDim               int          `json:"head_dim"`
	RMSNormEps            float64      `json:"rms_norm_eps"`
	RopeTheta             float64      `json:"rope_theta"`
	RopeScaling           *RopeScaling `json:"rope_scaling"`
	TieWordEmbeddings     bool         `json:"tie_word_embeddings"`
	AttentionBias         bool         `json:"attention_bias"`
	MLPBias               bool         `json:"mlp_bias"`
	VocabSize             int          `json:"vocab_size"`
	BOSTokenID            []int        `json:"-"`
	EOSTokenID            []int        `json:"-"`
	MaxPositionEmbeddings int          `json:"max_position_embeddings"`
	HiddenAct             string       `json:"hidden_act"`
	TorchDtype            string       `json:"torch_dtype"`
	// LayerWidths gives each block's widths after non-uniform width pruning (config key
	// "shortllm_layer_widths", see widths.go); nil when every block has the top-level widths.
	LayerWidths []LayerWidth `json:"-"`

	// present records which known keys appeared in the file, so saving writes back the same
	// set of keys (HF defaults are applied for computing, not injected into the file).
	present map[string]bool
	// extra holds every key this struct does not model, verbatim.
	extra map[string]json.RawMessage
	// ropeRaw is rope_scaling as written, saved back verbatim (shortllm never changes it).
	ropeRaw json.RawMessage
	// order and orig are the file's keys in their order and its values' bytes: saving patches
	// the file (unchanged values keep their bytes, so 500000.0 stays 500000.0) instead of
	// rewriting it. Never mutated after parsing, so clones share them.
	order []string
	orig  map[string]json.RawMessage
}

// knownKeys are the config.json keys that Config models; everything else goes to extra.
var knownKeys = []string{
	"model_type", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
	"num_key_value_heads", "head_dim", "rms_norm_eps", "rope_theta", "rope_scaling",
	"tie_word_embeddings", "attention_bias", "mlp_bias", "vocab_size", "bos_token_id", "eos_token_id",
	"max_position_embeddings", "hidden_act", "torch_dtype", LayerWidthsKey,
}

// LoadConfig reads and validates dir/config.json (or a config file path).
func LoadConfig(path string) (*Config, error) {
	data, err := inputfile.Read(path, inputfile.ConfigLimit)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig decodes config.json bytes, applies the HF defaults of the model type and validates.
func ParseConfig(data []byte) (*Config, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	cfg := &Config{present: map[string]bool{}, extra: map[string]json.RawMessage{}, orig: raw}
	var err error
	if cfg.order, err = topLevelKeys(data); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	for k, v := range raw {
		cfg.extra[k] = v
	}
	for _, k := range knownKeys {
		if _, ok := raw[k]; ok {
			cfg.present[k] = true
			delete(cfg.extra, k)
		}
	}
	if err := cfg.decodeKnown(raw); err != nil {
		return nil, err
	}
	cfg.applyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func (c *Config) decodeKnown(raw map[string]json.RawMessage) error {
	// Decode the plain fields through a copy without the ones needing special handling.
	plain := map[string]json.RawMessage{}
	for _, k := range knownKeys {
		if v, ok := raw[k]; ok && k != "rope_scaling" && k != "bos_token_id" && k != "eos_token_id" && k != LayerWidthsKey {
			plain[k] = v
		}
	}
	b, _ := json.Marshal(plain)
	if err := json.Unmarshal(b, c); err != nil {
		return fmt.Errorf("%w: %v", ErrConfig, err)
	}
	var err error
	if c.BOSTokenID, err = decodeTokenIDs(raw["bos_token_id"], "bos_token_id"); err != nil {
		return err
	}
	if c.EOSTokenID, err = decodeTokenIDs(raw["eos_token_id"], "eos_token_id"); err != nil {
		return err
	}
	if rs, ok := raw["rope_scaling"]; ok && string(rs) != "null" {
		if c.RopeScaling, err = decodeRopeScaling(rs); err != nil {
			return err
		}
		c.ropeRaw = append(json.RawMessage(nil), rs...)
	}
	return c.decodeWidths(raw)
}

// decodeTokenIDs accepts null, an int or a list of ints (LLaMA-3 lists several EOS ids).
func decodeTokenIDs(raw json.RawMessage, field string) ([]int, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one int
	if err := json.Unmarshal(raw, &one); err == nil {
		return []int{one}, nil
	}
	var many []int
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, fmt.Errorf("%w: %s must be an int or a list of ints, got %s", ErrConfig, field, raw)
	}
	return many, nil
}

func decodeRopeScaling(raw json.RawMessage) (*RopeScaling, error) {
	var rs RopeScaling
	if err := json.Unmarshal(raw, &rs); err != nil {
		return nil, fmt.Errorf("%w: rope_scaling: %v", ErrConfig, err)
	}
	var kind struct {
		RopeType string `json:"rope_type"`
		Type     string `json:"type"`
	}
	_ = json.Unmarshal(raw, &kind)
	rs.Type = kind.RopeType
	if rs.Type == "" {
		rs.Type = kind.Type
	}
	if rs.Type == "" {
		rs.Type = "default"
	}
	return &rs, nil
}

// applyDefaults fills what HF's config classes default when a key is absent.
func (c *Config) applyDefaults() {
	if !c.present["num_key_value_heads"] || c.NumKeyValueHeads == 0 {
		c.NumKeyValueHeads = c.NumAttentionHeads
	}
	if (!c.present["head_dim"] || c.HeadDim == 0) && c.NumAttentionHeads > 0 {
		c.HeadDim = c.HiddenSize / c.NumAttentionHeads
	}
	if !c.present["rms_norm_eps"] {
		c.RMSNormEps = 1e-6 // LlamaConfig, MistralConfig and Qwen2Config all default to 1e-6
	}
	if !c.present["rope_theta"] {
		c.RopeTheta = 10000
	}
	if !c.present["hidden_act"] {
		c.HiddenAct = "silu"
	}
	if !c.present["max_position_embeddings"] {
		c.MaxPositionEmbeddings = 2048
	}
	// Qwen2 always carries q/k/v biases; its config has no attention_bias key.
	if c.ModelType == "qwen2" {
		c.AttentionBias = true
	}
}

// Validate checks the config can drive the forward pass; each error names the HF field.
func (c *Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	if err := c.validateWidths(); err != nil {
		return err
	}
	switch c.ModelType {
	case "llama", "mistral", "qwen2":
	case "":
		return bad("model_type is missing")
	default:
		return bad("model_type %q is not supported (llama, mistral, qwen2)", c.ModelType)
	}
	positive := []struct {
		name string
		v    int
	}{
		{"hidden_size", c.HiddenSize}, {"intermediate_size", c.IntermediateSize},
		{"num_hidden_layers", c.NumHiddenLayers}, {"num_attention_heads", c.NumAttentionHeads},
		{"num_key_value_heads", c.NumKeyValueHeads}, {"head_dim", c.HeadDim},
		{"vocab_size", c.VocabSize}, {"max_position_embeddings", c.MaxPositionEmbeddings},
	}
	for _, p := range positive {
		if p.v <= 0 {
			return bad("%s must be positive, got %d", p.name, p.v)
		}
	}
	if !c.present["head_dim"] && c.HiddenSize%c.NumAttentionHeads != 0 {
		return bad("hidden_size (%d) must be divisible by num_attention_heads (%d)", c.HiddenSize, c.NumAttentionHeads)
	}
	if c.NumAttentionHeads%c.NumKeyValueHeads != 0 {
		return bad("num_attention_heads (%d) must be divisible by num_key_value_heads (%d)", c.NumAttentionHeads, c.NumKeyValueHeads)
	}
	if c.HeadDim%2 != 0 {
		return bad("head_dim (%d) must be even for rotary embeddings", c.HeadDim)
	}
	if c.HiddenAct != "silu" && c.HiddenAct != "swish" {
		return bad("hidden_act %q is not supported (silu)", c.HiddenAct)
	}
	if !(c.RMSNormEps > 0) || !(c.RopeTheta > 0) || math.IsInf(c.RopeTheta, 0) {
		return bad("rms_norm_eps (%g) and rope_theta (%g) must be positive", c.RMSNormEps, c.RopeTheta)
	}
	return c.validateRopeScaling()
}

func (c *Config) validateRopeScaling() error {
	rs := c.RopeScaling
	if rs == nil {
		return nil
	}
	switch rs.Type {
	case "default":
	case "linear":
		if !(rs.Factor > 0) {
			return fmt.Errorf("%w: rope_scaling.factor must be positive for linear scaling, got %g", ErrConfig, rs.Factor)
		}
	case "llama3":
		if !(rs.Factor > 0) || !(rs.LowFreqFactor > 0) || !(rs.HighFreqFactor > rs.LowFreqFactor) || rs.OriginalMaxPositionEmbeddings <= 0 {
			return fmt.Errorf("%w: rope_scaling (llama3) needs factor > 0, 0 < low_freq_factor < high_freq_factor and original_max_position_embeddings > 0", ErrConfig)
		}
	default:
		return fmt.Errorf("%w: rope_scaling type %q is not supported (default, linear, llama3)", ErrConfig, rs.Type)
	}
	return nil
}

// KVGroups is the number of query heads that share one key/value head (top-level widths;
// Width(i).KVGroups() for block i of a width-pruned model).
func (c *Config) KVGroups() int { return c.NumAttentionHeads / c.NumKeyValueHeads }

// MarshalJSON writes config.json as the file it was loaded from, patched: the same keys in the
// same order, every unchanged value with its original bytes (number formatting included), only
// changed values rewritten, keys that are new appended in sorted order; indented by two
// spaces, as transformers writes it. A config not parsed from a file is written sorted.
func (c *Config) MarshalJSON() ([]byte, error) {
	cur := c.values()
	if c.order == nil {
		return c.canonicalJSON()
	}
	var buf bytes.Buffer
	buf.WriteByte('{')
	written := map[string]bool{}
	emit := func(k string, v json.RawMessage) {
		if len(written) > 0 {
			buf.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		buf.Write(kb)
		buf.WriteByte(':')
		buf.Write(v)
		written[k] = true
	}
	for _, k := range append(append([]string(nil), c.order...), sortedKeys(cur)...) {
		v, ok := cur[k]
		if !ok || written[k] {
			continue
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("config key %s: %w", k, err)
		}
		if old, ok := c.orig[k]; ok && sameJSON(old, b) {
			b = old
		}
		emit(k, b)
	}
	buf.WriteByte('}')
	var out bytes.Buffer
	if err := json.Indent(&out, buf.Bytes(), "", "  "); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// topLevelKeys lists the keys of a JSON object in file order.
func topLevelKeys(data []byte) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil { // {
		return nil, err
	}
	var keys []string
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		k, _ := t.(string)
		keys = append(keys, k)
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// sameJSON compares two JSON values by meaning (500000.0 equals 500000).
func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// canonicalJSON is the config with sorted keys and Go's number formatting: the form Hash
// covers, so the hash of a model does not depend on how its file was laid out.
func (c *Config) canonicalJSON() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(c.values()); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// values is every key to write with its current value: the unknown keys verbatim and the
// known keys the file had (or that shortllm set).
func (c *Config) values() map[string]any {
	out := map[string]any{}
	for k, v := range c.extra {
		out[k] = v
	}
	vals := map[string]any{
		"model_type": c.ModelType, "hidden_size": c.HiddenSize, "intermediate_size": c.IntermediateSize,
		"num_hidden_layers": c.NumHiddenLayers, "num_attention_heads": c.NumAttentionHeads,
		"num_key_value_heads": c.NumKeyValueHeads, "head_dim": c.HeadDim, "rms_norm_eps": c.RMSNormEps,
		"rope_theta": c.RopeTheta, "tie_word_embeddings": c.TieWordEmbeddings,
		"attention_bias": c.AttentionBias, "mlp_bias": c.MLPBias, "vocab_size": c.VocabSize,
		"max_position_embeddings": c.MaxPositionEmbeddings, "hidden_act": c.HiddenAct, "torch_dtype": c.TorchDtype,
		"bos_token_id": tokenIDsJSON(c.BOSTokenID), "eos_token_id": tokenIDsJSON(c.EOSTokenID),
		"rope_scaling": c.ropeScalingJSON(),
	}
	for _, k := range knownKeys {
		if (c.present == nil || c.present[k]) && k != LayerWidthsKey { // markWidths writes it
			out[k] = vals[k]
		}
	}
	c.markWidths(out)
	return out
}

func tokenIDsJSON(ids []int) any {
	switch len(ids) {
	case 0:
		return nil
	case 1:
		return ids[0]
	}
	return ids
}

// ropeScalingJSON keeps the original rope_scaling object verbatim.
func (c *Config) ropeScalingJSON() any {
	if c.RopeScaling == nil {
		return nil
	}
	if c.ropeRaw != nil {
		return c.ropeRaw
	}
	m := map[string]any{"rope_type": c.RopeScaling.Type}
	if c.RopeScaling.Factor != 0 {
		m["factor"] = c.RopeScaling.Factor
	}
	if c.RopeScaling.Type == "llama3" {
		m["low_freq_factor"] = c.RopeScaling.LowFreqFactor
		m["high_freq_factor"] = c.RopeScaling.HighFreqFactor
		m["original_max_position_embeddings"] = c.RopeScaling.OriginalMaxPositionEmbeddings
	}
	return m
}

// Clone returns a deep copy, so a pruned config never aliases its source.
func (c *Config) Clone() *Config {
	cp := *c
	cp.BOSTokenID = append([]int(nil), c.BOSTokenID...)
	cp.EOSTokenID = append([]int(nil), c.EOSTokenID...)
	if c.RopeScaling != nil {
		rs := *c.RopeScaling
		cp.RopeScaling = &rs
	}
	cp.present = map[string]bool{}
	for k, v := range c.present {
		cp.present[k] = v
	}
	cp.extra = map[string]json.RawMessage{}
	for k, v := range c.extra {
		cp.extra[k] = v
	}
	cp.LayerWidths = slices.Clone(c.LayerWidths)
	return &cp
}

// SetNumLayers changes num_hidden_layers only; per-layer lists in unknown keys are not
// touched. Pruning uses KeepLayers, which cuts those lists to the surviving blocks.
func (c *Config) SetNumLayers(n int) {
	c.NumHiddenLayers = n
	if c.present != nil {
		c.present["num_hidden_layers"] = true
	}
}

// ExtraKeys lists the unknown keys kept verbatim (for inspect and tests).
func (c *Config) ExtraKeys() []string {
	keys := make([]string, 0, len(c.extra))
	for k := range c.extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Hash identifies the architecture a result was computed on: sha256 of the saved config.json
// form. Scores or adapters from a different model (or a pruned copy) have a different hash.
func (c *Config) Hash() string {
	b, err := c.canonicalJSON()
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// InitializerRange is config.json's initializer_range (the std of HF's weight init), 0.02 when
// absent.
func (c *Config) InitializerRange() float64 {
	var v float64
	if raw, ok := c.extra["initializer_range"]; ok && json.Unmarshal(raw, &v) == nil && v > 0 {
		return v
	}
	return 0.02
}
