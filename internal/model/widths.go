package model

// Per-block widths of width-pruned models (heads and FFN channels removed).
//
// Uniform widths (every block keeps the same number of heads, key/value heads and FFN
// channels) whose head count divides hidden_size are a standard Hugging Face config:
// num_attention_heads, num_key_value_heads, intermediate_size, with head_dim written
// explicitly. transformers loads such a directory as is (checked with transformers 5.17 on the
// lent machine: scripts/hf_interop.py); it refuses other head counts, so those are marked too.
//
// Non-uniform widths cannot be said in a Llama config, and transformers would build every
// block with the top-level widths and fail (or worse, mis-load). Such a config.json
//   - lists each block's widths under "shortllm_layer_widths":
//     [{"num_attention_heads": 6, "num_key_value_heads": 3, "intermediate_size": 120}, …];
//   - keeps the top-level widths of the model before width pruning (the widest block shape);
//   - has model_type "shortllm_<base>" (e.g. "shortllm_llama") and its architectures prefixed
//     "Shortllm" (e.g. "ShortllmLlamaForCausalLM"), so no tool takes it for a plain Llama.
// shortllm reads it back as the base model type with LayerWidths set. When an edit makes the
// widths uniform again (depth pruning the odd blocks away), the plain config comes back.

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// LayerWidthsKey is the config.json key holding per-block widths.
const LayerWidthsKey = "shortllm_layer_widths"

// WidthModelTypePrefix marks model_type (and, capitalised, architectures) of a config with
// per-block widths.
const (
	WidthModelTypePrefix    = "shortllm_"
	WidthArchitecturePrefix = "Shortllm"
)

// LayerWidth is one block's attention and FFN widths.
type LayerWidth struct {
	NumAttentionHeads int `json:"num_attention_heads"`
	NumKeyValueHeads  int `json:"num_key_value_heads"`
	IntermediateSize  int `json:"intermediate_size"`
}

// KVGroups is the number of query heads sharing one key/value head in the block.
func (w LayerWidth) KVGroups() int { return w.NumAttentionHeads / w.NumKeyValueHeads }

// Width returns block i's widths.
func (c *Config) Width(i int) LayerWidth {
	if c.LayerWidths != nil {
		return c.LayerWidths[i]
	}
	return LayerWidth{NumAttentionHeads: c.NumAttentionHeads, NumKeyValueHeads: c.NumKeyValueHeads, IntermediateSize: c.IntermediateSize}
}

// Widths returns every block's widths.
func (c *Config) Widths() []LayerWidth {
	out := make([]LayerWidth, c.NumHiddenLayers)
	for i := range out {
		out[i] = c.Width(i)
	}
	return out
}

// SetLayerWidths sets every block's widths (one entry per block). Equal entries become the
// top-level fields of a plain config; otherwise LayerWidths holds them and the top-level
// fields keep their values. head_dim is written explicitly from now on.
func (c *Config) SetLayerWidths(ws []LayerWidth) error {
	if len(ws) != c.NumHiddenLayers {
		return fmt.Errorf("%w: %d layer widths for %d blocks", ErrConfig, len(ws), c.NumHiddenLayers)
	}
	if c.present == nil {
		c.present = map[string]bool{}
	}
	c.present["head_dim"] = true
	// transformers (5.x) refuses a Llama config whose hidden_size is not a multiple of
	// num_attention_heads, even with head_dim given: such widths are written marked as well.
	uniform := c.HiddenSize%ws[0].NumAttentionHeads == 0
	for _, w := range ws[1:] {
		uniform = uniform && w == ws[0]
	}
	if uniform {
		c.NumAttentionHeads, c.NumKeyValueHeads, c.IntermediateSize = ws[0].NumAttentionHeads, ws[0].NumKeyValueHeads, ws[0].IntermediateSize
		for _, k := range []string{"num_attention_heads", "num_key_value_heads", "intermediate_size"} {
			c.present[k] = true
		}
		c.LayerWidths = nil
	} else {
		c.LayerWidths = slices.Clone(ws)
	}
	return c.Validate()
}

