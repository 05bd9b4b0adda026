package score

import (
	"fmt"
	"math"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph code reads like maths
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/shortllm/shortllm/internal/model"
)

// scoredTensors lists block i's weight tensors: the 9 matrices and norm vectors. Biases are
// left out, as anal_block_sensitivity_taylor.py keeps only parameters named "weight", so
// scores of biased models (Qwen2) stay comparable with the paper's code.
func scoredTensors(cfg *model.Config, i int) []string {
	var out []string
	for _, n := range cfg.BlockTensorNames(i) {
		if strings.HasSuffix(n, ".weight") {
			out = append(out, n)
		}
	}
	return out
}

// taylor is the first-order Taylor importance of each block, Σ|w ⊙ ∂L/∂w| (reduced as the
// options say), with L the mean next-token cross-entropy over every calibration token. Each
// micro-batch adds w ⊙ ∇(its NLL sum) into float32 accumulators that stay on the device;
// dividing by the total token count and taking |·| only after all batches makes the scores
// independent of the batch size, only one micro-batch's activations are ever alive, and only
// the per-block sums come back to the host (a 7B model's weights never exist twice there).
func taylor(r *model.Runner, ids [][]int, opts Options) ([]*float64, error) {
	cfg := r.Model.Config
	blocks := kept(cfg.NumHiddenLayers, opts.SkipBlocks)
	var names []string
	for _, b := range blocks {
		names = append(names, scoredTensors(cfg, b)...)
	}
	if len(names) == 0 {
		return make([]*float64, cfg.NumHiddenLayers), nil
	}
	var acc []*tensors.Tensor
	parts := batches(ids, opts.BatchSize)
	for k, part := range parts {
		var err error
		if acc, err = accumulateSalience(r, names, part, opts.SkipBlocks, acc); err != nil {
			return nil, err
		}
		opts.Progress(k+1, len(parts))
	}
	tokens := float64(len(ids) * (len(ids[0]) - 1))
	sums, err := reduceSalience(r, acc, len(blocks), tokens, opts)
	if err != nil {
		return nil, err
	}
	scores := make([]*float64, cfg.NumHiddenLayers)
	for bi, b := range blocks {
		scores[b] = ptr(sums[bi])
	}
	return scores, nil
}

// accumulateSalience returns acc + w ⊙ ∇_w(Σ NLL) of one micro-batch, per tensor in float32
// (acc nil: the first batch). The old accumulators are donated to the step.
func accumulateSalience(r *model.Runner, names []string, part [][]int, skip []int, acc []*tensors.Tensor) ([]*tensors.Tensor, error) {
	in, lab := shifted(part)
	inT, err := model.IDsTensor(in)
	if err != nil {
		return nil, err
	}
	labT, _ := model.IDsTensor(lab)
	cfg := r.Model.Config
	first := acc == nil
	key := "score/taylor/" + model.SkipKey(skip)
	if first {
		key += "/first"
	}
	args := append([]*tensors.Tensor{inT, labT}, acc...)
	donate := make([]bool, len(args))
	for i := 2; i < len(donate); i++ {
		donate[i] = true
	}
	return r.RunDonating(key, func(p model.Params, x []*Node) []*Node {
		res := model.Forward(cfg, p, x[0], model.ForwardOptions{SkipBlocks: skip})
		nll, _ := model.NLLSum(res.Logits, x[1])
		ws := make([]*Node, len(names))
		for i, n := range names {
			ws[i] = p[n]
		}
		grads := Gradient(nll, ws...)
		for i := range grads {
			grads[i] = ConvertDType(Mul(ConvertDType(ws[i], dtypes.Float32), ConvertDType(grads[i], dtypes.Float32)), dtypes.Float32)
			if !first {
				grads[i] = Add(x[2+i], grads[i])
			}
		}
		return grads
	}, donate, args...)
}

