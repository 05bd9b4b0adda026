package model

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph code reads like maths
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// Runner executes a model's graphs on a backend. Weights are passed as graph parameters in
// Names() order, so one loaded model serves every variant (skipped blocks, adapters) without
// copies; each distinct graph is compiled once and cached.
type Runner struct {
	Backend backends.Backend
	Model   *Model
	Engine  Engine
	names   []string

	mu    sync.Mutex
	execs map[string]*Exec
}

// NewRunner prepares a runner with the backend's default engine settings.
func NewRunner(b backends.Backend, m *Model) *Runner { return NewRunnerWith(b, m, DefaultEngine(b)) }

// NewRunnerWith prepares a runner with engine settings resolved by the caller. Gradients
// need RegisterFastDotGeneralVJP, which a command calls once at start (stage.NewEngine);
// NewRunnerWith calls it too, so that library users and tests get the same gradient.
func NewRunnerWith(b backends.Backend, m *Model, e Engine) *Runner {
	RegisterFastDotGeneralVJP()
	return &Runner{Backend: b, Model: m, Engine: e, names: m.Names(), execs: map[string]*Exec{}}
}

// GraphFn builds outputs from the weight nodes and the extra inputs.
type GraphFn func(p Params, extra []*Node) []*Node

// Run executes the graph identified by key (built by fn on first use) with the model's
// weights followed by extra inputs.
func (r *Runner) Run(key string, fn GraphFn, extra ...*tensors.Tensor) ([]*tensors.Tensor, error) {
	return r.RunDonating(key, fn, nil, extra...)
}

func (r *Runner) exec(key string, fn GraphFn) (*Exec, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.execs[key]; ok {
		return e, nil
	}
	nw := len(r.names)
	e, err := NewExec(r.Backend, func(in []*Node) []*Node {
		p := make(Params, nw)
		for i, n := range r.names {
			p[n] = in[i]
		}
		return fn(p, in[nw:])
	})
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", key, err)
	}
	e.SetMaxCache(256)
	r.execs[key] = e
	return e, nil
}

// SkipKey renders a block set for cache keys.
func SkipKey(skip []int) string {
	s := slices.Clone(skip)
	sort.Ints(s)
	parts := make([]string, len(s))
	for i, b := range s {
		parts[i] = fmt.Sprint(b)
	}
	return "skip=" + strings.Join(parts, ",")
}

// IDsTensor packs equal-length rows into an int32 [B, T] tensor.
func IDsTensor(rows [][]int) (*tensors.Tensor, error) {
	if len(rows) == 0 || len(rows[0]) == 0 {
		return nil, fmt.Errorf("empty batch")
	}
	T := len(rows[0])
	flat := make([]int32, 0, len(rows)*T)
	for i, row := range rows {
		if len(row) != T {
			return nil, fmt.Errorf("batch row %d has %d tokens, row 0 has %d", i, len(row), T)
		}
		for _, id := range row {
			flat = append(flat, int32(id))
		}
	}
	return tensors.FromFlatDataAndDimensions(flat, len(rows), T), nil
}

// checkIDs rejects ids outside the vocabulary and inputs beyond the context window. targets
// is 1 when each row's last token is only a prediction target (Score), 0 otherwise.
func (r *Runner) checkIDs(rows [][]int, targets int) error {
	cfg := r.Model.Config
	for i, row := range rows {
		if n := len(row) - targets; n > cfg.MaxPositionEmbeddings {
			return fmt.Errorf("sequence %d has %d input tokens, more than max_position_embeddings (%d)", i, n, cfg.MaxPositionEmbeddings)
		}
		for _, id := range row {
			if id < 0 || id >= cfg.VocabSize {
				return fmt.Errorf("sequence %d: token id %d outside the vocabulary [0, %d)", i, id, cfg.VocabSize)
			}
		}
	}
	return nil
}

// Logits runs equal-length rows [B][T] and returns float32 logits [B, T, V] flattened.
func (r *Runner) Logits(rows [][]int, skip []int) ([]float32, error) {
	if err := CheckSkipBlocks(r.Model.Config, skip); err != nil {
		return nil, err
	}
	if err := r.checkIDs(rows, 0); err != nil {
		return nil, err
	}
	ids, err := IDsTensor(rows)
	if err != nil {
		return nil, err
	}
	cfg := r.Model.Config
	out, err := r.Run("logits/"+SkipKey(skip), func(p Params, in []*Node) []*Node {
		res := Forward(cfg, p, in[0], ForwardOptions{SkipBlocks: skip})
		return []*Node{ConvertDType(res.Logits, dtypes.Float32)}
	}, ids)
	if err != nil {
		return nil, err
	}
	return tensors.MustCopyFlatData[float32](out[0]), nil
}

// Scores holds, per sequence, log p(s[t] | s[:t]) and whether s[t] was the argmax, t ≥ 1.
type Scores struct {
	LogProbs []float64
	Greedy   []bool
}

// Score scores sequences of any lengths (≥ 2). Rows are right-padded to a common length:
// causal attention never lets a real token see the padding after it, so padding changes nothing.
func (r *Runner) Score(seqs [][]int, skip []int) ([]Scores, error) {
	if err := CheckSkipBlocks(r.Model.Config, skip); err != nil {
		return nil, err
	}
	if err := r.checkIDs(seqs, 1); err != nil {
		return nil, err
	}
	maxT := 0
	for i, s := range seqs {
		if len(s) < 2 {
			return nil, fmt.Errorf("sequence %d has %d tokens; scoring needs at least 2", i, len(s))
		}
		maxT = max(maxT, len(s)-1)
	}
	// Round lengths up so a run over varied lengths compiles few graph shapes.
	T := roundUp(maxT, 16)
	inputs := make([][]int, len(seqs))
	targets := make([][]int, len(seqs))
	for i, s := range seqs {
		inputs[i] = padTo(s[:len(s)-1], T)
		targets[i] = padTo(s[1:], T)
	}
	in, _ := IDsTensor(inputs)
	tg, _ := IDsTensor(targets)
	cfg := r.Model.Config
	out, err := r.Run("score/"+SkipKey(skip), func(p Params, x []*Node) []*Node {
		res := Forward(cfg, p, x[0], ForwardOptions{SkipBlocks: skip})
		lp, greedy := TokenLogProbs(res.Logits, x[1])
		return []*Node{ConvertDType(lp, dtypes.Float64), greedy}
	}, in, tg)
	if err != nil {
		return nil, err
	}
	lp := tensors.MustCopyFlatData[float64](out[0])
	gr := tensors.MustCopyFlatData[bool](out[1])
	res := make([]Scores, len(seqs))
	for i, s := range seqs {
		n := len(s) - 1
		res[i] = Scores{LogProbs: slices.Clone(lp[i*T : i*T+n]), Greedy: slices.Clone(gr[i*T : i*T+n])}
	}
	return res, nil
}

func roundUp(n, m int) int { return (n + m - 1) / m * m }

func padTo(s []int, n int) []int {
	out := make([]int, n)
	copy(out, s)
	return out
}
