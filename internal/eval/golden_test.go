package eval

import (
	"bufio"
	"encoding/json"
	"math"
	"os"
	"testing"
)

// goldenModels are the models with zero-shot goldens in ../shared.
var goldenModels = []string{"stories260K", "deep16"}

// goldenItems reads goldens/zeroshot/<model>_items.jsonl.
func goldenItems(tb testing.TB, model string) []SampleRecord {
	tb.Helper()
	f, err := os.Open(sharedPath(tb, "goldens", "zeroshot", model+"_items.jsonl"))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var items []SampleRecord
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var it SampleRecord
		if err := json.Unmarshal(sc.Bytes(), &it); err != nil {
			tb.Fatal(err)
		}
		items = append(items, it)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return items
}

type goldenSummary struct {
	MaxLength int `json:"max_length"`
	Tasks     map[string]struct {
		NItems    int     `json:"n_items"`
		Acc       float64 `json:"acc"`
		AccNorm   float64 `json:"acc_norm"`
		NRequests int     `json:"n_requests"`
		NTrunc    int     `json:"n_truncated_requests"`
	} `json:"tasks"`
}

func readGoldenSummary(tb testing.TB, model string) goldenSummary {
	tb.Helper()
	var s goldenSummary
	if err := json.Unmarshal(readShared(tb, "goldens", "zeroshot", model+"_summary.json"), &s); err != nil {
		tb.Fatal(err)
	}
	return s
}

// goldenTasks loads each task's first n items from the shared data.
func goldenTasks(tb testing.TB, n int) map[string]*Task {
	tb.Helper()
	dir := sharedPath(tb, "data", "zeroshot")
	tasks := map[string]*Task{}
	for _, name := range TaskNames() {
		task, err := LoadTask(dir, name, n)
		if err != nil {
			tb.Fatal(err)
		}
		tasks[name] = task
	}
	return tasks
}

// The golden items' strings come from lm-eval's own prompt code; every
// context, continuation, gold index and completion length must match.
func TestLoadTask_GoldenStrings(t *testing.T) {
	tasks := goldenTasks(t, 40)
	for _, model := range goldenModels {
		items := goldenItems(t, model)
		if len(items) != 7*40 {
			t.Fatalf("%s: %d golden items, want 280", model, len(items))
		}
		var checked int
		for _, it := range items {
			doc := tasks[it.Task].Docs[it.DocIndex]
			if doc.Gold != it.Gold || doc.MultipleInput != it.MultipleInput || len(doc.Choices) != len(it.Choices) {
				t.Errorf("%s %s/%d: gold %d multiple_input %v %d choices; golden %d %v %d", model, it.Task, it.DocIndex,
					doc.Gold, doc.MultipleInput, len(doc.Choices), it.Gold, it.MultipleInput, len(it.Choices))
				continue
			}
			for c, gc := range it.Choices {
				r, err := NewRequest(doc.Contexts[c], doc.Continuations[c], byteTokenizer{}, 1<<20, nil)
				if err != nil {
					t.Fatal(err)
				}
				if r.Context != gc.Context || r.Continuation != gc.Continuation ||
					r.ContextMoved != gc.ContextWSMoved || r.ContinuationMoved != gc.ContinuationWSMoved {
					t.Errorf("%s %s/%d choice %d:\n got (%q, %q) moved (%q, %q)\nwant (%q, %q) moved (%q, %q)",
						model, it.Task, it.DocIndex, c, r.Context, r.Continuation, r.ContextMoved, r.ContinuationMoved,
						gc.Context, gc.Continuation, gc.ContextWSMoved, gc.ContinuationWSMoved)
				}
				if got := pyLen(doc.Choices[c]); got != gc.CompletionLen {
					t.Errorf("%s %s/%d choice %d: completion_len %d, golden %d", model, it.Task, it.DocIndex, c, got, gc.CompletionLen)
				}
			}
			checked++
		}
		t.Logf("%s: %d items' strings match", model, checked)
	}
}

// Feeding the golden per-choice logliks through ScoreItem and Summarize must
// reproduce the golden per-item predictions and the summary's accuracies.
func TestScoreItem_GoldenLogliks(t *testing.T) {
	for _, model := range goldenModels {
		items := goldenItems(t, model)
		sum := readGoldenSummary(t, model)
		byTask := map[string][]SampleRecord{}
		for _, it := range items {
			got := it
			got.Choices = append([]ChoiceRecord(nil), it.Choices...)
			got.Pred, got.PredNorm, got.Acc, got.AccNorm, got.Margin, got.MarginNorm = -1, -1, -1, -1, 0, 0
			ScoreItem(&got)
			if got.Pred != it.Pred || got.PredNorm != it.PredNorm || got.Acc != it.Acc || got.AccNorm != it.AccNorm ||
				math.Abs(got.Margin-it.Margin) > 1e-9 || math.Abs(got.MarginNorm-it.MarginNorm) > 1e-9 {
				t.Errorf("%s %s/%d: got pred %d/%d acc %v/%v margin %v/%v; golden %d/%d %v/%v %v/%v", model, it.Task, it.DocIndex,
					got.Pred, got.PredNorm, got.Acc, got.AccNorm, got.Margin, got.MarginNorm,
					it.Pred, it.PredNorm, it.Acc, it.AccNorm, it.Margin, it.MarginNorm)
			}
			byTask[it.Task] = append(byTask[it.Task], got)
		}
		for name, want := range sum.Tasks {
			spec, ok := lookupTask(name)
			if !ok {
				t.Fatalf("golden task %q unknown", name)
			}
			res := Summarize(byTask[name], spec.paperMetric, true)
			if res.N != want.NItems || math.Abs(res.Acc-want.Acc) > 1e-12 || math.Abs(*res.AccNorm-want.AccNorm) > 1e-12 {
				t.Errorf("%s %s: n %d acc %v acc_norm %v; golden %d %v %v", model, name, res.N, res.Acc, *res.AccNorm,
					want.NItems, want.Acc, want.AccNorm)
			}
		}
	}
}
