package prune

import (
	"slices"
	"testing"
)

func FuzzParseRatio(f *testing.F) {
	for _, s := range []string{"35%", "0.35", "120%", "0", "1e-3", "NaN", "%", " 20 %"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseRatio(s)
		if err == nil && !(v > 0 && v < 1) {
			t.Fatalf("ParseRatio(%q) = %v accepted", s, v)
		}
	})
}

func FuzzParseBlocks(f *testing.F) {
	for _, s := range []string{"3,5,7", "1", "3,3", "-1", "16", "a,b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseBlocks(s, 16)
		if err != nil {
			return
		}
		if len(got) == 0 || len(got) >= 16 || !slices.IsSorted(got) || got[0] < 0 || got[len(got)-1] >= 16 ||
			len(slices.Compact(slices.Clone(got))) != len(got) {
			t.Fatalf("ParseBlocks(%q) = %v", s, got)
		}
	})
}
