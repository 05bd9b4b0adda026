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
// whole-model Gradient applies, split at block boundaries. The weights outside the blocks get
// theirs from the head graph (final norm, LM head, a tied embedding's head use) and from a
// last graph for the embedding lookup (Σ embed(ids)·dh₀).
//
// The graphs are cached in the runner under RematOptions.Key: a cached graph keeps the
// functions of the options it was built with (it is rebuilt with them for new input shapes),
// so Grad, OuterGrad and Adapters must depend on nothing but their arguments and fixed
// settings; Extra, Inputs and OuterExtra are called anew on every run.

// BlockGrad receives block i's weight names and their gradient nodes inside block i's backward
// graph, and returns what that graph should output for them (e.g. w⊙g added to accumulators
// passed as extra inputs). extra are the tensors the caller gave for block i. With
// RematOptions.InputGrads, grads continues with the gradients of block i's first inputs.
type BlockGrad func(i int, p Params, names []string, grads []*Node, extra []*Node) []*Node

// RematOptions configure RematBackward and RematTrain.
type RematOptions struct {
	SkipBlocks []int
	// Key separates the cached graphs of callers that build different block graphs.
	Key string
	// Names lists the weights of block i whose gradients Grad receives.
	Names func(i int) []string
	// Grad turns block i's gradients into outputs; Extra supplies its extra inputs, which are
	// donated to the step (accumulators replaced by their sums).
	Grad  BlockGrad
	Extra func(i int) []*tensors.Tensor
	// Inputs supplies further inputs of block i that are not donated (LoRA factors, dropout
	// generator states); they reach both the block's forward and backward graphs, where
	// Adapters builds the block's adapters from their nodes.
	Inputs   func(i int) []*tensors.Tensor
	Adapters func(i int, in []*Node) map[string]Adapter
	// InputGrads says how many of Inputs(i), from the first, Grad also receives gradients for
	// (after the named weights').
	InputGrads func(i int) int
	// Scale, a float32 scalar (nil: 1), multiplies Σ NLL before it is differentiated.
	Scale *tensors.Tensor
	// Outer lists weights outside the blocks (model.embed_tokens.weight, model.norm.weight,
	// lm_head.weight) whose gradients OuterGrad receives: the head's in the head graph, the
	// embedding lookup's in a last graph. OuterGrad returns one output per name it is given;
	// that output replaces OuterExtra(name) (donated) for the later graphs and is what
	// RematResult.Outer holds, so a tied embedding accumulates both of its uses.
	Outer      []string
	OuterGrad  func(p Params, names []string, grads []*Node, extra []*Node) []*Node
	OuterExtra func(name string) *tensors.Tensor
}

// RematResult is what RematTrain returns.
type RematResult struct {
	NLL    float64                    // Σ NLL of the batch (not scaled)
	Blocks map[int][]*tensors.Tensor  // per kept block, Grad's outputs
	Outer  map[string]*tensors.Tensor // per Outer name, OuterGrad's output
}

// RematBackward runs ids [B, T] forward, computes Σ NLL against labels, and walks the blocks
// backwards, recomputing each from its saved input. It returns Σ NLL and, per kept block, the
// outputs opts.Grad built for it.
func (r *Runner) RematBackward(ids, labels *tensors.Tensor, opts RematOptions) (float64, map[int][]*tensors.Tensor, error) {
	res, err := r.RematTrain(ids, labels, opts)
	if err != nil {
		return 0, nil, err
	}
	return res.NLL, res.Blocks, nil
}

