// Package capture runs calibration windows through a model one block at a time and measures
// what pruning methods need from the inputs of each block's linear layers: per-channel sums of
// squares (Wanda's ‖X_j‖₂), sums (with the squares, FLAP's fluctuation) and the Gram matrix
// XᵀX (SparseGPT's Hessian). Every criterion that needs activations uses this one mechanism.
//
// A Session holds the hidden states entering block Next(). Advance runs that block with the
// model's weights as they are at that moment, so a method that prunes block b in place and then
// advances feeds block b+1 the pruned block's outputs — the sequential order of Wanda's and
// SparseGPT's released code.
package capture

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph code reads like maths
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/shortllm/shortllm/internal/model"
)

// Stats selects the statistics Capture accumulates.
type Stats uint8

const (
	SumSq Stats = 1 << iota // Σₜ x_tj² per input channel j
	Sum                     // Σₜ x_tj per input channel j
	Gram                    // XᵀX [in, in]
)

// The four points where a LLaMA block's linear layers read their input.
const (
	AttnIn = "attn_in" // input_layernorm output: q_proj, k_proj, v_proj
	OIn    = "o_in"    // attention heads concatenated: o_proj
	MLPIn  = "mlp_in"  // post_attention_layernorm output: gate_proj, up_proj
	DownIn = "down_in" // silu(gate)·up: down_proj
)

// Points lists the input points in the order a block reads them.
var Points = []string{AttnIn, OIn, MLPIn, DownIn}

// ErrCapture marks invalid capture requests.
var ErrCapture = errors.New("capture")

// Input is one linear-layer input of a block, shared by the modules that read it.
type Input struct {
	Point   string
	Modules []string // full module paths, e.g. "model.layers.3.self_attn.q_proj"
	Dim     int
	Tokens  int64     // token rows accumulated
	SumSq   []float64 // [Dim], with SumSq
	Sum     []float64 // [Dim], with Sum
	Gram    []float64 // [Dim·Dim] row-major, with Gram
}

// Mean returns Σx/N per channel (needs Sum).
func (in *Input) Mean() []float64 {
	m := make([]float64, in.Dim)
	for j, s := range in.Sum {
		m[j] = s / float64(in.Tokens)
	}
	return m
}

// Norms returns ‖X_j‖₂ per channel (needs SumSq).
func (in *Input) Norms() []float64 {
	n := make([]float64, in.Dim)
	for j, s := range in.SumSq {
		n[j] = math.Sqrt(s)
	}
	return n
}

// Options tune a session.
type Options struct {
	BatchSize int                   // windows per forward pass (default 10)
	Progress  func(done, total int) // called after each batch of each pass, optional
}

// Session is a calibration set part-way through the model.
type Session struct {
	r      *model.Runner
	o      Options
	hidden []*tensors.Tensor // per batch [b, T, D], entering block next
	next   int
	tokens int64
}

// Start embeds the calibration windows (equal-length token ids): the state before block 0.
func Start(r *model.Runner, windows [][]int, o Options) (*Session, error) {
	if len(windows) == 0 {
		return nil, fmt.Errorf("%w: no calibration windows", ErrCapture)
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 10
	}
	if o.Progress == nil {
		o.Progress = func(int, int) {}
	}
	s := &Session{r: r, o: o}
	for start := 0; start < len(windows); start += o.BatchSize {
		part := windows[start:min(start+o.BatchSize, len(windows))]
		ids, err := model.IDsTensor(part)
		if err != nil {
			return nil, fmt.Errorf("%w: calibration windows %d..: %v", ErrCapture, start, err)
		}
		out, err := r.Run("capture/embed", func(p model.Params, x []*Node) []*Node {
			return []*Node{model.Embed(p, x[0])}
		}, ids)
		if err != nil {
			return nil, err
		}
		s.hidden = append(s.hidden, out[0])
		s.tokens += int64(len(part) * len(part[0]))
	}
	return s, nil
}

// Next is the block whose inputs Capture measures and Advance runs.
func (s *Session) Next() int { return s.next }

// Hidden returns the hidden states entering block Next(), one tensor [b, T, D] per batch,
// valid until the next Advance.
func (s *Session) Hidden() []*tensors.Tensor { return s.hidden }

// Tokens is the number of token rows in the calibration set.
func (s *Session) Tokens() int64 { return s.tokens }

func (s *Session) check() error {
	if s.next >= s.r.Model.Config.NumHiddenLayers {
		return fmt.Errorf("%w: all %d blocks already run", ErrCapture, s.next)
	}
	return nil
}

// Advance runs block Next() on the stored hidden states with the model's current weights.
func (s *Session) Advance() error {
	if err := s.check(); err != nil {
		return err
	}
	b, cfg := s.next, s.r.Model.Config
	key := fmt.Sprintf("capture/advance/%d", b)
	for k, h := range s.hidden {
		out, err := s.r.Run(key, func(p model.Params, x []*Node) []*Node {
			res := model.Forward(cfg, p, nil, model.ForwardOptions{FromBlock: b, Until: b + 1, InputHidden: x[0], NoHead: true})
			return []*Node{res.Last}
		}, h)
		if err != nil {
			return fmt.Errorf("capture: block %d: %w", b, err)
		}
		h.FinalizeAll() // device memory is not seen by Go's GC; Hidden() documents the lifetime
		s.hidden[k] = out[0]
		s.o.Progress(k+1, len(s.hidden))
	}
	s.next++
	return nil
}

