package eval

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
)

// expectedLoglik sums the bigram log-probs of the continuation by hand from
// the byte tokenizer's ids, independently of NewRequest.
func expectedLoglik(lm bigramLM, context, continuation string) (float64, bool) {
	ctx := strings.TrimRight(context, " ")
	cont := context[len(ctx):] + continuation
	all := byteTokenizer{}.Encode(ctx+cont, false)
	var ll float64
	greedy := true
	for t := len(ctx); t < len(all); t++ {
		lp, g := lm.logProb(all[t-1], all[t])
		ll += lp
		greedy = greedy && g
	}
	return ll, greedy
}

func TestRunZeroShot_BigramLM(t *testing.T) {
	arc := writeTask(t, "arc_challenge", arcLine+"\n"+strings.Replace(arcLine, `"C"}`, `"A"}`, 1)+"\n")
	wino := writeTask(t, "winogrande", winoLine+"\n")
	var tasks []*Task
	for _, l := range []struct{ dir, name string }{{arc, "arc_challenge"}, {wino, "winogrande"}} {
		task, err := LoadTask(l.dir, l.name, 0)
		if err != nil {
			t.Fatal(err)
		}
		tasks = append(tasks, task)
	}
	calls := 0
	lm := bigramLM{vocab: byteVocab, maxLen: 64, calls: &calls}
	var samples bytes.Buffer
	var progress []string
	rep, err := RunZeroShot(lm, byteTokenizer{}, tasks, ZeroShotOptions{
		ModelDir: "m", Samples: &samples,
		Progress: func(task string, done, total int) { progress = append(progress, task) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 3 || len(progress) != 3 {
		t.Errorf("%d Score calls and %d progress calls; want one per item (3)", calls, len(progress))
	}
	var recs []SampleRecord
	for _, line := range strings.Split(strings.TrimSpace(samples.String()), "\n") {
		var r SampleRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	if len(recs) != 3 {
		t.Fatalf("%d sample lines, want 3", len(recs))
	}
	for _, r := range recs {
		var lls []float64
		for _, c := range r.Choices {
			want, greedy := expectedLoglik(lm, c.Context, c.Continuation)
			if math.Abs(c.Loglik-want) > 1e-12 || c.IsGreedy != greedy {
				t.Errorf("%s/%d %q: loglik %v greedy %v, want %v %v", r.Task, r.DocIndex, c.Continuation, c.Loglik, c.IsGreedy, want, greedy)
			}
			lls = append(lls, c.Loglik)
		}
		pred, _ := argmaxMargin(lls)
		if r.Pred != pred || r.Acc != indicator(pred == r.Gold) {
			t.Errorf("%s/%d: pred %d acc %v, want %d", r.Task, r.DocIndex, r.Pred, r.Acc, pred)
		}
	}
	// Report: means of the samples, harness metric sets, paper pick and average.
	arcRes, winoRes := rep.Results["arc_challenge"], rep.Results["winogrande"]
	if arcRes.N != 2 || arcRes.Acc != (recs[0].Acc+recs[1].Acc)/2 || arcRes.AccNorm == nil ||
		*arcRes.AccNorm != (recs[0].AccNorm+recs[1].AccNorm)/2 || arcRes.Paper != *arcRes.AccNorm || arcRes.PaperMetric != MetricAccNorm {
		t.Errorf("arc_challenge result %+v", arcRes)
	}
	if winoRes.AccNorm != nil || winoRes.Paper != winoRes.Acc || winoRes.N != 1 || winoRes.AccStderr != 0 {
		t.Errorf("winogrande result %+v (acc only, stderr 0 for one item)", winoRes)
	}
	if want := (arcRes.Paper + winoRes.Paper) / 2; rep.PaperAverage != want {
		t.Errorf("paper_average %v, want %v", rep.PaperAverage, want)
	}
	c := rep.Config
	if c.ModelDir != "m" || c.MaxLength != 64 || len(c.Tasks) != 2 || c.Tasks[0].SHA256 != tasks[0].SHA256 || c.NumFewshot != 0 || c.BOS {
		t.Errorf("config %+v", c)
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Error(err)
	}
}

func TestMeanStderr(t *testing.T) {
	// 3 of 4 correct: p = .75, stderr = sqrt(p(1-p)/(n-1)) = sqrt(.1875/3) = .25.
	m, s := meanStderr([]float64{1, 0, 1, 1})
	if m != 0.75 || math.Abs(s-0.25) > 1e-15 {
		t.Errorf("got %v ± %v, want 0.75 ± 0.25", m, s)
	}
}

func TestArgmaxMargin_NumpySemantics(t *testing.T) {
	tests := []struct {
		xs     []float64
		best   int
		margin float64
	}{
		{[]float64{-3, -1, -1, -2}, 1, 0}, // first of tied maxima
		{[]float64{-5, -2, -4}, 1, 2},
		{[]float64{-1, math.NaN(), 0}, 1, math.NaN()}, // NaN wins as in np.argmax
	}
	for _, tt := range tests {
		best, margin := argmaxMargin(tt.xs)
		if best != tt.best || (margin != tt.margin && !(math.IsNaN(margin) && math.IsNaN(tt.margin))) {
			t.Errorf("argmax(%v) = %d, %v; want %d, %v", tt.xs, best, margin, tt.best, tt.margin)
		}
	}
}

func TestNewRequest_TruncationAndEdgeCases(t *testing.T) {
	tok := byteTokenizer{}
	// 10 context bytes + " ab" (3 bytes): 13 tokens, max length 8 keeps the last 9.
	r, err := NewRequest("0123456789  ", "ab", tok, 8, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.ContextMoved != "0123456789" || r.ContinuationMoved != "  ab" || !r.Truncated || r.InputLen() != 8 ||
		len(r.ContinuationIDs) != 4 || r.Input[len(r.Input)-1] != 'b'+3 {
		t.Errorf("request %+v", r)
	}
	// An empty context is BOS, and the continuation is not moved.
	r, err = NewRequest("", " x", tok, 8, nil)
	if err != nil || len(r.ContextIDs) != 1 || r.ContextIDs[0] != tok.BOS() || len(r.ContinuationIDs) != 2 {
		t.Errorf("empty context: %+v, %v", r, err)
	}
	// A continuation that cannot fit is an error, not a silent misalignment.
	if _, err := NewRequest("c", strings.Repeat("y", 9), tok, 8, nil); err == nil {
		t.Error("over-long continuation accepted")
	}
	if _, err := NewRequest("c", "", tok, 8, nil); err == nil {
		t.Error("empty continuation accepted")
	}
}