// decodeWidths reads shortllm_layer_widths and undoes the model_type/architectures marking.
func (c *Config) decodeWidths(raw map[string]json.RawMessage) error {
	marked := strings.HasPrefix(c.ModelType, WidthModelTypePrefix)
	lw, has := raw[LayerWidthsKey]
	switch {
	case marked && !has:
		return fmt.Errorf("%w: model_type %q needs %s", ErrConfig, c.ModelType, LayerWidthsKey)
	case has && !marked:
		return fmt.Errorf("%w: %s needs model_type %q… (a plain %s config would be mis-loaded by transformers)",
			ErrConfig, LayerWidthsKey, WidthModelTypePrefix+c.ModelType, c.ModelType)
	case !has:
		return nil
	}
	if err := json.Unmarshal(lw, &c.LayerWidths); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrConfig, LayerWidthsKey, err)
	}
	if c.LayerWidths == nil {
		c.LayerWidths = []LayerWidth{}
	}
	c.ModelType = strings.TrimPrefix(c.ModelType, WidthModelTypePrefix)
	if a, ok := c.extra["architectures"]; ok {
		var archs []string
		if json.Unmarshal(a, &archs) == nil {
			for i := range archs {
				archs[i] = strings.TrimPrefix(archs[i], WidthArchitecturePrefix)
			}
			c.extra["architectures"], _ = json.Marshal(archs)
		}
	}
	return nil
}

// validateWidths checks every block's widths can drive the forward pass.
func (c *Config) validateWidths() error {
	if c.LayerWidths == nil {
		return nil
	}
	if len(c.LayerWidths) != c.NumHiddenLayers {
		return fmt.Errorf("%w: %s has %d entries for num_hidden_layers %d", ErrConfig, LayerWidthsKey, len(c.LayerWidths), c.NumHiddenLayers)
	}
	for i, w := range c.LayerWidths {
		switch {
		case w.NumAttentionHeads <= 0 || w.NumKeyValueHeads <= 0 || w.IntermediateSize <= 0:
			return fmt.Errorf("%w: %s[%d]: num_attention_heads (%d), num_key_value_heads (%d) and intermediate_size (%d) must be positive",
				ErrConfig, LayerWidthsKey, i, w.NumAttentionHeads, w.NumKeyValueHeads, w.IntermediateSize)
		case w.NumAttentionHeads%w.NumKeyValueHeads != 0:
			return fmt.Errorf("%w: %s[%d]: num_attention_heads (%d) must be divisible by num_key_value_heads (%d)",
				ErrConfig, LayerWidthsKey, i, w.NumAttentionHeads, w.NumKeyValueHeads)
		}
	}
	return nil
}

// markWidths writes the per-block widths and the non-Llama marking into a config being saved.
func (c *Config) markWidths(out map[string]any) {
	if c.LayerWidths == nil {
		return
	}
	out[LayerWidthsKey] = c.LayerWidths
	out["model_type"] = WidthModelTypePrefix + c.ModelType
	var archs []string
	if a, ok := c.extra["architectures"]; ok && json.Unmarshal(a, &archs) == nil {
		for i := range archs {
			archs[i] = WidthArchitecturePrefix + archs[i]
		}
		out["architectures"] = archs
	}
}

// EnableBiases turns on attention_bias (q/k/v/o biases) and/or mlp_bias (gate/up/down
// biases) in the config, written to config.json; it never turns one off. FLAP's bias
// compensation needs o_proj and down_proj biases, which transformers only has together with
// the others.
func (c *Config) EnableBiases(attention, mlp bool) {
	if c.present == nil {
		c.present = map[string]bool{}
	}
	if attention && !c.AttentionBias {
		c.AttentionBias, c.present["attention_bias"] = true, true
	}
	if mlp && !c.MLPBias {
		c.MLPBias, c.present["mlp_bias"] = true, true
	}
}
