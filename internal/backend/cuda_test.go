//go:build !noxla

package backend

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, nil, 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestFindCUDADir(t *testing.T) {
	root := t.TempDir()
	plugin := filepath.Join(root, "site", "jax_plugins", "xla_cuda13", "xla_cuda_plugin.so")
	touch(t, plugin)
	pip := filepath.Join(root, "site", "nvidia", "cuda_nvcc")
	touch(t, filepath.Join(pip, "bin", "ptxas"))
	if got := findCUDADir(plugin, ""); got != pip && got != "/usr/local/cuda" {
		t.Errorf("pip layout: got %q, want %q", got, pip)
	}
	sys := filepath.Join(root, "cuda-13.0")
	touch(t, filepath.Join(sys, "bin", "ptxas"))
	if got := findCUDADir(plugin, filepath.Join(sys, "bin", "ptxas")); got != sys {
		t.Errorf("ptxas on PATH: got %q, want %q", got, sys)
	}
	env := filepath.Join(root, "cudahome")
	touch(t, filepath.Join(env, "bin", "ptxas"))
	if got := findCUDADir(plugin, "", env); got != env {
		t.Errorf("CUDA_HOME: got %q, want %q", got, env)
	}
	empty := filepath.Join(root, "empty", "a", "b", "x.so")
	if got := findCUDADir(empty, "", filepath.Join(root, "nothing")); got != "" && got != "/usr/local/cuda" {
		t.Errorf("nothing there: got %q", got)
	}
}

func TestPrepareCUDA_KeepsUserFlag(t *testing.T) {
	t.Setenv("XLA_FLAGS", "--xla_gpu_cuda_data_dir=/mine --other")
	t.Setenv("GOPJRT_CUDA_CHECKS", "")
	t.Setenv("NVIDIA_TF32_OVERRIDE", "")
	prepareCUDA("/x/xla_cuda_plugin.so", false)
	if got := os.Getenv("XLA_FLAGS"); got != "--xla_gpu_cuda_data_dir=/mine --other "+tritonGEMMFlag+"=false" {
		t.Errorf("XLA_FLAGS changed to %q", got)
	}
	if got := os.Getenv("GOPJRT_CUDA_CHECKS"); got != "0" {
		t.Errorf("GOPJRT_CUDA_CHECKS = %q, want 0 (go-xla's guess disabled)", got)
	}
	if got := os.Getenv("NVIDIA_TF32_OVERRIDE"); got != "0" {
		t.Errorf("NVIDIA_TF32_OVERRIDE = %q, want 0 (float32 means float32)", got)
	}
	t.Setenv("NVIDIA_TF32_OVERRIDE", "")
	t.Setenv("XLA_FLAGS", "--xla_gpu_cuda_data_dir=/mine")
	prepareCUDA("/x/xla_cuda_plugin.so", true)
	if got := os.Getenv("NVIDIA_TF32_OVERRIDE"); got != "" {
		t.Errorf("with tf32 asked for, NVIDIA_TF32_OVERRIDE = %q, want unset", got)
	}
	if got := os.Getenv("XLA_FLAGS"); got != "--xla_gpu_cuda_data_dir=/mine" {
		t.Errorf("with tf32 asked for, XLA_FLAGS = %q, want Triton GEMMs left on", got)
	}
}

func TestPrepareCUDA_SetsFoundDir(t *testing.T) {
	root := t.TempDir()
	touch(t, filepath.Join(root, "cuda", "bin", "ptxas"))
	t.Setenv("XLA_FLAGS", "--xla_dump_to=/tmp/d")
	t.Setenv("CUDA_HOME", filepath.Join(root, "cuda"))
	t.Setenv("PATH", root) // no ptxas on PATH
	prepareCUDA("/x/xla_cuda_plugin.so", false)
	got := os.Getenv("XLA_FLAGS")
	if !strings.HasPrefix(got, "--xla_dump_to=/tmp/d "+tritonGEMMFlag+"=false ") || !strings.Contains(got, cudaDataDirFlag+"=") {
		t.Errorf("XLA_FLAGS = %q", got)
	}
	t.Setenv("XLA_FLAGS", "")
	prepareCUDA("/x/libtpu.so", false) // not CUDA: untouched
	if got := os.Getenv("XLA_FLAGS"); got != "" {
		t.Errorf("non-CUDA plugin set XLA_FLAGS = %q", got)
	}
}
