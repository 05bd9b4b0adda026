package eval

import (
	"errors"
	"math"
	"strings"
	"testing"
)

// nanLM is uniformLM except that the poisoned call (0-based) returns NaN for its second
// sequence: a model whose weights broke.
type nanLM struct {
	uniformLM
	poisoned int
	calls    *int
}

func (m nanLM) Score(seqs [][]int) ([]Scored, error) {
	out, err := m.uniformLM.Score(seqs)
	if err == nil && *m.calls == m.poisoned && len(out) > 1 {
		out[1].LogProbs[2] = math.NaN()
	}
	*m.calls++
	return out, err
}

// TestPerplexity_NaNNamesTheChunk: NaN log-probabilities are an error naming the chunk, not
// "ppl NaN" with exit 0.
func TestPerplexity_NaNNamesTheChunk(t *testing.T) {
	chunks := make([][]int, 10)
	for i := range chunks {
		chunks[i] = []int{1, 2, 3, 4, 5}
	}
	calls := 0
	_, err := Perplexity(nanLM{uniformLM{vocab: 8, maxLen: 16}, 1, &calls}, chunks, 4, nil)
	if !errors.Is(err, ErrNotFinite) || !strings.Contains(err.Error(), "chunk 5 of 10") || !strings.Contains(err.Error(), "NaN") {
		t.Fatalf("got %v; want a not-finite error naming chunk 5 (batch 1, sequence 1)", err)
	}
}

// TestRunZeroShot_NaNNamesTheItem: a NaN in one choice's log-probabilities names the task,
// item and choice.
func TestRunZeroShot_NaNNamesTheItem(t *testing.T) {
	arc := writeTask(t, "arc_challenge", arcLine+"\n")
	task, err := LoadTask(arc, "arc_challenge", 0)
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	_, err = RunZeroShot(nanLM{uniformLM{vocab: byteVocab, maxLen: 512}, 0, &calls}, byteTokenizer{}, []*Task{task}, ZeroShotOptions{ModelDir: "m"})
	if !errors.Is(err, ErrNotFinite) || !strings.Contains(err.Error(), "arc_challenge item 0 choice 1") {
		t.Fatalf("got %v; want a not-finite error naming arc_challenge item 0 choice 1", err)
	}
}
