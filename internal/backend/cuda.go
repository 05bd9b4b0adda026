//go:build !noxla

package backend

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// cudaDataDirFlag is the XLA flag naming the CUDA toolkit folder XLA compiles kernels with
// (bin/ptxas, nvvm/libdevice).
const cudaDataDirFlag = "--xla_gpu_cuda_data_dir"

// tritonGEMMFlag turns XLA's Triton matrix-multiply fusions on or off.
const tritonGEMMFlag = "--xla_gpu_enable_triton_gemm"

// prepareCUDA readies the environment of a CUDA plugin before it loads:
//   - XLA_FLAGS' CUDA data dir: go-xla v0.1.4 would otherwise set it to a folder of its
//     author's machine whenever an nvidia/ folder sits beside the plugin (as in a pip install
//     of jax-cuda13-pjrt), and XLA then finds no ptxas. A flag the user set is kept;
//     GOPJRT_CUDA_CHECKS=0 stops go-xla's guess in every case.
//   - unless the config asks for tf32, NVIDIA_TF32_OVERRIDE=0 and no Triton GEMMs: XLA
//     multiplies float32 matrices in TF32 by default (10-bit mantissa: 1.1e-3 relative error
//     on the stories260K goldens on an H100), and its Triton GEMMs ignore the override (still
//     1.1e-3); with both, 6.9e-7. bfloat16 throughput was the same as transformers' with it.
func prepareCUDA(plugin string, tf32 bool) {
	if !strings.Contains(strings.ToLower(filepath.Base(plugin)), "cuda") {
		return
	}
	if os.Getenv("GOPJRT_CUDA_CHECKS") == "" {
		os.Setenv("GOPJRT_CUDA_CHECKS", "0")
	}
	flags := os.Getenv("XLA_FLAGS")
	if !tf32 {
		if os.Getenv("NVIDIA_TF32_OVERRIDE") == "" {
			os.Setenv("NVIDIA_TF32_OVERRIDE", "0")
		}
		if !strings.Contains(flags, tritonGEMMFlag) {
			flags = strings.TrimSpace(flags + " " + tritonGEMMFlag + "=false")
			os.Setenv("XLA_FLAGS", flags)
		}
	}
	if strings.Contains(flags, cudaDataDirFlag) {
		return
	}
	ptxas, _ := exec.LookPath("ptxas")
	dir := findCUDADir(plugin, ptxas, os.Getenv("CUDA_HOME"), os.Getenv("CUDA_PATH"))
	if dir == "" {
		return
	}
	os.Setenv("XLA_FLAGS", strings.TrimSpace(flags+" "+cudaDataDirFlag+"="+dir))
}

// findCUDADir returns the first folder holding bin/ptxas among: the one of ptxas on $PATH,
// $CUDA_HOME, $CUDA_PATH, /usr/local/cuda, and the pip nvidia/cuda_nvcc beside the plugin.
func findCUDADir(plugin, ptxasOnPath string, envDirs ...string) string {
	var cands []string
	if ptxasOnPath != "" {
		cands = append(cands, filepath.Dir(filepath.Dir(ptxasOnPath)))
	}
	cands = append(cands, envDirs...)
	cands = append(cands, "/usr/local/cuda")
	if plugin != "" && filepath.IsAbs(plugin) {
		site := filepath.Dir(filepath.Dir(filepath.Dir(plugin))) // site-packages/jax_plugins/xla_cudaNN/x.so
		cands = append(cands, filepath.Join(site, "nvidia", "cuda_nvcc"), filepath.Join(site, "nvidia", "cu13"))
	}
	for _, d := range cands {
		if d == "" {
			continue
		}
		if fi, err := os.Stat(filepath.Join(d, "bin", "ptxas")); err == nil && !fi.IsDir() {
			return d
		}
	}
	return ""
}