// blockTaps builds block b on h and returns its linear inputs by point.
func blockTaps(cfg *model.Config, p model.Params, b int, h *Node) map[string]*Node {
	nodes := map[string]*Node{}
	tap := func(module string, x *Node) {
		if pt := pointOf(module); nodes[pt] == nil {
			nodes[pt] = x
		}
	}
	model.Forward(cfg, p, nil, model.ForwardOptions{FromBlock: b, Until: b + 1, InputHidden: h, NoHead: true, LinearInput: tap})
	return nodes
}

// pointOf maps a module path to the input point it reads.
func pointOf(module string) string {
	switch module[strings.LastIndexByte(module, '.')+1:] {
	case "q_proj", "k_proj", "v_proj":
		return AttnIn
	case "o_proj":
		return OIn
	case "gate_proj", "up_proj":
		return MLPIn
	default:
		return DownIn
	}
}

// Capture accumulates stats of block Next()'s linear inputs over all calibration windows.
func (s *Session) Capture(stats Stats) (map[string]*Input, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if stats == 0 {
		return nil, fmt.Errorf("%w: no statistics requested", ErrCapture)
	}
	b, cfg := s.next, s.r.Model.Config
	res := map[string]*Input{}
	key := fmt.Sprintf("capture/stats/%d/%d", b, stats)
	for k, h := range s.hidden {
		out, err := s.r.Run(key, func(p model.Params, x []*Node) []*Node {
			nodes := blockTaps(cfg, p, b, x[0])
			var outs []*Node
			for _, pt := range Points {
				outs = append(outs, statNodes(nodes[pt], stats)...)
			}
			return outs
		}, h)
		if err != nil {
			return nil, fmt.Errorf("capture: block %d: %w", b, err)
		}
		s.accumulate(res, out, stats, moduleNames(b), int64(h.Shape().Dimensions[0]*h.Shape().Dimensions[1]))
		s.o.Progress(k+1, len(s.hidden))
	}
	return res, nil
}

// moduleNames lists block b's modules per input point.
func moduleNames(b int) map[string][]string {
	pre := fmt.Sprintf("model.layers.%d.", b)
	return map[string][]string{
		AttnIn: {pre + "self_attn.q_proj", pre + "self_attn.k_proj", pre + "self_attn.v_proj"},
		OIn:    {pre + "self_attn.o_proj"},
		MLPIn:  {pre + "mlp.gate_proj", pre + "mlp.up_proj"},
		DownIn: {pre + "mlp.down_proj"},
	}
}

// statNodes reduces x [B, T, in] over the token axes in float64, in Stats bit order.
func statNodes(x *Node, stats Stats) []*Node {
	dims := x.Shape().Dimensions
	in := dims[len(dims)-1]
	x = ConvertDType(Reshape(x, -1, in), dtypes.Float64) // [N, in]
	var outs []*Node
	if stats&SumSq != 0 {
		outs = append(outs, ReduceSum(Square(x), 0))
	}
	if stats&Sum != 0 {
		outs = append(outs, ReduceSum(x, 0))
	}
	if stats&Gram != 0 {
		outs = append(outs, DotGeneral(x, []int{0}, nil, x, []int{0}, nil)) // [in, in]
	}
	return outs
}

func (s *Session) accumulate(res map[string]*Input, out []*tensors.Tensor, stats Stats, modules map[string][]string, n int64) {
	i := 0
	for _, pt := range Points {
		in := res[pt]
		if in == nil {
			dims := out[i].Shape().Dimensions
			in = &Input{Point: pt, Modules: slices.Clone(modules[pt]), Dim: dims[0]}
			res[pt] = in
		}
		in.Tokens += n
		for _, f := range []struct {
			bit Stats
			dst *[]float64
		}{{SumSq, &in.SumSq}, {Sum, &in.Sum}, {Gram, &in.Gram}} {
			if stats&f.bit == 0 {
				continue
			}
			v := tensors.MustCopyFlatData[float64](out[i])
			i++
			if *f.dst == nil {
				*f.dst = v
				continue
			}
			for j := range v {
				(*f.dst)[j] += v[j]
			}
		}
	}
}

// Inputs returns the raw inputs X [b, T, in] (float32) of one point of block Next(), per batch,
// for methods that need X itself rather than its statistics.
func (s *Session) Inputs(point string) ([]*tensors.Tensor, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if !slices.Contains(Points, point) {
		return nil, fmt.Errorf("%w: unknown input point %q (want one of %s)", ErrCapture, point, strings.Join(Points, ", "))
	}
	b, cfg := s.next, s.r.Model.Config
	key := fmt.Sprintf("capture/inputs/%d/%s", b, point)
	var all []*tensors.Tensor
	for _, h := range s.hidden {
		out, err := s.r.Run(key, func(p model.Params, x []*Node) []*Node {
			nodes := blockTaps(cfg, p, b, x[0])
			return []*Node{ConvertDType(nodes[point], dtypes.Float32)}
		}, h)
		if err != nil {
			return nil, fmt.Errorf("capture: block %d: %w", b, err)
		}
		all = append(all, out[0])
	}
	return all, nil
}
