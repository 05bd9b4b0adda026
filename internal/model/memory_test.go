package model

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckMemory_HugeConsistentConfig: a valid config whose weights need 20 TiB is a clear
// error naming the size before anything is allocated (it used to be "fatal error: out of
// memory").
func TestCheckMemory_HugeConsistentConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	cfgJSON := `{"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":65536,"intermediate_size":262144,` +
		`"num_attention_heads":512,"num_key_value_heads":512,"num_hidden_layers":80,"vocab_size":32000,` +
		`"max_position_embeddings":2048,"rms_norm_eps":1e-5,"tie_word_embeddings":false}`
	if err := os.WriteFile(path, []byte(cfgJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := machineMemory("/proc/meminfo"); !ok {
		t.Skip("no /proc/meminfo")
	}
	_, err = Init(cfg, 1, 0.02, 0)
	if !errors.Is(err, ErrMemory) || !strings.Contains(err.Error(), "20.0 TiB") {
		t.Fatalf("got %v; want ErrMemory naming 20.0 TiB", err)
	}
}

func TestMachineMemory_ParsesMeminfo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meminfo")
	os.WriteFile(path, []byte("MemTotal:       16384 kB\nMemFree: 1 kB\nSwapTotal:       2048 kB\n"), 0o644)
	got, ok := machineMemory(path)
	if !ok || got != (16384+2048)<<10 {
		t.Fatalf("got %d, %v; want %d", got, ok, (16384+2048)<<10)
	}
	if _, ok := machineMemory(filepath.Join(t.TempDir(), "none")); ok {
		t.Error("a missing meminfo must mean 'unknown'")
	}
}
