package eval

import (
	"errors"
	"fmt"
	"math"
)

// Tokenizer is the part of a tokenizer that evaluation needs.
// *tokenizer.Tokenizer from internal/tokenizer satisfies it.
type Tokenizer interface {
	// Encode tokenises text; addSpecial adds BOS (and whatever else the
	// tokenizer's post-processor adds). Evaluation always passes false.
	Encode(text string, addSpecial bool) []int
	// BOS returns the beginning-of-sequence id, or a negative number when the
	// tokenizer has none.
	BOS() int
}

// LM scores token sequences.
//
// Score returns one Scored per input sequence s (len(s) ≥ 2): for every
// position t in [1, len(s)), LogProbs[t-1] = log p(s[t] | s[:t]) and
// Greedy[t-1] reports whether s[t] is the argmax of that distribution.
// The last token of s is only a target, so an implementation runs its forward
// pass on s[:len(s)-1]; sequences therefore have at most MaxLen()+1 tokens.
// Sequences in one call may differ in length; the implementation does its own
// batching and padding.
//
// MaxLen is the longest input the model accepts (max_position_embeddings).
type LM interface {
	Score(seqs [][]int) ([]Scored, error)
	MaxLen() int
}

// Scored holds the per-position results of LM.Score for one sequence.
type Scored struct {
	LogProbs []float64
	Greedy   []bool
}

// scoreChecked calls lm.Score and checks the shape of what comes back, so a
// buggy LM fails loudly instead of yielding a plausible-looking metric.
func scoreChecked(lm LM, seqs [][]int) ([]Scored, error) {
	out, err := lm.Score(seqs)
	if err != nil {
		return nil, err
	}
	if len(out) != len(seqs) {
		return nil, fmt.Errorf("LM returned %d results for %d sequences", len(out), len(seqs))
	}
	for i, s := range seqs {
		if len(out[i].LogProbs) != len(s)-1 || len(out[i].Greedy) != len(s)-1 {
			return nil, fmt.Errorf("LM result %d: %d log-probs and %d greedy flags for a sequence of %d tokens (want %d)",
				i, len(out[i].LogProbs), len(out[i].Greedy), len(s), len(s)-1)
		}
		for pos, lp := range out[i].LogProbs {
			if math.IsNaN(lp) || math.IsInf(lp, 0) {
				return nil, &NotFiniteError{Seq: i, Pos: pos + 1, Value: lp}
			}
		}
	}
	return out, nil
}

// ErrNotFinite marks a log-probability that is NaN or infinite: the model's weights or
// activations are broken, and any number computed from it would be meaningless.
var ErrNotFinite = errors.New("log-probability is not finite")

// NotFiniteError says which sequence of a Score call (and which token in it) gave a NaN or
// infinite log-probability; callers name the chunk or item it belongs to.
type NotFiniteError struct {
	Seq, Pos int
	Value    float64
}

func (e *NotFiniteError) Error() string {
	return fmt.Sprintf("log-probability of token %d is %v (the model's logits are not finite: broken or overflowing weights?)", e.Pos, e.Value)
}

func (e *NotFiniteError) Unwrap() error { return ErrNotFinite }