// reduceSalience folds the accumulated w ⊙ g of each block's tensors into one score per
// block on the device (in float64, so "prod" does not underflow): per tensor, |acc/tokens|^p
// summed over the input dimension (a norm vector's entries stand alone), the weight reduction
// over output rows, then the tensors of a block summed. acc holds perBlock·blocks tensors.
func reduceSalience(r *model.Runner, acc []*tensors.Tensor, blocks int, tokens float64, opts Options) ([]float64, error) {
	key := fmt.Sprintf("score/taylor-reduce/%d/%s/%g/%g", len(acc), opts.WeightReduction, opts.NormPower, tokens)
	out, err := r.Run(key, func(_ model.Params, x []*Node) []*Node {
		per := len(x) / max(blocks, 1)
		sums := make([]*Node, blocks)
		for i, a := range x {
			s := Abs(DivScalar(ConvertDType(a, dtypes.Float64), tokens))
			s = powNode(s, opts.NormPower)
			if s.Rank() > 1 {
				s = ReduceSum(s, -1)
			}
			t := reduceNode(s, opts.WeightReduction)
			if b := i / per; sums[b] == nil {
				sums[b] = t
			} else {
				sums[b] = Add(sums[b], t)
			}
		}
		return []*Node{Stack(sums, 0)}
	}, acc...)
	if err != nil {
		return nil, err
	}
	return tensors.MustCopyFlatData[float64](out[0]), nil
}

func powNode(x *Node, p float64) *Node {
	switch p {
	case 1:
		return x
	case 2:
		return Square(x)
	}
	return Pow(x, ConstAs(x, p))
}

func reduceNode(rows *Node, how string) *Node {
	switch how {
	case "mean":
		return ReduceAllMean(rows)
	case "max":
		return ReduceAllMax(rows)
	case "prod":
		return ReduceAllMultiply(rows)
	}
	return ReduceAllSum(rows)
}

// shifted splits windows into model inputs and next-token labels: HF's loss shifts logits
// and labels by one, so the last position never predicts anything.
func shifted(rows [][]int) (in, lab [][]int) {
	in, lab = make([][]int, len(rows)), make([][]int, len(rows))
	for i, w := range rows {
		in[i], lab[i] = w[:len(w)-1], w[1:]
	}
	return in, lab
}

// magnitude is Σ|w| per block, reduced as taylor is; it needs no data.
func magnitude(m *model.Model, opts Options) []*float64 {
	cfg := m.Config
	scores := make([]*float64, cfg.NumHiddenLayers)
	for _, b := range kept(cfg.NumHiddenLayers, opts.SkipBlocks) {
		sum := 0.0
		for _, n := range scoredTensors(cfg, b) {
			w := model.Float32Values(m.Weights[n])
			v := make([]float64, len(w))
			for j, x := range w {
				v[j] = float64(x)
			}
			sum += reduceTensor(v, m.Weights[n].Shape().Dimensions, opts)
		}
		scores[b] = ptr(sum)
	}
	return scores
}

// reduceTensor is the scripts' per-weight importance: |s|^p summed over a matrix's input
// dimension (a norm vector's entries stand alone), then the weight reduction over output rows.
// Block scores then sum the weights (their default --block_reduction).
func reduceTensor(s []float64, dims []int, opts Options) float64 {
	rows := dims[0]
	cols := len(s) / rows
	rowScores := make([]float64, rows)
	for r := range rowScores {
		acc := 0.0
		for _, x := range s[r*cols : (r+1)*cols] {
			acc += pow(math.Abs(x), opts.NormPower)
		}
		rowScores[r] = acc
	}
	return reduce(rowScores, opts.WeightReduction)
}

func pow(x, p float64) float64 {
	switch p {
	case 1:
		return x
	case 2:
		return x * x
	}
	return math.Pow(x, p)
}

func reduce(v []float64, how string) float64 {
	switch how {
	case "mean":
		return sum(v) / float64(len(v))
	case "max":
		m := math.Inf(-1)
		for _, x := range v {
			m = math.Max(m, x)
		}
		return m
	case "prod":
		p := 1.0
		for _, x := range v {
			p *= x
		}
		return p
	}
	return sum(v)
}

func sum(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s
}