// RematTrain is RematBackward with the options training needs: block inputs and adapters,
// gradients of block inputs, a scaled objective and the weights outside the blocks.
func (r *Runner) RematTrain(ids, labels *tensors.Tensor, opts RematOptions) (*RematResult, error) {
	cfg := r.Model.Config
	var blocks []int
	for i := range cfg.NumHiddenLayers {
		if !slices.Contains(opts.SkipBlocks, i) {
			blocks = append(blocks, i)
		}
	}
	inputs, last, err := r.rematForward(ids, blocks, opts)
	if err != nil {
		return nil, err
	}
	res := &RematResult{Blocks: map[int][]*tensors.Tensor{}, Outer: map[string]*tensors.Tensor{}}
	var dh *tensors.Tensor
	res.NLL, dh, err = r.rematHead(last, labels, opts, res.Outer)
	if err != nil {
		return nil, err
	}
	last.FinalizeAll()
	for k := len(blocks) - 1; k >= 0; k-- {
		i := blocks[k]
		out, err := r.rematBlock(i, inputs[k], dh, opts)
		if err != nil {
			return nil, err
		}
		inputs[k].FinalizeAll()
		dh.FinalizeAll()
		dh, res.Blocks[i] = out[0], out[1:]
	}
	if slices.Contains(opts.Outer, embedName) {
		if err := r.rematEmbed(ids, dh, opts, res.Outer); err != nil {
			return nil, err
		}
	}
	dh.FinalizeAll()
	return res, nil
}

const embedName = "model.embed_tokens.weight"

func rematInputs(opts RematOptions, i int) []*tensors.Tensor {
	if opts.Inputs == nil {
		return nil
	}
	return opts.Inputs(i)
}

// rematForward returns the hidden state entering each block in blocks and the last output.
func (r *Runner) rematForward(ids *tensors.Tensor, blocks []int, opts RematOptions) ([]*tensors.Tensor, *tensors.Tensor, error) {
	out, err := r.Run("remat/embed", func(p Params, x []*Node) []*Node { return []*Node{Embed(p, x[0])} }, ids)
	if err != nil {
		return nil, nil, err
	}
	h := out[0]
	inputs := make([]*tensors.Tensor, len(blocks))
	for k, i := range blocks {
		inputs[k] = h
		in := rematInputs(opts, i)
		out, err := r.Run(fmt.Sprintf("remat%s/block/%d/%d", opts.Key, i, len(in)), func(p Params, x []*Node) []*Node {
			return []*Node{r.block(p, i, x[0], x[1:], opts)}
		}, append([]*tensors.Tensor{h}, in...)...)
		if err != nil {
			return nil, nil, err
		}
		h = out[0]
	}
	return inputs, h, nil
}

// block applies block i to h [B, T, D] with default positions (0..T−1), and the adapters
// opts.Adapters builds from the block's input nodes.
func (r *Runner) block(p Params, i int, h *Node, in []*Node, opts RematOptions) *Node {
	var ad map[string]Adapter
	if opts.Adapters != nil {
		ad = opts.Adapters(i, in)
	}
	return Forward(r.Model.Config, p, nil, ForwardOptions{FromBlock: i, Until: i + 1, InputHidden: h, NoHead: true, Adapters: ad}).Last
}

// headOuter lists the names of outer that the head uses: the final norm, the LM head (the
// embedding when tied).
func (r *Runner) headOuter(outer []string) []string {
	cfg := r.Model.Config
	head := "lm_head.weight"
	if cfg.TieWordEmbeddings || r.Model.Weights[head] == nil {
		head = embedName
	}
	var names []string
	for _, n := range outer {
		if n == "model.norm.weight" || n == head {
			names = append(names, n)
		}
	}
	return names
}

// outerExtra collects the extra inputs of names: the latest outputs, else OuterExtra's.
func outerExtra(opts RematOptions, names []string, latest map[string]*tensors.Tensor) []*tensors.Tensor {
	if opts.OuterExtra == nil {
		return nil
	}
	var out []*tensors.Tensor
	for _, n := range names {
		if t := latest[n]; t != nil {
			out = append(out, t)
		} else {
			out = append(out, opts.OuterExtra(n))
		}
	}
	return out
}

