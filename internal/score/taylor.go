package score

import (
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
// micro-batch contributes w ⊙ ∇(its NLL sum); dividing by the total token count and taking
// |·| only after all batches makes the scores independent of the batch size, and only one
// micro-batch's activations are ever alive.
func taylor(r *model.Runner, ids [][]int, opts Options) ([]*float64, error) {
	cfg := r.Model.Config
	blocks := kept(cfg.NumHiddenLayers, opts.SkipBlocks)
	var names []string
	for _, b := range blocks {
		names = append(names, scoredTensors(cfg, b)...)
	}
	salience := make([][]float64, len(names))
	parts := batches(ids, opts.BatchSize)
	for k, part := range parts {
		if err := accumulateSalience(r, names, part, opts.SkipBlocks, salience); err != nil {
			return nil, err
		}
		opts.Progress(k+1, len(parts))
	}
	tokens := float64(len(ids) * (len(ids[0]) - 1))
	scores := make([]*float64, cfg.NumHiddenLayers)
	per := len(names) / max(len(blocks), 1)
	for bi, b := range blocks {
		sum := 0.0
		for t := bi * per; t < (bi+1)*per; t++ {
			for j := range salience[t] {
				salience[t][j] /= tokens
			}
			sum += reduceTensor(salience[t], r.Model.Weights[names[t]].Shape().Dimensions, opts)
		}
		scores[b] = ptr(sum)
	}
	return scores, nil
}

// accumulateSalience adds w ⊙ ∇_w(Σ NLL) of one micro-batch into acc (float64, per tensor).
func accumulateSalience(r *model.Runner, names []string, part [][]int, skip []int, acc [][]float64) error {
	in, lab := shifted(part)
	inT, err := model.IDsTensor(in)
	if err != nil {
		return err
	}
	labT, _ := model.IDsTensor(lab)
	cfg := r.Model.Config
	out, err := r.Run("score/taylor/"+model.SkipKey(skip), func(p model.Params, x []*Node) []*Node {
		res := model.Forward(cfg, p, x[0], model.ForwardOptions{SkipBlocks: skip})
		nll, _ := model.NLLSum(res.Logits, x[1])
		ws := make([]*Node, len(names))
		for i, n := range names {
			ws[i] = p[n]
		}
		grads := Gradient(nll, ws...)
		for i := range grads {
			grads[i] = ConvertDType(Mul(ws[i], grads[i]), dtypes.Float64)
		}
		return grads
	}, inT, labT)
	if err != nil {
		return err
	}
	for i, t := range out {
		v := tensors.MustCopyFlatData[float64](t)
		if acc[i] == nil {
			acc[i] = make([]float64, len(v))
		}
		for j, x := range v {
			acc[i][j] += x
		}
	}
	return nil
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
