package model

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ErrMemory marks a model whose weights cannot fit in this machine's memory.
var ErrMemory = errors.New("not enough memory")

// WeightBytes is the memory the config's weights take at bytesPerParam bytes each, computed
// from the shapes alone (no tensor is allocated). float64 keeps absurd configs from
// overflowing.
func WeightBytes(cfg *Config, bytesPerParam int) float64 {
	var n float64
	for _, shape := range cfg.ExpectedShapes() {
		p := 1.0
		for _, d := range shape {
			p *= float64(d)
		}
		n += p
	}
	return n * float64(bytesPerParam)
}

// CheckMemory refuses to allocate weights that need more than the machine's RAM plus swap
// (Linux /proc/meminfo; elsewhere, or when it cannot be read, nothing is checked): the Go
// runtime would otherwise die with "fatal error: out of memory" halfway through.
func CheckMemory(cfg *Config, bytesPerParam int, what string) error {
	need := WeightBytes(cfg, bytesPerParam)
	avail, ok := machineMemory("/proc/meminfo")
	if !ok || need <= float64(avail) {
		return nil
	}
	return fmt.Errorf("%s: the weights need %s (%d bytes per parameter), more than this machine's %s of RAM and swap: %w",
		what, humanBytes(need), bytesPerParam, humanBytes(float64(avail)), ErrMemory)
}

// machineMemory reads MemTotal + SwapTotal (bytes) from a meminfo file.
func machineMemory(path string) (int64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	var total int64
	found := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || (fields[0] != "MemTotal:" && fields[0] != "SwapTotal:") {
			continue
		}
		kb, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			return 0, false
		}
		total += kb << 10
		found = found || fields[0] == "MemTotal:"
	}
	return total, found
}

func humanBytes(b float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	i := 0
	for b >= 1024 && i < len(units)-1 {
		b /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %s", b, units[i])
}
