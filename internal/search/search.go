package search

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/shortllm/shortllm/internal/atomicfile"
	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/prune"
	"github.com/shortllm/shortllm/internal/score"
)

// Search methods.
const (
	MethodPolicyGradient = "policy-gradient"
	MethodEvolution      = "evolution"
	MethodExhaustive     = "exhaustive"
	// MethodBlocks evaluates one given set (Options.Blocks): no search, the same objective, so
	// a criterion's choice can be compared with a search's.
	MethodBlocks = "blocks"
)

// Methods lists the searches `--method` accepts.
func Methods() []string { return []string{MethodPolicyGradient, MethodEvolution, MethodExhaustive} }

// ErrSearch marks options a search cannot run with.
var ErrSearch = errors.New("invalid search")

// DefaultMaxExhaustive is the most candidate sets exhaustive search enumerates: C(16, 5) =
// 4368 fits, C(32, 11) ≈ 1.3e8 does not.
const DefaultMaxExhaustive = 10000

// Options is one search. The zero value of each method's options takes its defaults.
type Options struct {
	Method string
	// Unit is what the search removes: prune.UnitBlock (the only unit so far).
	Unit string
	// Selection gives the count (NumBlocks, or Ratio by prune.BlocksForRatio) and the "+"
	// Policy: candidates are the blocks the policy allows, as for `prune`.
	Selection prune.Selection
	// Blocks, with MethodBlocks, is the one set evaluated.
	Blocks []int
	Calib  *score.Calibration
	// Budget caps the work in full-forward equivalents (Objective.Forwards); 0 = no cap.
	// An evaluation the rest of the budget cannot pay for is not started.
	Budget float64
	// Seed drives every random choice: the same seed and inputs give the same plan.
	Seed uint64
	// BatchSize windows run per graph execution (memory only). 0 → score.DefaultBatchSize.
	BatchSize int
	// MaxExhaustive refuses exhaustive search over more sets. 0 → DefaultMaxExhaustive.
	MaxExhaustive int
	// CacheBytes bounds the kept hidden states. 0 → DefaultCacheBytes.
	CacheBytes     int64
	PolicyGradient PGOptions
	Evolution      EvoOptions
	// Progress, if set, is called after each step.
	Progress func(done, total int)
}

// Plan is the document `shortllm search` writes and `prune --plan` applies.
type Plan struct {
	Model      string       `json:"model"`
	ConfigHash string       `json:"config_hash"`
	NumLayers  int          `json:"num_layers"`
	Unit       string       `json:"unit"`
	Method     string       `json:"method"`
	Seed       uint64       `json:"seed"`
	Ratio      float64      `json:"ratio,omitempty"`
	NumRemove  int          `json:"num_remove"`
	Policy     prune.Policy `json:"policy"`
	Candidates []int        `json:"candidates"`
	// SearchSpace is C(len(Candidates), NumRemove), the number of sets a search chooses from.
	SearchSpace float64      `json:"search_space"`
	Remove      []prune.Unit `json:"remove"`
	// Objective is the calibration mean NLL (nats/token) without Remove; ObjectivePPL = exp.
	Objective    float64 `json:"objective"`
	ObjectivePPL float64 `json:"objective_ppl"`
	// Forwards is the work spent (block-forwards / L); SetsEvaluated the distinct sets run.
	Forwards        float64        `json:"forwards"`
	SetsEvaluated   int            `json:"sets_evaluated"`
	Budget          float64        `json:"budget,omitempty"`
	BudgetExhausted bool           `json:"budget_exhausted"`
	Trace           []Step         `json:"trace"`
	Options         map[string]any `json:"options"`
	// KeepProbs are policy gradient's final Bernoulli keep probabilities per block (null
	// outside the candidates).
	KeepProbs   []*float64         `json:"keep_probs,omitempty"`
	Calibration *score.Calibration `json:"calibration"`
	ToolVersion string             `json:"tool_version"`
}

// Step is one point of the trace: after step Step (a policy-gradient update, a generation,
// one exhaustive set), the best objective of a full-size set so far and the work spent.
type Step struct {
	Step          int     `json:"step"`
	Best          float64 `json:"best"`
	Forwards      float64 `json:"forwards"`
	SetsEvaluated int     `json:"sets_evaluated"`
}

// RemovedBlocks lists the plan's blocks.
func (p *Plan) RemovedBlocks() []int {
	out := make([]int, len(p.Remove))
	for i, u := range p.Remove {
		out[i] = u.Block
	}
	return out
}

// Write stores the plan through a temp file and a rename.
func (p *Plan) Write(path string) error { return atomicfile.WriteJSON(path, p) }

