// Command cpubench measures shortllm's throughput on the four workloads that
// ../shared/bench/torch_peer.py measures (same sizes, random token ids), one JSON object per
// workload, so scripts/cpu-ratios.sh can print shortllm/torch ratios measured in one run.
//
//	go run ./scripts/cpubench --model DIR --work ppl|taylor|lora|generate [--reps N]
//
// Every workload runs once untimed first (graph compilation), then is timed; tokens_per_s is
// the best of --reps timed runs (the machine is shared; the best run is the least disturbed).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"time"

	"github.com/shortllm/shortllm/internal/backend"
	"github.com/shortllm/shortllm/internal/eval"
	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/retrain"
	"github.com/shortllm/shortllm/internal/score"
)

func main() {
	dir := flag.String("model", "", "model directory")
	work := flag.String("work", "ppl", "ppl, taylor, lora or generate")
	chunks := flag.Int("chunks", 16, "ppl: chunks; taylor: calibration windows")
	seq := flag.Int("seq", 128, "tokens per chunk / window / example")
	batch := flag.Int("batch", 8, "ppl: chunks per forward; lora: examples per step")
	steps := flag.Int("steps", 2, "lora: timed steps (after one warm-up step)")
	newTok := flag.Int("new", 64, "generate: new tokens (batch 1, greedy, from BOS)")
	reps := flag.Int("reps", 1, "timed repetitions (best is reported)")
	warmup := flag.Bool("warmup", true, "run once untimed first (graph compilation); lora always warms up")
	prof := flag.String("cpuprofile", "", "write a CPU profile of the timed runs to this file")
	flag.Parse()
	cpuProfile, doWarmup = *prof, *warmup
	if err := run(*dir, *work, *chunks, *seq, *batch, *steps, *newTok, *reps); err != nil {
		fmt.Fprintln(os.Stderr, "cpubench:", err)
		os.Exit(1)
	}
}

var (
	cpuProfile string
	doWarmup   bool
)

func randIDs(rng *rand.Rand, n, T, vocab int) [][]int {
	rows := make([][]int, n)
	for i := range rows {
		rows[i] = make([]int, T)
		for j := range rows[i] {
			rows[i][j] = 3 + rng.IntN(vocab-3)
		}
	}
	return rows
}

func run(dir, work string, chunks, seq, batch, steps, newTok, reps int) error {
	m, err := model.Load(dir, model.LoadOptions{})
	if err != nil {
		return err
	}
	be, err := backend.New("", os.Stderr)
	if err != nil {
		return err
	}
	r := model.NewRunner(be, m)
	V := m.Config.VocabSize
	rng := rand.New(rand.NewPCG(1, 2))
	var tokens int
	var once func() (time.Duration, error)
	switch work {
	case "ppl": // non-overlapping chunks of seq tokens, batch chunks per forward
		ids := randIDs(rng, chunks, seq, V)
		lm := eval.RunnerLM{Runner: r}
		tokens = chunks * seq
		once = func() (time.Duration, error) {
			t := time.Now()
			_, err := eval.Perplexity(lm, ids, batch, nil)
			return time.Since(t), err
		}
	case "taylor": // the taylor criterion over chunks windows of seq tokens (batch 10, as the scripts)
		calib := &score.Calibration{Source: "random", SeqLen: seq, IDs: randIDs(rng, chunks, seq, V)}
		tokens = chunks * seq
		once = func() (time.Duration, error) {
			t := time.Now()
			_, err := score.Compute(r, calib, "taylor", score.Options{})
			return time.Since(t), err
		}
	case "lora": // LoRA r 8 (alpha 16: scale 2, as the peer) on all seven projections, AdamW
		exs := make([]retrain.Example, batch)
		for i, ids := range randIDs(rng, batch, seq, V) {
			exs[i] = retrain.Example{IDs: ids, Labels: ids}
		}
		data := &retrain.Dataset{Path: "bench", Kind: "pretokenized", Examples: exs, Ordered: true}
		tokens = steps * batch * seq
		once = func() (time.Duration, error) {
			a, err := retrain.NewAdapter(m.Config, retrain.NewLoRAConfig(8, 16, 0, retrain.DefaultTargetModules, false), 1)
			if err != nil {
				return 0, err
			}
			o := retrain.Options{Mode: retrain.ModeLoRA, Adapter: a, Schedule: "constant", BatchSize: batch,
				MicroBatchSize: batch, MaxSteps: steps + 1,
				Optim: retrain.AdamW{LR: 1e-4, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01}}
			tr, err := retrain.NewTrainer(r, o)
			if err != nil {
				return 0, err
			}
			log, err := tr.Run(data)
			if err != nil {
				return 0, err
			}
			var secs float64
			for _, s := range log.Steps[1:] { // the first step compiles
				secs += s.Seconds
			}
			return time.Duration(secs * float64(time.Second)), nil
		}
	case "generate": // greedy, batch 1, KV cache, from BOS
		bos := 1
		if len(m.Config.BOSTokenID) > 0 {
			bos = m.Config.BOSTokenID[0]
		}
		tokens = newTok
		opts := model.GenerateOptions{MaxNewTokens: newTok, IgnoreEOS: true}
		once = func() (time.Duration, error) {
			t := time.Now()
			_, err := r.Generate([][]int{{bos}}, opts)
			return time.Since(t), err
		}
	default:
		return fmt.Errorf("unknown work %q", work)
	}
	t0 := time.Now()
	if work != "lora" && doWarmup { // lora's first step is its warm-up
		if _, err := once(); err != nil {
			return err
		}
	}
	warm := time.Since(t0)
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	best := time.Duration(0)
	for i := 0; i < max(reps, 1); i++ {
		d, err := once()
		if err != nil {
			return err
		}
		if best == 0 || d < best {
			best = d
		}
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"peer": "shortllm go", "work": work, "tokens": tokens, "warmup_s": warm.Seconds(),
		"seconds": best.Seconds(), "tokens_per_s": float64(tokens) / best.Seconds(),
	})
}
