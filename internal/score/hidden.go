package score

import (
	"fmt"
	"math"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph code reads like maths
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/shortllm/shortllm/internal/model"
)

// pplRemoved is the perplexity of the calibration windows with each block removed in turn
// (anal_block_sensitivity_ppl.py). Removing block i leaves blocks 0..i−1 unchanged, so one
// pass per micro-batch collects the hidden state entering every block and each ablation runs
// only blocks i+1.. from there: about half the work of L separate forwards. It also returns
// the perplexity with every (kept) block in place: the last block run from its input.
func pplRemoved(r *model.Runner, ids [][]int, opts Options) ([]*float64, *float64, error) {
	cfg := r.Model.Config
	blocks := kept(cfg.NumHiddenLayers, opts.SkipBlocks)
	nll := make([]float64, cfg.NumHiddenLayers)
	var full float64
	parts := batches(ids, opts.BatchSize)
	done, total := 0, len(parts)*(1+len(blocks))
	for _, part := range parts {
		in, lab := shifted(part)
		inT, err := model.IDsTensor(in)
		if err != nil {
			return nil, nil, err
		}
		labT, _ := model.IDsTensor(lab)
		hidden, err := prefixHidden(r, blocks, opts.SkipBlocks, inT)
		if err != nil {
			return nil, nil, err
		}
		done++
		opts.Progress(done, total)
		last := len(blocks) - 1
		s, err := nllFrom(r, blocks[last], opts.SkipBlocks, hidden[last], labT)
		if err != nil {
			return nil, nil, err
		}
		full += s
		for k, b := range blocks {
			s, err := nllFrom(r, b+1, opts.SkipBlocks, hidden[k], labT)
			if err != nil {
				return nil, nil, err
			}
			nll[b] += s
			done++
			opts.Progress(done, total)
		}
	}
	tokens := float64(len(ids) * (len(ids[0]) - 1))
	scores := make([]*float64, cfg.NumHiddenLayers)
	for _, b := range blocks {
		scores[b] = ptr(math.Exp(nll[b] / tokens))
	}
	return scores, ptr(math.Exp(full / tokens)), nil
}

// prefixHidden returns the hidden state entering each of blocks. The last block's own output
// is never needed, so it is skipped in this pass.
func prefixHidden(r *model.Runner, blocks, skip []int, ids *tensors.Tensor) ([]*tensors.Tensor, error) {
	cfg := r.Model.Config
	last := blocks[len(blocks)-1]
	collectSkip := append(append([]int(nil), skip...), last)
	return r.Run("score/prefix/"+model.SkipKey(skip), func(p model.Params, x []*Node) []*Node {
		res := model.Forward(cfg, p, x[0], model.ForwardOptions{SkipBlocks: collectSkip, CollectHidden: true, NoHead: true})
		out := make([]*Node, len(blocks))
		for k, b := range blocks {
			out[k] = res.Hidden[b]
		}
		return out
	}, ids)
}

// nllFrom runs blocks from..L−1 (minus skip) and the head on hidden states and returns the
// summed next-token NLL.
func nllFrom(r *model.Runner, from int, skip []int, hidden, labels *tensors.Tensor) (float64, error) {
	cfg := r.Model.Config
	key := fmt.Sprintf("score/nll-from/%d/%s", from, model.SkipKey(skip))
	out, err := r.Run(key, func(p model.Params, x []*Node) []*Node {
		res := model.Forward(cfg, p, nil, model.ForwardOptions{SkipBlocks: skip, FromBlock: from, InputHidden: x[0]})
		s, _ := model.NLLSum(res.Logits, x[1])
		return []*Node{ConvertDType(s, dtypes.Float64)}
	}, hidden, labels)
	if err != nil {
		return 0, err
	}
	return tensors.MustCopyFlatData[float64](out[0])[0], nil
}

