package sparsify

import (
	"errors"
	"strings"
	"testing"

	"github.com/shortllm/shortllm/internal/score"
)

func TestOptions_BadInputIsOneLineError(t *testing.T) {
	calib := &score.Calibration{IDs: [][]int{{1, 2}}}
	ok := Options{Method: Wanda, Sparsity: 0.5, Calib: calib}
	for _, tc := range []struct {
		name, want string
		err        func() error
	}{
		{"sparsity 150%", "--sparsity", func() error { _, err := ParseSparsity("150%"); return err }},
		{"sparsity word", "--sparsity", func() error { _, err := ParseSparsity("half"); return err }},
		{"pattern 3:2", "--pattern", func() error { _, err := ParsePattern("3:2"); return err }},
		{"pattern 2:x", "--pattern", func() error { _, err := ParsePattern("2:x"); return err }},
		{"unknown method", "--method", func() error { o := ok; o.Method = "obs"; return o.Validate() }},
		{"pattern vs sparsity", "--pattern 2:4", func() error { o := ok; o.Pattern = Pattern{2, 4}; o.Sparsity = 0.6; return o.Validate() }},
		{"alpha with N:M", "--allocation alpha", func() error { o := ok; o.Pattern = Pattern{2, 4}; o.Allocation = Alpha; return o.Validate() }},
		{"unknown refine", "--refine", func() error { o := ok; o.Refine = "owl"; return o.Validate() }},
		{"no calibration", "--calib", func() error { o := ok; o.Calib = nil; return o.Validate() }},
		{"N:M not tiling", "not a multiple of 8", func() error { return checkPattern("down_proj", 172, Pattern{4, 8}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.err()
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrOptions) || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q: want one line naming %q, wrapping ErrOptions", err, tc.want)
			}
		})
	}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	if s, err := ParseSparsity("0.5"); err != nil || s != 0.5 {
		t.Fatalf("0.5 → %v, %v", s, err)
	}
	if p, err := ParsePattern("2:4"); err != nil || p != (Pattern{2, 4}) {
		t.Fatalf("2:4 → %v, %v", p, err)
	}
}
