package score

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/shortllm/shortllm/internal/testutil"
	"github.com/shortllm/shortllm/internal/tokenizer"
)

// TestCompute_BatchSizeInvariant: taylor accumulates w·g signed over micro-batches of the
// global mean loss, so batch sizes 1, 3 (uneven: 3+3+3+1) and 10 agree to float rounding.
func TestCompute_BatchSizeInvariant(t *testing.T) {
	r := loadRunner(t, "stories260K")
	calib := sharedCalib(t)
	var ref []float64
	for _, bs := range []int{10, 3, 1} {
		res, err := Compute(r, calib, "taylor", Options{BatchSize: bs})
		if err != nil {
			t.Fatal(err)
		}
		got := values(t, res)
		if ref == nil {
			ref = got
			continue
		}
		if e := maxRelErr(got, ref); e > 1e-5 {
			t.Errorf("batch size %d: max relative difference %.3g from batch size 10\n got %v\n ref %v", bs, e, got, ref)
		}
	}
}

// TestCompute_TextCalibrationReproduces: text-mode windows are recorded in the result, and
// scoring again from the written file gives bit-identical scores and calibration.
func TestCompute_TextCalibrationReproduces(t *testing.T) {
	r := loadRunner(t, "stories260K")
	tok, err := tokenizer.Load(testutil.SharedDir(t, "models", "stories260K"))
	if err != nil {
		t.Fatal(err)
	}
	calib, err := LoadCalibration(testutil.SharedDir(t, "data", "stories", "calib10x128.jsonl"), tok, CalibOptions{Seed: 99})
	if err != nil {
		t.Fatal(err)
	}
	first, err := Compute(r, calib, "bi", Options{})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "scores.json")
	if err := WriteResults(out, []*Result{first}); err != nil {
		t.Fatal(err)
	}
	again, err := LoadCalibration(out, nil, CalibOptions{})
	if err != nil {
		t.Fatal(err)
	}
	second, err := Compute(r, again, "bi", Options{BatchSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(values(t, first), values(t, second)) || !slices.Equal(first.Order, second.Order) {
		t.Errorf("rerun from %s differs:\n %v\n %v", out, values(t, first), values(t, second))
	}
	if !reflect.DeepEqual(again, calib) {
		t.Errorf("calibration record changed: %+v vs %+v", again, calib)
	}
}

// TestCompute_PrefixReuseMatchesNaive: ppl with reused prefixes equals one whole forward per
// removed block, here with already-skipped blocks (the golden test covers none skipped).
func TestCompute_PrefixReuseMatchesNaive(t *testing.T) {
	r := loadRunner(t, "stories260K")
	calib := sharedCalib(t)
	tokens := float64(len(calib.IDs) * (len(calib.IDs[0]) - 1))
	for _, skip := range [][]int{{1, 3}} {
		opts := Options{BatchSize: 5, SkipBlocks: skip}
		res, err := Compute(r, calib, "ppl", opts)
		if err != nil {
			t.Fatal(err)
		}
		naive, err := pplNaive(r, calib.IDs, opts.withDefaults())
		if err != nil {
			t.Fatal(err)
		}
		for b := range naive {
			got, ok := res.Score(b)
			if slices.Contains(skip, b) {
				if ok {
					t.Errorf("skip %v: block %d scored %g, want null", skip, b, got)
				}
				continue
			}
			if want := math.Exp(naive[b] / tokens); math.Abs(got-want) > 1e-5*want {
				t.Errorf("skip %v, block %d: reuse %g, naive %g", skip, b, got, want)
			}
		}
	}
}

// TestCompute_SkipBlocks: skipped blocks score null and leave the order, for every criterion.
func TestCompute_SkipBlocks(t *testing.T) {
	r := loadRunner(t, "stories260K")
	calib := sharedCalib(t)
	calib.IDs = calib.IDs[:2] // structure only: two windows keep it fast
	for _, c := range []string{"taylor+", "mag+", "bi", "angular"} {
		res, err := Compute(r, calib, c, Options{SkipBlocks: []int{3, 1}})
		if err != nil {
			t.Fatal(err)
		}
		if res.Scores[1] != nil || res.Scores[3] != nil || slices.Contains(res.Order, 1) || slices.Contains(res.Order, 3) {
			t.Errorf("%s: scores %v order %v: blocks 1 and 3 must be null and unranked", c, res.Scores, res.Order)
		}
		if len(res.Order) != 3 || res.Criterion != c || !slices.Equal(res.Options["skip_blocks"].([]int), []int{1, 3}) {
			t.Errorf("%s: order %v, criterion %q, options %v", c, res.Order, res.Criterion, res.Options)
		}
	}
}

// TestCompute_AngularSpans: span n scores every run of n kept blocks at its first block;
// with all kept blocks in one span, input and output are the embedding and the last state.
func TestCompute_AngularSpans(t *testing.T) {
	r := loadRunner(t, "stories260K")
	calib := sharedCalib(t)
	calib.IDs = calib.IDs[:2]
	for _, c := range []struct {
		span int
		skip []int
		want []int // blocks with a score
	}{
		{1, nil, []int{0, 1, 2, 3, 4}},
		{2, nil, []int{0, 1, 2, 3}},
		{2, []int{2}, []int{0, 1, 3}},
		{4, []int{2}, []int{0}},
	} {
		res, err := Compute(r, calib, "angular", Options{Span: c.span, SkipBlocks: c.skip})
		if err != nil {
			t.Fatal(err)
		}
		var got []int
		for i := range res.Scores {
			if s, ok := res.Score(i); ok {
				got = append(got, i)
				if s <= 0 || s >= 1 {
					t.Errorf("span %d: score %g outside (0, 1)", c.span, s)
				}
			}
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("span %d skip %v: scored %v, want %v", c.span, c.skip, got, c.want)
		}
	}
}

func TestAngle_KnownAnswers(t *testing.T) {
	a := []float64{1, 2, 3}
	for _, c := range []struct {
		b    []float64
		want float64
	}{
		{[]float64{2, 4, 6}, 0}, {[]float64{-1, -2, -3}, 1}, {[]float64{3, 0, -1}, 0.5},
	} {
		if got := angle(a, c.b); math.Abs(got-c.want) > 1e-7 {
			t.Errorf("angle(%v, %v) = %g, want %g", a, c.b, got, c.want)
		}
	}
}

// TestReduceTensor_Semantics pins anal_block_sensitivity_*.py's reductions: |s|^p summed
// over a matrix row, then folded over rows; a vector's entries are rows of their own.
func TestReduceTensor_Semantics(t *testing.T) {
	m := []float64{1, -2, 3, 4} // rows 1+2=3 and 3+4=7
	for _, c := range []struct {
		how  string
		p    float64
		dims []int
		want float64
	}{
		{"sum", 1, []int{2, 2}, 10}, {"mean", 1, []int{2, 2}, 5}, {"max", 1, []int{2, 2}, 7},
		{"prod", 1, []int{2, 2}, 21}, {"sum", 2, []int{2, 2}, 30}, {"prod", 1, []int{4}, 24},
		{"max", 1, []int{4}, 4},
	} {
		got := reduceTensor(m, c.dims, Options{WeightReduction: c.how, NormPower: c.p})
		if got != c.want {
			t.Errorf("%s p=%g dims %v: %g, want %g", c.how, c.p, c.dims, got, c.want)
		}
	}
}

// TestCompute_BadInput: each mistake is a one-line error naming the file or option.
func TestCompute_BadInput(t *testing.T) {
	r := loadRunner(t, "stories260K")
	long := make([]int, 513) // stories260K: max_position_embeddings 512
	cases := []struct {
		name      string
		ids       [][]int
		criterion string
		opts      Options
		want      error
		msg       string
	}{
		{"window beyond context", [][]int{long}, "ppl", Options{}, ErrCalibration, "windows of 513 tokens exceed max_position_embeddings (512)"},
		{"id outside vocabulary", [][]int{{1, 512, 3}}, "taylor", Options{}, ErrCalibration, "token id 512 outside the vocabulary [0, 512)"},
		{"unknown criterion", [][]int{{1, 2}}, "entropy", Options{}, ErrCriterion, `unknown criterion "entropy"`},
		{"weight reduction", [][]int{{1, 2}}, "magnitude", Options{WeightReduction: "median"}, ErrCriterion, `--weight-reduction "median"`},
		{"span too long", [][]int{{1, 2}}, "angular", Options{Span: 5, SkipBlocks: []int{0}}, ErrCriterion, "span 5: want 1 to 4"},
		{"skip outside model", [][]int{{1, 2}}, "bi", Options{SkipBlocks: []int{5}}, ErrCriterion, "block 5 is outside 0..4"},
		{"everything skipped", [][]int{{1, 2}}, "bi", Options{SkipBlocks: []int{0, 1, 2, 3, 4}}, ErrCriterion, "all 5 blocks are skipped"},
		{"no calibration", nil, "bi", Options{}, ErrCalibration, "calibration data required"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var calib *Calibration
			if c.ids != nil {
				calib = &Calibration{Source: "bad.json", IDs: c.ids}
			}
			_, err := Compute(r, calib, c.criterion, c.opts)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) || strings.Contains(err.Error(), "\n") {
				t.Errorf("got %v, want one line wrapping %v containing %q", err, c.want, c.msg)
			}
			if errors.Is(err, ErrCalibration) && calib != nil && !strings.Contains(err.Error(), "bad.json") {
				t.Errorf("error %q does not name the calibration file", err)
			}
		})
	}
}

