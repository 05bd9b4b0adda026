package retrain

// The data order and the padded micro-batches. The order is a pure function of the seed and
// the update index, so a resumed run sees exactly the batches the interrupted one would have.

import (
	"math/rand/v2"

	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/shortllm/shortllm/internal/model"
)

// plan maps update k to the examples of its batch.
type plan struct {
	n, size, perEpoch, steps int
	ordered                  bool
	seed                     uint64
	perms                    map[int][]int
}

// newPlan sizes the run: MaxSteps updates, else enough whole batches to see MaxTokens input
// tokens, else Epochs passes. An epoch is ⌈n / batch⌉ updates (the last batch may be short),
// shuffled with seed and epoch as HF's sampler does per epoch; pre-tokenised data keeps
// file order.
func newPlan(d *Dataset, o Options) *plan {
	n := len(d.Examples)
	p := &plan{n: n, size: o.BatchSize, perEpoch: (n + o.BatchSize - 1) / o.BatchSize,
		ordered: d.Ordered, seed: o.Seed, perms: map[int][]int{}}
	switch {
	case o.MaxSteps > 0:
		p.steps = o.MaxSteps
	case o.MaxTokens > 0:
		p.steps = p.stepsForTokens(d, o.MaxTokens)
	default:
		p.steps = o.Epochs * p.perEpoch
	}
	return p
}

// stepsForTokens counts updates until the input tokens reach limit.
func (p *plan) stepsForTokens(d *Dataset, limit int64) int {
	var seen int64
	k := 0
	for seen < limit {
		for _, i := range p.batch(k) {
			seen += int64(len(d.Examples[i].IDs))
		}
		k++
	}
	return k
}

func (p *plan) total() int { return p.steps }

func (p *plan) epoch(k int) int { return k / p.perEpoch }

// batch returns the example indices of update k (0-based).
func (p *plan) batch(k int) []int {
	e, pos := k/p.perEpoch, k%p.perEpoch
	perm := p.perm(e)
	return perm[pos*p.size : min((pos+1)*p.size, p.n)]
}

func (p *plan) perm(e int) []int {
	if perm, ok := p.perms[e]; ok {
		return perm
	}
	perm := make([]int, p.n)
	for i := range perm {
		perm[i] = i
	}
	if !p.ordered {
		rng := rand.New(rand.NewPCG(p.seed, uint64(e)))
		rng.Shuffle(p.n, func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
	}
	clear(p.perms) // only the current epoch is needed again
	p.perms[e] = perm
	return perm
}

// microBatch is one padded slice of a batch.
type microBatch struct {
	ids, labels         *tensors.Tensor // [b, T] int32; labels shifted: labels[t] is the target of ids[t]
	tokens, labelTokens int
}

// microBatches splits a batch into micro-batches of MicroBatchSize.
func (t *Trainer) microBatches(d *Dataset, idx []int) ([]microBatch, error) {
	var out []microBatch
	for i := 0; i < len(idx); i += t.o.MicroBatchSize {
		var exs []Example
		for _, j := range idx[i:min(i+t.o.MicroBatchSize, len(idx))] {
			exs = append(exs, d.Examples[j])
		}
		mb, err := t.makeMicro(exs)
		if err != nil {
			return nil, err
		}
		out = append(out, mb)
	}
	return out, nil
}

// makeMicro right-pads examples to a common length (a multiple of 16, capped at the context,
// so few graph shapes are compiled) and shifts labels: target[t] = labels[t+1], as HF's
// causal-LM loss compares logits[:, :-1] with labels[:, 1:]. Causal attention keeps real
// tokens from seeing the padding after them, and padding carries no label.
func (t *Trainer) makeMicro(exs []Example) (microBatch, error) {
	longest := 0
	for _, e := range exs {
		longest = max(longest, len(e.IDs))
	}
	T := min((longest+15)/16*16, max(longest, t.cfg.MaxPositionEmbeddings))
	ids := make([][]int, len(exs))
	labels := make([][]int, len(exs))
	mb := microBatch{}
	for i, e := range exs {
		ids[i], labels[i] = make([]int, T), make([]int, T)
		for j := range T {
			ids[i][j], labels[i][j] = t.o.PadID, model.IgnoreIndex
			if j < len(e.IDs) {
				ids[i][j] = e.IDs[j]
			}
			if j+1 < len(e.IDs) {
				labels[i][j] = e.Labels[j+1]
			}
			if labels[i][j] != model.IgnoreIndex {
				mb.labelTokens++
			}
		}
		mb.tokens += len(e.IDs)
	}
	var err error
	if mb.ids, err = model.IDsTensor(ids); err != nil {
		return mb, err
	}
	mb.labels, err = model.IDsTensor(labels)
	return mb, err
}
