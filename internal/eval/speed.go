package eval

import (
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shortllm/shortllm/internal/model"
)

// SpeedOptions configure a generation-speed measurement, as the paper's Table 3: forced output
// length (EOS ignored), medians over runs after warm-up runs.
type SpeedOptions struct {
	BatchSizes []int
	PromptIDs  []int // one prompt, repeated over the batch
	NewTokens  int
	Runs       int
	Warmup     int
	// Progress, if set, is called after every run (warm-up included).
	Progress func(done, total int)
}

// Validate checks the counts (named by the CLI flags); the prompt is checked by MeasureSpeed.
func (o SpeedOptions) Validate() error {
	if len(o.BatchSizes) == 0 {
		return fmt.Errorf("--batch-sizes: give at least one batch size")
	}
	for _, b := range o.BatchSizes {
		if b < 1 {
			return fmt.Errorf("--batch-sizes: %d is not a positive batch size", b)
		}
	}
	switch {
	case o.NewTokens < 1:
		return fmt.Errorf("--new-tokens %d: want at least 1", o.NewTokens)
	case o.Runs < 1:
		return fmt.Errorf("--runs %d: want at least 1", o.Runs)
	case o.Warmup < 0:
		return fmt.Errorf("--warmup %d: want 0 or more", o.Warmup)
	}
	return nil
}

// SpeedPoint is one batch size's measurement.
type SpeedPoint struct {
	BatchSize  int     `json:"batch_size"`
	LatencyS   float64 `json:"latency_s"`   // median seconds per batch
	Throughput float64 `json:"throughput"`  // generated tokens per second (batch × new tokens / latency)
	PeakMemMB  float64 `json:"peak_mem_mb"` // peak resident memory of the process during these runs
	MemKind    string  `json:"mem_kind"`    // "rss" on CPU backends
}

// MeasureSpeed generates NewTokens tokens for each batch size and reports medians.
func MeasureSpeed(r *model.Runner, opts SpeedOptions) ([]SpeedPoint, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("speed: %w", err)
	}
	if len(opts.PromptIDs) == 0 {
		return nil, fmt.Errorf("speed: empty prompt")
	}
	total := len(opts.BatchSizes) * (opts.Runs + opts.Warmup)
	done := 0
	var out []SpeedPoint
	for _, b := range opts.BatchSizes {
		prompts := make([][]int, b)
		for i := range prompts {
			prompts[i] = opts.PromptIDs
		}
		gen := model.GenerateOptions{MaxNewTokens: opts.NewTokens, IgnoreEOS: true}
		resetPeakRSS()
		var times []float64
		for i := 0; i < opts.Warmup+opts.Runs; i++ {
			start := time.Now()
			if _, err := r.Generate(prompts, gen); err != nil {
				return nil, fmt.Errorf("speed at batch %d: %w", b, err)
			}
			if i >= opts.Warmup {
				times = append(times, time.Since(start).Seconds())
			}
			done++
			if opts.Progress != nil {
				opts.Progress(done, total)
			}
		}
		lat := median(times)
		out = append(out, SpeedPoint{BatchSize: b, LatencyS: lat, Throughput: float64(b*opts.NewTokens) / lat,
			PeakMemMB: peakRSSMB(), MemKind: "rss"})
	}
	return out, nil
}

// RandomPrompt returns n token ids drawn with a fixed seed (the paper's speed runs use a
// fixed-length prompt; the content does not change the cost).
func RandomPrompt(n, vocab int, bos int, seed uint64) []int {
	rng := rand.New(rand.NewPCG(seed, 0x5bd1))
	ids := make([]int, n)
	for i := range ids {
		ids[i] = rng.IntN(vocab)
	}
	if bos >= 0 && n > 0 {
		ids[0] = bos
	}
	return ids
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// resetPeakRSS clears the kernel's high-water mark so VmHWM measures from now on (Linux ≥ 4.0;
// elsewhere the peak stays the process-lifetime peak).
func resetPeakRSS() {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSSMB reads VmHWM from /proc/self/status; 0 where that is unavailable.
func peakRSSMB() float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseFloat(f[0], 64)
				return kb / 1024
			}
		}
	}
	return 0
}
