package model

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

const widthBase = `{"model_type":"llama","architectures":["LlamaForCausalLM"],"hidden_size":64,"intermediate_size":172,
"num_hidden_layers":3,"num_attention_heads":8,"num_key_value_heads":4,"vocab_size":10}`

func mustParse(t *testing.T, s string) *Config {
	t.Helper()
	c, err := ParseConfig([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSetLayerWidths_UniformIsPlainLlama: equal widths whose head count divides hidden_size
// give a standard config (head_dim explicit, no shortllm keys) that a plain Llama reader
// takes as is; equal widths with a head count transformers refuses (64 % 6 ≠ 0: "hidden size
// is not a multiple of the number of attention heads", transformers 5.17) are marked instead.
func TestSetLayerWidths_UniformIsPlainLlama(t *testing.T) {
	c := mustParse(t, widthBase)
	w := LayerWidth{NumAttentionHeads: 4, NumKeyValueHeads: 2, IntermediateSize: 100}
	if err := c.SetLayerWidths([]LayerWidth{w, w, w}); err != nil {
		t.Fatal(err)
	}
	out, _ := c.MarshalJSON()
	var m map[string]any
	json.Unmarshal(out, &m)
	if m["model_type"] != "llama" || m["num_attention_heads"] != 4.0 || m["num_key_value_heads"] != 2.0 ||
		m["intermediate_size"] != 100.0 || m["head_dim"] != 8.0 || m[LayerWidthsKey] != nil {
		t.Errorf("uniform config = %s", out)
	}
	if back := mustParse(t, string(out)); back.HeadDim != 8 || back.LayerWidths != nil || back.Width(2) != w {
		t.Errorf("reparsed: head_dim %d widths %v", back.HeadDim, back.LayerWidths)
	}
	c = mustParse(t, widthBase)
	six := LayerWidth{NumAttentionHeads: 6, NumKeyValueHeads: 3, IntermediateSize: 100}
	if err := c.SetLayerWidths([]LayerWidth{six, six, six}); err != nil {
		t.Fatal(err)
	}
	out, _ = c.MarshalJSON()
	if !strings.Contains(string(out), `"model_type": "shortllm_llama"`) || !strings.Contains(string(out), LayerWidthsKey) {
		t.Errorf("6 heads of hidden 64: config not marked:\n%s", out)
	}
	if back := mustParse(t, string(out)); back.Width(2) != six || back.HeadDim != 8 {
		t.Errorf("reparsed 6-head widths: %v, head_dim %d", back.Width(2), back.HeadDim)
	}
}

// TestSetLayerWidths_NonUniformIsMarked: per-block widths are recorded and the file is
// marked as not a plain Llama; parsing restores the base type; cutting blocks back to equal
// widths restores the plain config.
func TestSetLayerWidths_NonUniformIsMarked(t *testing.T) {
	c := mustParse(t, widthBase)
	ws := []LayerWidth{{8, 4, 172}, {6, 3, 100}, {8, 4, 172}}
	if err := c.SetLayerWidths(ws); err != nil {
		t.Fatal(err)
	}
	out, _ := c.MarshalJSON()
	s := string(out)
	for _, want := range []string{`"model_type": "shortllm_llama"`, `"ShortllmLlamaForCausalLM"`, `"shortllm_layer_widths"`, `"num_attention_heads": 8`} {
		if !strings.Contains(s, want) {
			t.Errorf("config lacks %s:\n%s", want, s)
		}
	}
	back := mustParse(t, s)
	if back.ModelType != "llama" || back.Width(1) != ws[1] || back.Hash() != c.Hash() {
		t.Errorf("reparsed: model_type %q, block 1 %v", back.ModelType, back.Width(1))
	}
	if _, err := back.KeepLayers([]int{0, 2}); err != nil {
		t.Fatal(err)
	}
	plain, _ := back.MarshalJSON()
	if back.LayerWidths != nil || !strings.Contains(string(plain), `"LlamaForCausalLM"`) || strings.Contains(string(plain), "shortllm") {
		t.Errorf("after cutting to equal blocks: %s", plain)
	}
	if sh := back.ExpectedShapes()["model.layers.1.mlp.down_proj.weight"]; sh[1] != 172 {
		t.Errorf("block 1 down_proj %v", sh)
	}
}

func TestParseConfig_WidthErrors(t *testing.T) {
	marked := strings.Replace(widthBase, `"llama"`, `"shortllm_llama"`, 1)
	cases := map[string]string{
		"marked without widths":   marked,
		"widths without marking":  strings.Replace(widthBase, `"vocab_size"`, `"shortllm_layer_widths":[{"num_attention_heads":8,"num_key_value_heads":4,"intermediate_size":1}],"vocab_size"`, 1),
		"wrong count":             strings.Replace(marked, `"vocab_size"`, `"shortllm_layer_widths":[{"num_attention_heads":8,"num_key_value_heads":4,"intermediate_size":1}],"vocab_size"`, 1),
		"heads not divisible":     strings.Replace(marked, `"vocab_size"`, `"shortllm_layer_widths":[{"num_attention_heads":8,"num_key_value_heads":4,"intermediate_size":1},{"num_attention_heads":5,"num_key_value_heads":2,"intermediate_size":1},{"num_attention_heads":8,"num_key_value_heads":4,"intermediate_size":1}],"vocab_size"`, 1),
		"zero intermediate width": strings.Replace(marked, `"vocab_size"`, `"shortllm_layer_widths":[{"num_attention_heads":8,"num_key_value_heads":4,"intermediate_size":0},{"num_attention_heads":8,"num_key_value_heads":4,"intermediate_size":1},{"num_attention_heads":8,"num_key_value_heads":4,"intermediate_size":1}],"vocab_size"`, 1),
	}
	for name, src := range cases {
		if _, err := ParseConfig([]byte(src)); !errors.Is(err, ErrConfig) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: err = %v, want a one-line ErrConfig", name, err)
		}
	}
}
