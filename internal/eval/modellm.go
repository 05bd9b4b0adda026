package eval

import (
	"github.com/shortllm/shortllm/internal/model"
)

// RunnerLM adapts a model.Runner to LM. SkipBlocks evaluates the model without those blocks
// (the "pruned" model without writing it out).
type RunnerLM struct {
	Runner     *model.Runner
	SkipBlocks []int
}

// Score implements LM.
func (l RunnerLM) Score(seqs [][]int) ([]Scored, error) {
	res, err := l.Runner.Score(seqs, l.SkipBlocks)
	if err != nil {
		return nil, err
	}
	out := make([]Scored, len(res))
	for i, r := range res {
		out[i] = Scored{LogProbs: r.LogProbs, Greedy: r.Greedy}
	}
	return out, nil
}

// MaxLen implements LM: the model's context window.
func (l RunnerLM) MaxLen() int { return l.Runner.Model.Config.MaxPositionEmbeddings }
