package model

import (
	"fmt"
	"slices"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph code reads like maths
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// Rematerialised (block-checkpointed) backward pass. One graph per block instead of one for
// the whole model: the forward keeps only the hidden state entering each block (L·B·T·D), and
// the backward recomputes one block at a time from its input, so activation memory is one
// block's instead of L blocks'. Each block's vector–Jacobian product is the gradient of
// Σ block(h)·dh_out with respect to h and the block's weights — exactly the chain rule that a
// whole-model Gradient applies, split at block boundaries.

// BlockGrad receives block i's weight names and their gradient nodes inside block i's backward
// graph, and returns what that graph should output for them (e.g. w⊙g added to accumulators
// passed as extra inputs). extra are the tensors the caller gave for block i.
type BlockGrad func(i int, p Params, names []string, grads []*Node, extra []*Node) []*Node

// RematOptions configure RematBackward.
type RematOptions struct {
	SkipBlocks []int
	// Names lists the weights of block i whose gradients Grad receives.
	Names func(i int) []string
	// Grad turns block i's gradients into outputs; Extra supplies its extra inputs, which are
	// donated to the step (accumulators replaced by their sums).
	Grad  BlockGrad
	Extra func(i int) []*tensors.Tensor
}

// RematBackward runs ids [B, T] forward, computes Σ NLL against labels, and walks the blocks
// backwards, recomputing each from its saved input. It returns Σ NLL and, per kept block, the
// outputs opts.Grad built for it.
func (r *Runner) RematBackward(ids, labels *tensors.Tensor, opts RematOptions) (float64, map[int][]*tensors.Tensor, error) {
	cfg := r.Model.Config
	var blocks []int
	for i := range cfg.NumHiddenLayers {
		if !slices.Contains(opts.SkipBlocks, i) {
			blocks = append(blocks, i)
		}
	}
	inputs, last, err := r.rematForward(ids, blocks)
	if err != nil {
		return 0, nil, err
	}
	nll, dh, err := r.rematHead(last, labels)
	if err != nil {
		return 0, nil, err
	}
	last.FinalizeAll()
	out := map[int][]*tensors.Tensor{}
	for k := len(blocks) - 1; k >= 0; k-- {
		i := blocks[k]
		res, err := r.rematBlock(i, inputs[k], dh, opts)
		if err != nil {
			return 0, nil, err
		}
		inputs[k].FinalizeAll()
		dh.FinalizeAll()
		dh, out[i] = res[0], res[1:]
	}
	dh.FinalizeAll()
	return nll, out, nil
}

// rematForward returns the hidden state entering each block in blocks and the last output.
func (r *Runner) rematForward(ids *tensors.Tensor, blocks []int) ([]*tensors.Tensor, *tensors.Tensor, error) {
	out, err := r.Run("remat/embed", func(p Params, x []*Node) []*Node { return []*Node{Embed(p, x[0])} }, ids)
	if err != nil {
		return nil, nil, err
	}
	h := out[0]
	inputs := make([]*tensors.Tensor, len(blocks))
	for k, i := range blocks {
		inputs[k] = h
		out, err := r.Run(fmt.Sprintf("remat/block/%d", i), func(p Params, x []*Node) []*Node {
			return []*Node{r.block(p, i, x[0], nil)}
		}, h)
		if err != nil {
			return nil, nil, err
		}
		h = out[0]
	}
	return inputs, h, nil
}

// block applies block i to h [B, T, D] with default positions (0..T−1).
func (r *Runner) block(p Params, i int, h *Node, tap func(string, *Node)) *Node {
	return Forward(r.Model.Config, p, nil, ForwardOptions{FromBlock: i, Until: i + 1, InputHidden: h, NoHead: true, LinearInput: tap}).Last
}

// rematHead returns Σ NLL of the head on h and its gradient with respect to h.
func (r *Runner) rematHead(h, labels *tensors.Tensor) (float64, *tensors.Tensor, error) {
	cfg := r.Model.Config
	out, err := r.Run("remat/head", func(p Params, x []*Node) []*Node {
		nll, _ := NLLSum(Head(cfg, p, x[0]), x[1])
		return []*Node{ConvertDType(nll, dtypes.Float64), Gradient(nll, x[0])[0]}
	}, h, labels)
	if err != nil {
		return 0, nil, err
	}
	return tensors.MustCopyFlatData[float64](out[0])[0], out[1], nil
}

// rematBlock recomputes block i from h and returns dh (the gradient entering the block) and
// opts.Grad's outputs, given dOut, the gradient leaving it.
func (r *Runner) rematBlock(i int, h, dOut *tensors.Tensor, opts RematOptions) ([]*tensors.Tensor, error) {
	names := opts.Names(i)
	var extra []*tensors.Tensor
	if opts.Extra != nil {
		extra = opts.Extra(i)
	}
	key := fmt.Sprintf("remat/backward/%d/%d", i, len(extra))
	args := append([]*tensors.Tensor{h, dOut}, extra...)
	donate := make([]bool, len(args))
	for k := 2; k < len(args); k++ {
		donate[k] = true
	}
	return r.RunDonating(key, func(p Params, x []*Node) []*Node {
		y := r.block(p, i, x[0], nil)
		// Σ y·dOut in float32: its gradient is dOut pulled back through the block.
		obj := ReduceAllSum(Mul(ConvertDType(y, dtypes.Float32), ConvertDType(x[1], dtypes.Float32)))
		wrt := append([]*Node{x[0]}, make([]*Node, len(names))...)
		for k, n := range names {
			wrt[1+k] = p[n]
		}
		g := Gradient(obj, wrt...)
		return append([]*Node{ConvertDType(g[0], x[0].DType())}, opts.Grad(i, p, names, g[1:], x[2:])...)
	}, donate, args...)
}