// hiddenStats runs one micro-batch of whole windows and returns, per kept block, Σ over
// tokens of 1 − cos(block input, block output), and the last token's hidden state entering
// every block and leaving the last [L+1][B·D].
func hiddenStats(r *model.Runner, blocks, skip []int, part [][]int) (bi []float64, last [][]float64, err error) {
	ids, err := model.IDsTensor(part)
	if err != nil {
		return nil, nil, err
	}
	cfg := r.Model.Config
	out, err := r.Run("score/hidden/"+model.SkipKey(skip), func(p model.Params, x []*Node) []*Node {
		res := model.Forward(cfg, p, x[0], model.ForwardOptions{SkipBlocks: skip, CollectHidden: true, NoHead: true})
		h := make([]*Node, len(res.Hidden))
		for i, n := range res.Hidden {
			h[i] = ConvertDType(n, dtypes.Float64)
		}
		dist := make([]*Node, len(blocks))
		for k, b := range blocks {
			dist[k] = ReduceAllSum(OneMinus(cosine(h[b], h[b+1])))
		}
		T := h[0].Shape().Dimensions[1]
		tails := make([]*Node, len(h))
		for i, n := range h {
			tails[i] = Slice(n, AxisRange(), AxisElem(T-1), AxisRange())
		}
		return []*Node{Stack(dist, 0), Stack(tails, 0)}
	}, ids)
	if err != nil {
		return nil, nil, err
	}
	bi = tensors.MustCopyFlatData[float64](out[0])
	flat := tensors.MustCopyFlatData[float64](out[1])
	n := cfg.NumHiddenLayers + 1
	per := len(flat) / n
	for i := 0; i < n; i++ {
		last = append(last, flat[i*per:(i+1)*per])
	}
	return bi, last, nil
}

// cosine is the cosine similarity of a and b [B, T, D] per token → [B, T].
func cosine(a, b *Node) *Node {
	dot := ReduceSum(Mul(a, b), -1)
	return Div(dot, Sqrt(Mul(ReduceSum(Square(a), -1), ReduceSum(Square(b), -1))))
}

// blockInfluence is ShortGPT's BI: 1 − cos(block input, block output), averaged over every
// calibration token. A block that barely turns the residual stream is cheap to drop.
func blockInfluence(r *model.Runner, ids [][]int, opts Options) ([]*float64, error) {
	cfg := r.Model.Config
	blocks := kept(cfg.NumHiddenLayers, opts.SkipBlocks)
	sums := make([]float64, len(blocks))
	parts := batches(ids, opts.BatchSize)
	for k, part := range parts {
		bi, _, err := hiddenStats(r, blocks, opts.SkipBlocks, part)
		if err != nil {
			return nil, err
		}
		for j, v := range bi {
			sums[j] += v
		}
		opts.Progress(k+1, len(parts))
	}
	tokens := float64(len(ids) * len(ids[0]))
	scores := make([]*float64, cfg.NumHiddenLayers)
	for j, b := range blocks {
		scores[b] = ptr(sums[j] / tokens)
	}
	return scores, nil
}

// angular is PruneMe's distance arccos(cos)/π between the last token's hidden state entering
// kept block l and leaving the Span−1'th kept block after it, averaged over windows; the score
// sits at the span's first block. Unlike HF's output_hidden_states, the final state is taken
// before the model's last norm, so the last span measures blocks only.
func angular(r *model.Runner, ids [][]int, opts Options) ([]*float64, error) {
	cfg := r.Model.Config
	blocks := kept(cfg.NumHiddenLayers, opts.SkipBlocks)
	D := cfg.HiddenSize
	sums := make([]float64, len(blocks))
	parts := batches(ids, opts.BatchSize)
	for k, part := range parts {
		_, last, err := hiddenStats(r, blocks, opts.SkipBlocks, part)
		if err != nil {
			return nil, err
		}
		for s := 0; s+opts.Span <= len(blocks); s++ {
			in, out := last[blocks[s]], last[blocks[s+opts.Span-1]+1]
			for w := 0; w < len(part); w++ {
				sums[s] += angle(in[w*D:(w+1)*D], out[w*D:(w+1)*D])
			}
		}
		opts.Progress(k+1, len(parts))
	}
	scores := make([]*float64, cfg.NumHiddenLayers)
	for s := 0; s+opts.Span <= len(blocks); s++ {
		scores[blocks[s]] = ptr(sums[s] / float64(len(ids)))
	}
	return scores, nil
}

// angle is arccos(cos(a, b))/π, with the cosine clamped to [−1, 1] against rounding.
func angle(a, b []float64) float64 {
	var dot, na, nb float64
	for i := range a {
		dot += a[i] * b[i]
		na += a[i] * a[i]
		nb += b[i] * b[i]
	}
	c := dot / math.Sqrt(na*nb)
	return math.Acos(math.Max(-1, math.Min(1, c))) / math.Pi
}