// rematHead returns Σ NLL of the head on h and its (scaled) gradient with respect to h; the
// gradients of the head's Outer weights go through OuterGrad into outer.
func (r *Runner) rematHead(h, labels *tensors.Tensor, opts RematOptions, outer map[string]*tensors.Tensor) (float64, *tensors.Tensor, error) {
	cfg := r.Model.Config
	names := r.headOuter(opts.Outer)
	args := []*tensors.Tensor{h, labels}
	if opts.Scale != nil {
		args = append(args, opts.Scale)
	}
	fixed := len(args)
	extra := outerExtra(opts, names, outer)
	args = append(args, extra...)
	donate := make([]bool, len(args))
	for k := fixed; k < len(args); k++ {
		donate[k] = true
	}
	key := fmt.Sprintf("remat%s/head/%d/%d/%d", opts.Key, fixed, len(names), len(extra))
	out, err := r.RunDonating(key, func(p Params, x []*Node) []*Node {
		nll, _ := NLLSum(Head(cfg, p, x[0]), x[1])
		obj := nll
		if fixed == 3 {
			obj = Mul(obj, ConvertDType(x[2], obj.DType()))
		}
		wrt := []*Node{x[0]}
		for _, n := range names {
			wrt = append(wrt, p[n])
		}
		g := Gradient(obj, wrt...)
		res := []*Node{ConvertDType(nll, dtypes.Float64), g[0]}
		if len(names) > 0 {
			res = append(res, opts.OuterGrad(p, names, g[1:], x[fixed:])...)
		}
		return res
	}, donate, args...)
	if err != nil {
		return 0, nil, err
	}
	for k, n := range names {
		outer[n] = out[2+k]
	}
	return tensors.MustCopyFlatData[float64](out[0])[0], out[1], nil
}

// rematEmbed adds the embedding lookup's gradient, Σ embed(ids)·dh, through OuterGrad.
func (r *Runner) rematEmbed(ids, dh *tensors.Tensor, opts RematOptions, outer map[string]*tensors.Tensor) error {
	names := []string{embedName}
	extra := outerExtra(opts, names, outer)
	args := append([]*tensors.Tensor{ids, dh}, extra...)
	donate := make([]bool, len(args))
	for k := 2; k < len(args); k++ {
		donate[k] = true
	}
	out, err := r.RunDonating(fmt.Sprintf("remat%s/embed-backward/%d", opts.Key, len(extra)), func(p Params, x []*Node) []*Node {
		e := Embed(p, x[0])
		obj := ReduceAllSum(Mul(ConvertDType(e, dtypes.Float32), ConvertDType(x[1], dtypes.Float32)))
		g := Gradient(obj, p[embedName])
		return opts.OuterGrad(p, names, g, x[2:])
	}, donate, args...)
	if err != nil {
		return err
	}
	outer[embedName] = out[0]
	return nil
}

// rematBlock recomputes block i from h and returns dh (the gradient entering the block) and
// opts.Grad's outputs, given dOut, the gradient leaving it.
func (r *Runner) rematBlock(i int, h, dOut *tensors.Tensor, opts RematOptions) ([]*tensors.Tensor, error) {
	var names []string
	if opts.Names != nil {
		names = opts.Names(i)
	}
	in := rematInputs(opts, i)
	nIn := len(in)
	nGradIn := 0
	if opts.InputGrads != nil {
		nGradIn = opts.InputGrads(i)
	}
	var extra []*tensors.Tensor
	if opts.Extra != nil {
		extra = opts.Extra(i)
	}
	key := fmt.Sprintf("remat%s/backward/%d/%d/%d/%d", opts.Key, i, nIn, nGradIn, len(extra))
	args := append(append([]*tensors.Tensor{h, dOut}, in...), extra...)
	donate := make([]bool, len(args))
	for k := 2 + nIn; k < len(args); k++ {
		donate[k] = true
	}
	return r.RunDonating(key, func(p Params, x []*Node) []*Node {
		bin := x[2 : 2+nIn]
		y := r.block(p, i, x[0], bin, opts)
		// Σ y·dOut in float32: its gradient is dOut pulled back through the block.
		obj := ReduceAllSum(Mul(ConvertDType(y, dtypes.Float32), ConvertDType(x[1], dtypes.Float32)))
		wrt := []*Node{x[0]}
		for _, n := range names {
			wrt = append(wrt, p[n])
		}
		wrt = append(wrt, bin[:nGradIn]...)
		g := Gradient(obj, wrt...)
		return append([]*Node{ConvertDType(g[0], x[0].DType())}, opts.Grad(i, p, names, g[1:], x[2+nIn:])...)
	}, donate, args...)
}
