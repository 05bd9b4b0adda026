package main

import (
	"fmt"
	"math"

	"github.com/spf13/pflag"

	"github.com/shortllm/shortllm/internal/score"
	"github.com/shortllm/shortllm/internal/stage"
)

// flagRule is one range check of a numeric flag: every verb checks all its flags with these
// before it loads anything, so a bad value fails at once and names the flag.
type flagRule struct {
	flag  string
	value any
	ok    bool
	want  string
}

func atLeast(flag string, v, lo int) flagRule {
	want := fmt.Sprintf("want at least %d", lo)
	if lo == 0 {
		want = "want 0 or more"
	}
	return flagRule{flag, v, v >= lo, want}
}

func atLeast64(flag string, v, lo int64) flagRule {
	return flagRule{flag, v, v >= lo, fmt.Sprintf("want at least %d", lo)}
}

func positiveFloat(flag string, v float64) flagRule {
	return flagRule{flag, v, v > 0 && !math.IsInf(v, 0), "want a positive number"}
}

func nonNegativeFloat(flag string, v float64) flagRule {
	return flagRule{flag, v, v >= 0 && !math.IsInf(v, 0), "want 0 or a positive number"}
}

// inRange checks lo <= v < hi.
func inRange(flag string, v, lo, hi float64) flagRule {
	return flagRule{flag, v, v >= lo && v < hi, fmt.Sprintf("want a number in [%g, %g)", lo, hi)}
}

// checkRules returns the first failing rule as a one-line error.
func checkRules(rules ...flagRule) error {
	for _, r := range rules {
		if !r.ok {
			return fmt.Errorf("%s %v: %s", r.flag, r.value, r.want)
		}
	}
	return nil
}

// bindCalibFlags binds the calibration flags every verb that reads calibration data shares
// (score, prune, search, sparsify): the same names and meaning everywhere. seedFlag is the
// name of the sampling seed's flag (search has its own --seed).
func bindCalibFlags(f *pflag.FlagSet, c *stage.Calib, seedFlag string) {
	f.StringVar(&c.Path, "calib", "", "calibration data: token-id .json (or a score result), .txt (one row per line) or .jsonl (\"text\" field)")
	f.IntVar(&c.Samples, "calib-samples", 0, fmt.Sprintf("calibration windows drawn from text (default %d)", score.DefaultSamples))
	f.IntVar(&c.SeqLen, "seq-len", 0, fmt.Sprintf("tokens per calibration window (default %d)", score.DefaultSeqLen))
	f.Uint64Var(&c.Seed, seedFlag, score.DefaultSeed, "seed for drawing calibration windows from text")
	f.BoolVar(&c.NoBOS, "no-bos", false, "tokenise calibration text without BOS")
}

// calibRules range-checks the calibration flags.
func calibRules(c stage.Calib) []flagRule {
	return []flagRule{atLeast("--calib-samples", c.Samples, 0), atLeast("--seq-len", c.SeqLen, 0)}
}
