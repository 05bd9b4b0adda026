package model

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"

	"github.com/shortllm/shortllm/internal/safetensors"
	"github.com/shortllm/shortllm/internal/testutil"
)

// writeTinyModel saves a random tiny model into a fresh temp dir and returns the dir.
func writeTinyModel(t *testing.T, opts SaveOptions) string {
	t.Helper()
	m, err := Init(tinyConfig(t), 11, 0.1, dtypes.Float32)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "tiny")
	if err := m.Save(dir, opts); err != nil {
		t.Fatal(err)
	}
	return dir
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
		b, err := c.ReadRaw(n)
		if err != nil {
			t.Fatal(err)
		}
		out[n] = b
	}
	return out
}

func TestSave_RoundTripBitExact(t *testing.T) {
	for _, name := range []string{"stories260K", "rand-gqa-llama3", "rand-bias-headdim"} {
		t.Run(name, func(t *testing.T) {
			m := loadShared(t, name)
			out := filepath.Join(t.TempDir(), "copy")
			if err := m.Save(out, SaveOptions{}); err != nil {
				t.Fatal(err)
			}
			want, got := rawTensors(t, m.Dir), rawTensors(t, out)
			if len(want) != len(got) {
				t.Fatalf("saved %d tensors, source has %d", len(got), len(want))
			}
			for n, b := range want {
				if !bytes.Equal(b, got[n]) {
					t.Errorf("tensor %s differs after load → save", n)
				}
			}
			// Unknown config keys survive, known ones keep their values.
			var src, dst map[string]any
			readJSON(t, filepath.Join(m.Dir, "config.json"), &src)
			readJSON(t, filepath.Join(out, "config.json"), &dst)
			for k, v := range src {
				if vb, _ := json.Marshal(v); string(vb) != mustJSON(dst[k]) {
					t.Errorf("config key %s: saved %s, source %s", k, mustJSON(dst[k]), vb)
				}
			}
			if _, err := os.Stat(filepath.Join(out, "tokenizer.json")); err != nil {
				t.Errorf("tokenizer.json not copied: %v", err)
			}
		})
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

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestSave_ShardedLoadsIdentically(t *testing.T) {
	single := writeTinyModel(t, SaveOptions{})
	sharded := writeTinyModel(t, SaveOptions{MaxShardSize: 4000})
	if _, err := os.Stat(filepath.Join(sharded, "model.safetensors.index.json")); err != nil {
		t.Fatalf("no index written: %v", err)
	}
	a, err := Load(single, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load(sharded, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !b.Sharded || a.Sharded {
		t.Fatalf("Sharded flags: single %v, sharded %v", a.Sharded, b.Sharded)
	}
	for n, w := range a.Weights {
		if !slicesEqual(Float32Values(w), Float32Values(b.Weights[n])) {
			t.Errorf("tensor %s differs between single-file and sharded load", n)
		}
	}
	// A sharded model saved without options stays sharded.
	again := filepath.Join(t.TempDir(), "again")
	if err := b.Save(again, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(again, "model.safetensors.index.json")); err != nil {
		t.Errorf("sharded input saved unsharded: %v", err)
	}
}

func slicesEqual(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSave_RefusesExistingWithoutForce(t *testing.T) {
	dir := writeTinyModel(t, SaveOptions{})
	m, err := Load(dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Save(dir, SaveOptions{Force: true}); err == nil || !strings.Contains(err.Error(), "is the input") {
		t.Fatalf("want an 'is the input' error, got %v", err)
	}
	out := filepath.Join(t.TempDir(), "o")
	if err := m.Save(out, SaveOptions{DType: safetensors.BF16}); err != nil {
		t.Fatal(err)
	}
	if err := m.Save(out, SaveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Dir(out))
	if len(entries) != 1 {
		t.Errorf("temporary directories left behind: %v", entries)
	}
}

// TestLoad_BadInput: each broken checkpoint gives a one-line error naming the file.
func TestLoad_BadInput(t *testing.T) {
	cases := []struct {
		name   string
		break_ func(t *testing.T, dir string)
		want   string // substring of the error
		is     error
	}{
		{"missing safetensors", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "model.safetensors"))
		}, "model.safetensors", nil},
		{"truncated safetensors", func(t *testing.T, dir string) {
			truncate(t, filepath.Join(dir, "model.safetensors"), 5)
		}, "model.safetensors", safetensors.ErrHeader},
		{"header length beyond file", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "model.safetensors")
			data, _ := os.ReadFile(p)
			binary.LittleEndian.PutUint64(data[:8], uint64(len(data))*4)
			os.WriteFile(p, data, 0o644)
		}, "model.safetensors", safetensors.ErrHeader},
		{"data cut short", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "model.safetensors")
			st, _ := os.Stat(p)
			truncate(t, p, st.Size()-100)
		}, "model.safetensors", nil},
		{"missing tensor", func(t *testing.T, dir string) {
			rewriteTensors(t, dir, func(ts []safetensors.Tensor) []safetensors.Tensor {
				return dropTensor(ts, "model.layers.1.mlp.up_proj.weight")
			})
		}, `missing tensor "model.layers.1.mlp.up_proj.weight"`, ErrWeights},
		{"shape mismatch with config", func(t *testing.T, dir string) {
			editConfig(t, dir, "intermediate_size", 25)
		}, "has shape", ErrWeights},
		{"unexpected tensor", func(t *testing.T, dir string) {
			editConfig(t, dir, "num_hidden_layers", 1)
		}, "unexpected tensor", ErrWeights},
		{"heads not dividing hidden", func(t *testing.T, dir string) {
			editConfig(t, dir, "head_dim", nil)
			editConfig(t, dir, "num_attention_heads", 3)
		}, "hidden_size (16) must be divisible by num_attention_heads (3)", ErrConfig},
		{"unknown rope_scaling type", func(t *testing.T, dir string) {
			editConfig(t, dir, "rope_scaling", map[string]any{"rope_type": "yarn", "factor": 2})
		}, `rope_scaling type "yarn" is not supported`, ErrConfig},
		{"dtype not float", func(t *testing.T, dir string) {
			rewriteTensors(t, dir, func(ts []safetensors.Tensor) []safetensors.Tensor {
				for i := range ts {
					if ts[i].Name == "model.norm.weight" {
						ts[i].DType = safetensors.I32
					}
				}
				return ts
			})
		}, "dtype I32", ErrWeights},
		{"config not JSON", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "config.json"), []byte("{oops"), 0o644)
		}, "config.json", ErrConfig},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := writeTinyModel(t, SaveOptions{})
			c.break_(t, dir)
			_, err := Load(dir, LoadOptions{})
			if err == nil {
				t.Fatal("Load succeeded on a broken checkpoint")
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error is not one line: %q", msg)
			}
			if !strings.Contains(msg, dir) {
				t.Errorf("error does not name the model path %s: %q", dir, msg)
			}
			if !strings.Contains(msg, c.want) {
				t.Errorf("error %q does not mention %q", msg, c.want)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %q is not %v", msg, c.is)
			}
		})
	}
}