func TestParseCriteria(t *testing.T) {
	got, err := ParseCriteria("taylor+, ppl,all")
	if err != nil || !slices.Equal(got, append([]string{"taylor+", "ppl"}, BaseCriteria()...)) {
		t.Errorf("got %v, %v", got, err)
	}
	if _, err := ParseCriteria("taylor,nope"); !errors.Is(err, ErrCriterion) {
		t.Errorf("unknown name: got %v", err)
	}
	for _, c := range Criteria() {
		if NeedsData(c) == (c == "magnitude" || c == "mag+") {
			t.Errorf("NeedsData(%q) = %v", c, NeedsData(c))
		}
	}
}

// TestResults_RoundTrip: WriteResults leaves no temp file, and ReadResults reads one result
// and a list back with nulls intact.
func TestResults_RoundTrip(t *testing.T) {
	dir := t.TempDir()
	a := &Result{Model: "m", NumLayers: 3, Criterion: "bi", Scores: []*float64{ptr(0.5), nil, ptr(0.25)}, Order: []int{2, 0},
		Calibration: &Calibration{Source: "c.json", SeqLen: 2, IDs: [][]int{{1, 2}}}}
	b := &Result{Model: "m", NumLayers: 3, Criterion: "mag+", Scores: []*float64{ptr(3), ptr(1), ptr(2)}, Order: []int{1, 2, 0}}
	for _, rs := range [][]*Result{{a}, {a, b}} {
		p := filepath.Join(dir, "s.json")
		if err := WriteResults(p, rs); err != nil {
			t.Fatal(err)
		}
		got, err := ReadResults(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(rs) || got[0].Scores[1] != nil || *got[0].Scores[2] != 0.25 || !slices.Equal(got[len(got)-1].Order, rs[len(rs)-1].Order) {
			t.Errorf("round trip of %d results: %+v", len(rs), got)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("files left in %s: %v", dir, entries)
	}
	if _, err := ReadResults(writeFile(t, "x.json", `{"ids": [[1]]}`)); err == nil {
		t.Error("a calibration file read as scores")
	}
}

// TestReduceSalience_MatchesHost: the on-device fold of accumulated w·g equals the host's
// reduceTensor for every weight reduction and norm power, on a block of a matrix and a vector.
func TestReduceSalience_MatchesHost(t *testing.T) {
	r := loadRunner(t, "stories260K")
	mat := []float32{0.5, -1.5, 2, 0.25, -3, 1, 0.75, -0.5, 4, 1.25, -2, 0.1}
	vec := []float32{-0.3, 0.6, 1.2, -2.4, 0.9}
	for _, how := range []string{"sum", "mean", "max", "prod"} {
		for _, p := range []float64{1, 2, 0.5} {
			opts := Options{WeightReduction: how, NormPower: p}
			a := tensors.FromFlatDataAndDimensions(slices.Clone(mat), 3, 4)
			b := tensors.FromFlatDataAndDimensions(slices.Clone(vec), 5)
			got, err := reduceSalience(r, []*tensors.Tensor{a, b}, 1, 2, opts)
			if err != nil {
				t.Fatal(err)
			}
			scale := func(v []float32) []float64 {
				out := make([]float64, len(v))
				for i, x := range v {
					out[i] = float64(x) / 2
				}
				return out
			}
			want := reduceTensor(scale(mat), []int{3, 4}, opts) + reduceTensor(scale(vec), []int{5}, opts)
			if math.Abs(got[0]-want) > 1e-12*math.Max(1, math.Abs(want)) {
				t.Errorf("%s p=%g: device %.15g, host %.15g", how, p, got[0], want)
			}
		}
	}
}

// TestTaylor_RematMatchesWholeGraph: the block-by-block rematerialised backward gives the
// scores of the whole-model gradient, also with blocks skipped and over several batches.
func TestTaylor_RematMatchesWholeGraph(t *testing.T) {
	r := loadRunner(t, "stories260K")
	calib := sharedCalib(t)
	ids := calib.IDs[:4]
	for _, skip := range [][]int{nil, {1, 3}} {
		base, err := taylor(r, ids, Options{BatchSize: 2, SkipBlocks: skip}.withDefaults())
		if err != nil {
			t.Fatal(err)
		}
		remat, err := taylor(r, ids, Options{BatchSize: 2, SkipBlocks: skip, Remat: true}.withDefaults())
		if err != nil {
			t.Fatal(err)
		}
		for b := range base {
			if (base[b] == nil) != (remat[b] == nil) {
				t.Fatalf("skip %v block %d: nil mismatch", skip, b)
			}
			if base[b] != nil && math.Abs(*remat[b]-*base[b]) > 1e-5*math.Abs(*base[b]) {
				t.Errorf("skip %v block %d: remat %.8g, whole graph %.8g", skip, b, *remat[b], *base[b])
			}
		}
	}
}