// Run searches r's model for the set of units whose removal gives the lowest objective.
func Run(r *model.Runner, opts Options) (*Plan, error) {
	cfg := r.Model.Config
	o, n, err := opts.check(cfg)
	if err != nil {
		return nil, err
	}
	cands := candidates(cfg.NumHiddenLayers, o)
	points := cands
	if o.Method == MethodBlocks {
		points = o.Blocks
	}
	obj, err := NewObjective(r, o.Calib.IDs, o.BatchSize, points, o.CacheBytes)
	if err != nil {
		return nil, err
	}
	defer obj.Close()
	rn := &runner{obj: obj, n: n, cands: cands, budget: o.Budget, progress: o.Progress, bestVal: math.Inf(1)}
	rng := rand.New(rand.NewPCG(o.Seed, 0x5ea7c4))
	p := &Plan{Model: r.Model.Dir, ConfigHash: cfg.Hash(), NumLayers: cfg.NumHiddenLayers, Unit: o.Unit,
		Method: o.Method, Seed: o.Seed, Ratio: o.Selection.Ratio, NumRemove: n, Policy: o.Selection.Policy,
		Candidates: cands, SearchSpace: binomial(len(cands), n), Budget: o.Budget, Calibration: o.Calib,
		Options: map[string]any{"batch_size": o.BatchSize}}
	if err := rn.method(o, p, rng); err != nil {
		return nil, fmt.Errorf("search %s: %w", o.Method, err)
	}
	rn.finish()
	if rn.best == nil {
		return nil, fmt.Errorf("search %s: --budget %g forwards cannot pay for one evaluation (%.3g needed): %w",
			o.Method, o.Budget, float64(obj.runCount(nil, 0))/float64(obj.L), ErrSearch)
	}
	p.Remove, p.Objective, p.ObjectivePPL = prune.BlockUnits(rn.best), rn.bestVal, math.Exp(rn.bestVal)
	p.Forwards, p.SetsEvaluated, p.BudgetExhausted, p.Trace = obj.Forwards(), obj.Evaluated(), rn.exhausted, rn.trace
	return p, nil
}

func (rn *runner) method(o Options, p *Plan, rng *rand.Rand) error {
	switch o.Method {
	case MethodPolicyGradient:
		return policyGradient(rn, o.PolicyGradient, rng, p)
	case MethodEvolution:
		return evolution(rn, o.Evolution, rng, p)
	case MethodExhaustive:
		return exhaustive(rn)
	default:
		_, _, err := rn.eval(o.Blocks)
		rn.step(0, 1)
		return err
	}
}

// check fills defaults and refuses what cannot run, before any model work; n is the number
// of units to remove.
func (o Options) check(cfg *model.Config) (Options, int, error) {
	if o.Unit == "" {
		o.Unit = prune.UnitBlock
	}
	if o.Unit != prune.UnitBlock {
		return o, 0, fmt.Errorf("--unit %q: only %q units can be searched so far: %w", o.Unit, prune.UnitBlock, ErrSearch)
	}
	o.BatchSize = cmp0(o.BatchSize, score.DefaultBatchSize)
	o.MaxExhaustive = cmp0(o.MaxExhaustive, DefaultMaxExhaustive)
	if err := checkCalib(cfg, o.Calib); err != nil {
		return o, 0, err
	}
	if o.Budget < 0 || math.IsNaN(o.Budget) || math.IsInf(o.Budget, 0) {
		return o, 0, fmt.Errorf("--budget %g: want a positive number of forwards (0 = no cap): %w", o.Budget, ErrSearch)
	}
	if o.BatchSize < 1 {
		return o, 0, fmt.Errorf("--batch-size %d: want at least 1: %w", o.BatchSize, ErrSearch)
	}
	if o.Method == MethodBlocks {
		return o.checkBlocks(cfg)
	}
	if len(o.Selection.Blocks) > 0 || o.Selection.Iterative {
		return o, 0, fmt.Errorf("a search chooses the blocks itself: give --ratio or --num-blocks: %w", ErrSearch)
	}
	n, _, err := prune.Count(cfg, o.Selection)
	if err != nil {
		return o, 0, err
	}
	switch o.Method {
	case MethodPolicyGradient:
		o.PolicyGradient, err = o.PolicyGradient.withDefaults()
	case MethodEvolution:
		o.Evolution, err = o.Evolution.withDefaults()
	case MethodExhaustive:
		c := o.Selection.Policy.Candidates(cfg.NumHiddenLayers)
		if sets := binomial(c, n); sets > float64(o.MaxExhaustive) {
			err = fmt.Errorf("exhaustive search over C(%d, %d) = %.0f sets exceeds the limit of %d (--max-sets); use --method evolution or policy-gradient: %w",
				c, n, sets, o.MaxExhaustive, ErrSearch)
		}
	default:
		err = fmt.Errorf("--method %q: want %s: %w", o.Method, strings.Join(Methods(), ", "), ErrSearch)
	}
	return o, n, err
}