func truncate(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

func editConfig(t *testing.T, dir, key string, value any) {
	t.Helper()
	p := filepath.Join(dir, "config.json")
	var cfg map[string]any
	readJSON(t, p, &cfg)
	if value == nil {
		delete(cfg, key)
	} else {
		cfg[key] = value
	}
	data, _ := json.Marshal(cfg)
	os.WriteFile(p, data, 0o644)
}

func rewriteTensors(t *testing.T, dir string, edit func([]safetensors.Tensor) []safetensors.Tensor) {
	t.Helper()
	raw := rawTensors(t, dir)
	c, _ := safetensors.OpenCheckpoint(dir)
	var ts []safetensors.Tensor
	for n, b := range raw {
		info, _ := c.Info(n)
		ts = append(ts, safetensors.Tensor{Name: n, DType: info.DType, Shape: info.Shape, Data: b})
	}
	c.Close()
	if err := safetensors.WriteCheckpoint(dir, edit(ts), nil, 0); err != nil {
		t.Fatal(err)
	}
}

func dropTensor(ts []safetensors.Tensor, name string) []safetensors.Tensor {
	var out []safetensors.Tensor
	for _, x := range ts {
		if x.Name != name {
			out = append(out, x)
		}
	}
	return out
}

// KeepBF16 (prune without scoring) holds BF16-stored tensors as bfloat16 and the rest in the
// compute dtype; saving must still give back the stored bytes exactly.
func TestLoad_KeepBF16RoundTripBitExact(t *testing.T) {
	for _, name := range []string{"stories260K", "rand-gqa-llama3", "rand-bias-headdim"} {
		t.Run(name, func(t *testing.T) {
			dir := testutil.SharedDir(t, "models", name)
			m, err := Load(dir, LoadOptions{KeepBF16: true})
			if err != nil {
				t.Fatal(err)
			}
			for n, w := range m.Weights {
				want := dtypes.Float32
				if m.StoredDTypes[n] == safetensors.BF16 {
					want = dtypes.BFloat16
				}
				if w.DType() != want {
					t.Errorf("%s stored %s held as %s, want %s", n, m.StoredDTypes[n], w.DType(), want)
				}
			}
			out := filepath.Join(t.TempDir(), "copy")
			if err := m.Save(out, SaveOptions{}); err != nil {
				t.Fatal(err)
			}
			want, got := rawTensors(t, dir), rawTensors(t, out)
			for n, b := range want {
				if !bytes.Equal(b, got[n]) {
					t.Errorf("tensor %s differs after KeepBF16 load → save", n)
				}
			}
		})
	}
}

// TestSave_WritesTokenizerConfigForBareTokenizerJSON: a source with only tokenizer.json gets a
// tokenizer_config.json naming the fast tokenizer class and the BOS/EOS tokens config.json's
// ids point at, so transformers' AutoTokenizer loads the saved directory; an existing
// tokenizer_config.json is copied, not replaced.
func TestSave_WritesTokenizerConfigForBareTokenizerJSON(t *testing.T) {
	m, err := Load(filepath.Join("..", "..", "testdata", "demo", "model"), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(m.Dir, TokenizerConfigFile)); err == nil {
		t.Fatalf("the demo model already has %s: the test needs a source without one", TokenizerConfigFile)
	}
	out := filepath.Join(t.TempDir(), "copy")
	if err := m.Save(out, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(out, TokenizerConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var tc map[string]any
	if err := json.Unmarshal(data, &tc); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
		"model_max_length": 256.0, "clean_up_tokenization_spaces": false}
	for k, v := range want {
		if tc[k] != v {
			t.Errorf("%s = %v, want %v (%s)", k, tc[k], v, data)
		}
	}
	custom := []byte(`{"tokenizer_class": "LlamaTokenizerFast"}`)
	if err := os.WriteFile(filepath.Join(out, TokenizerConfigFile), custom, 0o644); err != nil {
		t.Fatal(err)
	}
	m.Dir = out
	again := filepath.Join(t.TempDir(), "again")
	if err := m.Save(again, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(again, TokenizerConfigFile)); !bytes.Equal(got, custom) {
		t.Errorf("existing tokenizer_config.json not kept: %s", got)
	}
}
