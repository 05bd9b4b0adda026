package eval

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
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
	// Latencies are the timed runs' seconds in run order; with several models measured
	// together, run i of every model ran in the same round, so ratios can be taken run by run.
	Latencies []float64 `json:"latencies_s,omitempty"`
	// ThroughputMin and ThroughputMax are the slowest and fastest timed run.
	ThroughputMin float64 `json:"throughput_min,omitempty"`
	ThroughputMax float64 `json:"throughput_max,omitempty"`
	// The model's own memory: its weights and the KV cache the generation fills (estimated
	// from the shapes), not the process's.
	WeightsMB float64 `json:"weights_mb,omitempty"`
	KVCacheMB float64 `json:"kv_cache_mb,omitempty"`
}

// MeasureSpeed generates NewTokens tokens for each batch size and reports medians.
func MeasureSpeed(r *model.Runner, opts SpeedOptions) ([]SpeedPoint, error) {
	pts, err := MeasureSpeeds([]*model.Runner{r}, opts)
	if err != nil {
		return nil, err
	}
	return pts[0], nil
}

// MeasureSpeeds times several models on the same workload. For each batch size every model
// gets its warm-up runs, then the timed runs go round by round (model 1, model 2, ..., then
// again), so a change in the machine's load during the measurement hits all models alike and
// the run-by-run throughput ratios stay steady. It returns one []SpeedPoint per runner.
func MeasureSpeeds(rs []*model.Runner, opts SpeedOptions) ([][]SpeedPoint, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("speed: %w", err)
	}
	if len(opts.PromptIDs) == 0 {
		return nil, fmt.Errorf("speed: empty prompt")
	}
	total := len(rs) * len(opts.BatchSizes) * (opts.Runs + opts.Warmup)
	done := 0
	step := func() {
		done++
		if opts.Progress != nil {
			opts.Progress(done, total)
		}
	}
	out := make([][]SpeedPoint, len(rs))
	for _, b := range opts.BatchSizes {
		prompts := make([][]int, b)
		for i := range prompts {
			prompts[i] = opts.PromptIDs
		}
		gen := model.GenerateOptions{MaxNewTokens: opts.NewTokens, IgnoreEOS: true}
		resetPeakRSS()
		times := make([][]float64, len(rs))
		for round := 0; round < opts.Warmup+opts.Runs; round++ {
			for i, r := range rs {
				start := time.Now()
				if _, err := r.Generate(prompts, gen); err != nil {
					return nil, fmt.Errorf("speed at batch %d: %w", b, err)
				}
				if round >= opts.Warmup {
					times[i] = append(times[i], time.Since(start).Seconds())
				}
				step()
			}
		}
		peak := peakRSSMB()
		for i, r := range rs {
			out[i] = append(out[i], speedPoint(r.Model, b, len(opts.PromptIDs), opts.NewTokens, times[i], peak))
		}
	}
	return out, nil
}

func speedPoint(m *model.Model, batch, promptLen, newTokens int, times []float64, peakMB float64) SpeedPoint {
	lat := median(times)
	tokens := float64(batch * newTokens)
	p := SpeedPoint{BatchSize: batch, LatencyS: lat, Throughput: tokens / lat, PeakMemMB: peakMB, MemKind: "rss",
		Latencies: times, ThroughputMin: tokens / slices.Max(times), ThroughputMax: tokens / slices.Min(times)}
	p.WeightsMB, p.KVCacheMB = ModelMemoryMB(m, batch, promptLen+newTokens)
	return p
}

// ModelMemoryMB is what a model holds while generating: its weights (every tensor at its
// loaded dtype) and a KV cache of seqLen positions for batch sequences — keys and values of
// shape [batch, num_key_value_heads, seqLen, head_dim] per block, at the compute dtype.
func ModelMemoryMB(m *model.Model, batch, seqLen int) (weights, kvCache float64) {
	for _, t := range m.Weights {
		weights += float64(t.Shape().Memory())
	}
	c := m.Config
	elem := float64(m.ComputeDType().Size())
	kvCache = 2 * float64(c.NumHiddenLayers*batch*c.NumKeyValueHeads*seqLen*c.HeadDim) * elem
	return weights / (1 << 20), kvCache / (1 << 20)
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
