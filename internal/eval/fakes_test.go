package eval

import (
	"fmt"
	"math"
)

// byteTokenizer encodes every byte as its own token (id = byte+3), with BOS
// 1: a stand-in whose output is easy to predict by hand.
type byteTokenizer struct{}

func (byteTokenizer) Encode(text string, addSpecial bool) []int {
	ids := make([]int, 0, len(text)+1)
	if addSpecial {
		ids = append(ids, 1)
	}
	for i := 0; i < len(text); i++ {
		ids = append(ids, int(text[i])+3)
	}
	return ids
}

func (byteTokenizer) BOS() int { return 1 }

const byteVocab = 256 + 3

// uniformLM gives every token the same probability, so its perplexity is the
// vocabulary size exactly. Ties make token 0 the argmax.
type uniformLM struct{ vocab, maxLen int }

func (m uniformLM) MaxLen() int { return m.maxLen }

func (m uniformLM) Score(seqs [][]int) ([]Scored, error) {
	out := make([]Scored, len(seqs))
	for i, s := range seqs {
		if len(s) > m.maxLen+1 {
			return nil, fmt.Errorf("sequence of %d tokens > maxLen+1", len(s))
		}
		out[i] = Scored{LogProbs: make([]float64, len(s)-1), Greedy: make([]bool, len(s)-1)}
		for t := 1; t < len(s); t++ {
			out[i].LogProbs[t-1] = -math.Log(float64(m.vocab))
			out[i].Greedy[t-1] = s[t] == 0
		}
	}
	return out, nil
}

// bigramLM is a deterministic bigram model: logit(next | prev) from a fixed
// hash, normalised with a log-softmax. Its log-probs depend only on the
// previous token, so tests can compute expected values independently.
type bigramLM struct {
	vocab, maxLen int
	calls         *int // counts Score calls when not nil
}

func (m bigramLM) MaxLen() int { return m.maxLen }

func bigramLogit(prev, next int) float64 {
	h := uint32(prev*7919+next*104729) * 2654435761
	return float64(h%1000) / 250 // logits in [0, 4)
}

// logProb returns log p(next | prev) and whether next is the argmax.
func (m bigramLM) logProb(prev, next int) (float64, bool) {
	maxL, arg := math.Inf(-1), 0
	for v := 0; v < m.vocab; v++ {
		if l := bigramLogit(prev, v); l > maxL {
			maxL, arg = l, v
		}
	}
	var z float64
	for v := 0; v < m.vocab; v++ {
		z += math.Exp(bigramLogit(prev, v) - maxL)
	}
	return bigramLogit(prev, next) - maxL - math.Log(z), next == arg
}

func (m bigramLM) Score(seqs [][]int) ([]Scored, error) {
	if m.calls != nil {
		*m.calls++
	}
	out := make([]Scored, len(seqs))
	for i, s := range seqs {
		if len(s) < 2 || len(s) > m.maxLen+1 {
			return nil, fmt.Errorf("sequence of %d tokens outside 2..maxLen+1", len(s))
		}
		out[i] = Scored{LogProbs: make([]float64, len(s)-1), Greedy: make([]bool, len(s)-1)}
		for t := 1; t < len(s); t++ {
			out[i].LogProbs[t-1], out[i].Greedy[t-1] = m.logProb(s[t-1], s[t])
		}
	}
	return out, nil
}

// shortLM returns one log-prob too few: a broken LM the package must reject.
type shortLM struct{ uniformLM }

func (m shortLM) Score(seqs [][]int) ([]Scored, error) {
	out, _ := m.uniformLM.Score(seqs)
	out[0].LogProbs = out[0].LogProbs[1:]
	return out, nil
}
