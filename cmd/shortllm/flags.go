package main

import (
	"fmt"
	"math"
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
