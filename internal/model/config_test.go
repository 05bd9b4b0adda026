package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParseConfig_DefaultsAndFamilies(t *testing.T) {
	cases := []struct {
		name, json  string
		kv, headDim int
		bias        bool
		eos         []int
		ropeType    string
	}{
		{"llama defaults", `{"model_type":"llama","hidden_size":64,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":8,"vocab_size":10}`,
			8, 8, false, nil, ""},
		{"qwen2 has qkv bias", `{"model_type":"qwen2","hidden_size":64,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":8,"num_key_value_heads":2,"vocab_size":10}`,
			2, 8, true, nil, ""},
		{"llama3 eos list", `{"model_type":"llama","hidden_size":64,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":4,"head_dim":32,"vocab_size":10,"eos_token_id":[5,6],"rope_scaling":{"type":"linear","factor":2}}`,
			4, 32, false, []int{5, 6}, "linear"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := ParseConfig([]byte(c.json))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.NumKeyValueHeads != c.kv || cfg.HeadDim != c.headDim || cfg.AttentionBias != c.bias {
				t.Errorf("kv=%d head_dim=%d bias=%v, want %d %d %v", cfg.NumKeyValueHeads, cfg.HeadDim, cfg.AttentionBias, c.kv, c.headDim, c.bias)
			}
			if len(c.eos) > 0 && (len(cfg.EOSTokenID) != len(c.eos) || cfg.EOSTokenID[1] != c.eos[1]) {
				t.Errorf("eos %v, want %v", cfg.EOSTokenID, c.eos)
			}
			if c.ropeType != "" && cfg.RopeScaling.Type != c.ropeType {
				t.Errorf("rope type %q, want %q", cfg.RopeScaling.Type, c.ropeType)
			}
		})
	}
}

// TestConfig_RoundTripKeepsUnknownKeys: saved config = source keys, values unchanged except
// what shortllm set.
func TestConfig_RoundTripKeepsUnknownKeys(t *testing.T) {
	src := `{"model_type":"llama","hidden_size":64,"intermediate_size":8,"num_hidden_layers":3,"num_attention_heads":8,
	"vocab_size":10,"architectures":["LlamaForCausalLM"],"quantization_note":{"a":[1,2,{"b":null}]},"pretraining_tp":1,
	"rope_scaling":{"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192,"extra":true}}`
	cfg, err := ParseConfig([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	cfg.SetNumLayers(2)
	out, err := cfg.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var a, b map[string]any
	json.Unmarshal([]byte(src), &a)
	json.Unmarshal(out, &b)
	a["num_hidden_layers"] = 2.0
	if len(a) != len(b) {
		t.Fatalf("keys: source %d, saved %d: %s", len(a), len(b), out)
	}
	for k := range a {
		if mustJSON(a[k]) != mustJSON(b[k]) {
			t.Errorf("key %s: saved %s, want %s", k, mustJSON(b[k]), mustJSON(a[k]))
		}
	}
}

func TestParseConfig_Errors(t *testing.T) {
	base := map[string]any{"model_type": "llama", "hidden_size": 64, "intermediate_size": 8, "num_hidden_layers": 1,
		"num_attention_heads": 8, "vocab_size": 10}
	cases := []struct {
		name string
		edit map[string]any
		want string
	}{
		{"unknown model type", map[string]any{"model_type": "gpt2"}, `model_type "gpt2" is not supported`},
		{"heads not dividing hidden", map[string]any{"num_attention_heads": 7}, "hidden_size (64) must be divisible by num_attention_heads (7)"},
		{"kv heads not dividing heads", map[string]any{"num_key_value_heads": 3}, "num_attention_heads (8) must be divisible by num_key_value_heads (3)"},
		{"unknown rope type", map[string]any{"rope_scaling": map[string]any{"type": "dynamic", "factor": 2}}, `rope_scaling type "dynamic"`},
		{"negative layers", map[string]any{"num_hidden_layers": -1}, "num_hidden_layers must be positive"},
		{"bad eos", map[string]any{"eos_token_id": "x"}, "eos_token_id must be an int"},
		{"gelu", map[string]any{"hidden_act": "gelu"}, `hidden_act "gelu"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := map[string]any{}
			for k, v := range base {
				m[k] = v
			}
			for k, v := range c.edit {
				m[k] = v
			}
			data, _ := json.Marshal(m)
			_, err := ParseConfig(data)
			if err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want ErrConfig mentioning %q", err, c.want)
			}
		})
	}
}

// FuzzParseConfig: arbitrary bytes never panic; accepted configs survive a save/parse cycle.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"model_type":"llama","hidden_size":64,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":8,"vocab_size":10}`))
	f.Add([]byte(`{"model_type":"qwen2","hidden_size":6,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":3,"head_dim":2,"vocab_size":10,"rope_scaling":{"rope_type":"llama3","factor":8,"low_freq_factor":1,"high_freq_factor":4,"original_max_position_embeddings":8}}`))
	f.Add([]byte(`{"eos_token_id":[1,2],"rope_scaling":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data)
		if err != nil {
			return
		}
		out, err := cfg.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseConfig(out)
		if err != nil {
			t.Fatalf("saved config does not parse: %v\n%s", err, out)
		}
		if again.NumHiddenLayers != cfg.NumHiddenLayers || again.HeadDim != cfg.HeadDim {
			t.Fatalf("round trip changed the config")
		}
	})
}

// TestConfig_SaveKeepsKeyOrderAndNumberFormat: config.json is patched, not rewritten: the
// file's key order and every unchanged value's bytes (500000.0, 1e-05, 8.0) survive; only the
// changed key is rewritten, a new key is appended; a save and load keeps the config hash.
func TestConfig_SaveKeepsKeyOrderAndNumberFormat(t *testing.T) {
	src := `{
    "vocab_size": 10,
    "rope_theta": 500000.0,
    "rms_norm_eps": 1e-05,
    "zz_custom": {"b": 2.50, "a": [1.0, 2]},
    "num_hidden_layers": 3,
    "hidden_size": 64,
    "intermediate_size": 8,
    "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
    "num_attention_heads": 8,
    "model_type": "llama"
}`
	cfg, err := ParseConfig([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	same, err := cfg.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	if err := json.Indent(&want, []byte(src), "", "  "); err != nil {
		t.Fatal(err)
	}
	if string(same) != want.String() {
		t.Errorf("unchanged config is not the file re-indented:\n%s\nwant\n%s", same, want.String())
	}
	pruned := cfg.Clone()
	pruned.SetNumLayers(2)
	pruned.TorchDtype, pruned.present["torch_dtype"] = "bfloat16", true
	out, err := pruned.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	wantOut := strings.Replace(want.String(), `"num_hidden_layers": 3`, `"num_hidden_layers": 2`, 1)
	wantOut = strings.TrimSuffix(wantOut, "\n}") + ",\n  \"torch_dtype\": \"bfloat16\"\n}"
	if string(out) != wantOut {
		t.Errorf("patched config:\n%s\nwant\n%s", out, wantOut)
	}
	reloaded, err := ParseConfig(out)
	if err != nil {
		t.Fatal(err)
	}
	if reloaded.Hash() != pruned.Hash() {
		t.Errorf("hash changed by a save and load: %s vs %s", reloaded.Hash(), pruned.Hash())
	}
}
