package eval

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/shortllm/shortllm/internal/tokenizer"
)

// realTokenizer loads the stories260K tokenizer (shared by deep16).
func realTokenizer(tb testing.TB) *tokenizer.Tokenizer {
	tb.Helper()
	tok, err := tokenizer.Load(sharedPath(tb, "models", "stories260K"))
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// The perplexity goldens fix the chunking: 64 chunks of 128 tokens whose
// targets number 64*127 with BOS once and 64*128 with BOS every.
func TestChunks_GoldenCounts(t *testing.T) {
	tok := realTokenizer(t)
	streams := map[string]*Stream{}
	for _, model := range goldenModels {
		var g struct {
			SeqLen  int `json:"seq_len"`
			Results []struct {
				Dataset, Path, BOS string
				FileSHA256         string `json:"file_sha256"`
				MaxChunks          int    `json:"max_chunks"`
				StreamTokens       int    `json:"stream_tokens"`
				Chunks             int    `json:"chunks"`
				ScoredTokens       int    `json:"scored_tokens"`
			} `json:"results"`
		}
		if err := json.Unmarshal(readShared(t, "goldens", model+".ppl64.json"), &g); err != nil {
			t.Fatal(err)
		}
		for _, r := range g.Results {
			st, ok := streams[r.Path]
			if !ok {
				var err error
				if st, err = BuildStream(sharedPath(t, strings.Split(r.Path, "/")...), r.Dataset, tok); err != nil {
					t.Fatal(err)
				}
				streams[r.Path] = st
			}
			if st.SHA256 != r.FileSHA256 {
				t.Errorf("%s: sha256 %s, golden %s", r.Path, st.SHA256, r.FileSHA256)
			}
			chunks, err := Chunks(st.Tokens, g.SeqLen, r.BOS, tok.BOS(), r.MaxChunks)
			if err != nil {
				t.Fatal(err)
			}
			var fed, scored int
			for _, c := range chunks {
				fed += len(c)
				scored += len(c) - 1
			}
			if r.BOS == BOSEvery {
				fed -= len(chunks) // the golden counts stream tokens, not the added BOS
			}
			if len(chunks) != r.Chunks || scored != r.ScoredTokens || fed != r.StreamTokens {
				t.Errorf("%s %s bos %s: %d chunks, %d scored, %d stream tokens; golden %d, %d, %d",
					model, r.Dataset, r.BOS, len(chunks), scored, fed, r.Chunks, r.ScoredTokens, r.StreamTokens)
			}
		}
	}
}

// Every golden request's token ids, input length and truncation must match
// when the real tokenizer builds them.
func TestBuildRequests_GoldenIDs(t *testing.T) {
	tok := realTokenizer(t)
	tasks := goldenTasks(t, 40)
	for _, model := range goldenModels {
		sum := readGoldenSummary(t, model)
		reqs := map[string][][]Request{}
		for name, task := range tasks {
			r, err := BuildRequests(task, tok, sum.MaxLength)
			if err != nil {
				t.Fatal(err)
			}
			reqs[name] = r
		}
		var matched int
		truncated := map[string]int{}
		for _, it := range goldenItems(t, model) {
			for c, gc := range it.Choices {
				r := reqs[it.Task][it.DocIndex][c]
				if !reflect.DeepEqual(r.ContextIDs, gc.ContextIDs) || !reflect.DeepEqual(r.ContinuationIDs, gc.ContinuationIDs) ||
					r.InputLen() != gc.InputLen || r.Truncated != gc.Truncated {
					t.Errorf("%s %s/%d choice %d: ids/input_len/truncated differ from golden (input_len %d vs %d, truncated %v vs %v)",
						model, it.Task, it.DocIndex, c, r.InputLen(), gc.InputLen, r.Truncated, gc.Truncated)
					continue
				}
				if r.Truncated {
					truncated[it.Task]++
				}
				matched++
			}
		}
		for name, want := range sum.Tasks {
			if truncated[name] != want.NTrunc {
				t.Errorf("%s %s: %d truncated requests, golden %d", model, name, truncated[name], want.NTrunc)
			}
		}
		t.Logf("%s: %d requests match", model, matched)
	}
}

// replayLM answers with the golden per-token log-probs of the request whose
// input it is given, so RunZeroShot can be checked end to end against the
// goldens without a model. Positions before the continuation get a log-prob
// that would visibly corrupt the sums if they were included.
type replayLM struct {
	maxLen int
	byKey  map[string]ChoiceRecord
}

func seqKey(ids []int) string { return fmt.Sprint(ids) }

func newReplayLM(items []SampleRecord, maxLen int) replayLM {
	m := replayLM{maxLen: maxLen, byKey: map[string]ChoiceRecord{}}
	for _, it := range items {
		for _, c := range it.Choices {
			all := append(append([]int(nil), c.ContextIDs...), c.ContinuationIDs...)
			m.byKey[seqKey(all[max(0, len(all)-(maxLen+1)):])] = c
		}
	}
	return m
}

func (m replayLM) MaxLen() int { return m.maxLen }

func (m replayLM) Score(seqs [][]int) ([]Scored, error) {
	out := make([]Scored, len(seqs))
	for i, s := range seqs {
		c, ok := m.byKey[seqKey(s)]
		if !ok {
			return nil, fmt.Errorf("no golden request with input %v", s)
		}
		n := len(s) - 1
		out[i] = Scored{LogProbs: make([]float64, n), Greedy: make([]bool, n)}
		k := n - len(c.TokenLogprobs)
		for t := range k {
			out[i].LogProbs[t] = -1000
		}
		copy(out[i].LogProbs[k:], c.TokenLogprobs)
		for t := k; t < n; t++ {
			out[i].Greedy[t] = c.IsGreedy
		}
	}
	return out, nil
}

func TestRunZeroShot_GoldenReplay(t *testing.T) {
	tok := realTokenizer(t)
	tasks := goldenTasks(t, 40)
	var list []*Task
	for _, name := range TaskNames() {
		list = append(list, tasks[name])
	}
	for _, model := range goldenModels {
		items := goldenItems(t, model)
		sum := readGoldenSummary(t, model)
		var samples bytes.Buffer
		rep, err := RunZeroShot(newReplayLM(items, sum.MaxLength), tok, list, ZeroShotOptions{ModelDir: "models/" + model, Samples: &samples})
		if err != nil {
			t.Fatal(err)
		}
		for name, want := range sum.Tasks {
			got := rep.Results[name]
			normOK := got.AccNorm == nil || math.Abs(*got.AccNorm-want.AccNorm) < 1e-12
			if got.N != want.NItems || math.Abs(got.Acc-want.Acc) > 1e-12 || !normOK {
				t.Errorf("%s %s: %+v; golden acc %v acc_norm %v n %d", model, name, got, want.Acc, want.AccNorm, want.NItems)
			}
		}
		lines := strings.Split(strings.TrimSpace(samples.String()), "\n")
		if len(lines) != len(items) {
			t.Fatalf("%s: %d sample lines, want %d", model, len(lines), len(items))
		}
		golden := map[string]SampleRecord{}
		for _, it := range items {
			golden[fmt.Sprint(it.Task, it.DocIndex)] = it
		}
		var matched int
		for _, line := range lines {
			var got SampleRecord
			if err := json.Unmarshal([]byte(line), &got); err != nil {
				t.Fatal(err)
			}
			want, ok := golden[fmt.Sprint(got.Task, got.DocIndex)]
			if !ok || !sampleMatches(got, want) {
				t.Errorf("%s sample differs from golden:\n got %s\nwant %s", model, line, mustJSON(want))
				continue
			}
			matched++
		}
		t.Logf("%s: %d of %d samples match the golden items", model, matched, len(items))
	}
}

// sampleMatches compares a sample with a golden item, logliks to 1e-9 (the
// sum order may differ) and everything else exactly.
func sampleMatches(got, want SampleRecord) bool {
	if math.Abs(got.Margin-want.Margin) > 1e-9 || math.Abs(got.MarginNorm-want.MarginNorm) > 1e-9 {
		return false
	}
	for c := range want.Choices {
		if c >= len(got.Choices) || math.Abs(got.Choices[c].Loglik-want.Choices[c].Loglik) > 1e-9 {
			return false
		}
		got.Choices[c].Loglik = want.Choices[c].Loglik
	}
	got.Margin, got.MarginNorm = want.Margin, want.MarginNorm
	return reflect.DeepEqual(got, want)
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