func (o Options) checkBlocks(cfg *model.Config) (Options, int, error) {
	L := cfg.NumHiddenLayers
	o.Blocks = normSet(o.Blocks)
	if len(o.Blocks) == 0 || len(o.Blocks) >= L || o.Blocks[0] < 0 || o.Blocks[len(o.Blocks)-1] >= L {
		return o, 0, fmt.Errorf("--blocks %v: want 1 to %d distinct blocks in [0, %d): %w", o.Blocks, L-1, L, ErrSearch)
	}
	o.Selection = prune.Selection{} // a given set is taken as given, as prune --blocks takes it
	return o, len(o.Blocks), nil
}

// checkCalib rejects windows the model cannot run, before any graph is built.
func checkCalib(cfg *model.Config, c *score.Calibration) error {
	if c == nil || len(c.IDs) == 0 {
		return fmt.Errorf("calibration data required (--calib): %w", ErrSearch)
	}
	T := len(c.IDs[0])
	if T < 2 || T > cfg.MaxPositionEmbeddings {
		return fmt.Errorf("calib %s: windows of %d tokens: want 2 to %d (max_position_embeddings): %w", c.Source, T, cfg.MaxPositionEmbeddings, ErrSearch)
	}
	for i, w := range c.IDs {
		if len(w) != T {
			return fmt.Errorf("calib %s: window %d has %d tokens, window 0 has %d: %w", c.Source, i, len(w), T, ErrSearch)
		}
		for _, id := range w {
			if id < 0 || id >= cfg.VocabSize {
				return fmt.Errorf("calib %s: window %d: token id %d outside the vocabulary [0, %d): %w", c.Source, i, id, cfg.VocabSize, ErrSearch)
			}
		}
	}
	return nil
}

// candidates are the blocks the policy allows (for MethodBlocks: the given ones).
func candidates(L int, o Options) []int {
	if o.Method == MethodBlocks {
		return o.Blocks
	}
	var out []int
	for b := range L {
		if o.Selection.Policy.Allowed(b, L) {
			out = append(out, b)
		}
	}
	return out
}

// runner is one search's bookkeeping: budget, best full-size set, trace.
type runner struct {
	obj       *Objective
	n         int
	cands     []int
	budget    float64
	progress  func(done, total int)
	best      []int
	bestVal   float64
	exhausted bool
	trace     []Step
	next      int // the step under way
}

// eval returns the objective of removed; ok is false (and the search must stop) when the
// budget cannot pay for it. A set of the target size competes for best.
func (rn *runner) eval(removed []int) (v float64, ok bool, err error) {
	cost := rn.obj.Cost(removed)
	if rn.budget > 0 && float64(rn.obj.blocks+cost) > rn.budget*float64(rn.obj.L)+1e-9 {
		rn.exhausted = true
		return 0, false, nil
	}
	v, err = rn.obj.Eval(removed)
	if err != nil {
		return 0, false, err
	}
	if S := normSet(removed); len(S) == rn.n && (v < rn.bestVal || (v == rn.bestVal && slices.Compare(S, rn.best) < 0)) {
		rn.best, rn.bestVal = S, v
	}
	return v, true, nil
}

// step records the trace after step i of total.
func (rn *runner) step(i, total int) {
	rn.record(i)
	rn.next = i + 1
	if rn.progress != nil {
		rn.progress(i+1, total)
	}
}

// finish records the work of a step the budget cut short, so the trace ends at the plan.
func (rn *runner) finish() {
	if n := len(rn.trace); n == 0 || rn.trace[n-1].SetsEvaluated != rn.obj.Evaluated() {
		rn.record(rn.next)
	}
}

func (rn *runner) record(i int) {
	if rn.best != nil {
		rn.trace = append(rn.trace, Step{Step: i, Best: rn.bestVal, Forwards: rn.obj.Forwards(), SetsEvaluated: rn.obj.Evaluated()})
	}
}

func cmp0(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// binomial is C(n, k) as a float64 (exact up to 2^53, which is all a limit needs).
func binomial(n, k int) float64 {
	if k < 0 || k > n {
		return 0
	}
	r := 1.0
	for i := 1; i <= k; i++ {
		r = r * float64(n-k+i) / float64(i)
	}
	return math.Round(r)
}
