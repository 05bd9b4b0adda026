package prune

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/shortllm/shortllm/internal/model"
)

// Selection says how many blocks to remove and under which rule.
type Selection struct {
	// Blocks are explicit original indices (--blocks); the policy and scores do not apply.
	Blocks []int
	// NumBlocks (--num-blocks) or Ratio (--ratio, a parameter share) sets the count otherwise.
	NumBlocks int
	Ratio     float64
	Policy    Policy
	// Iterative re-scores the remaining blocks after each removal (SLEB-style).
	Iterative bool
}

// Ranking is one scoring of the blocks. Scores has one entry per original block; Order lists
// the blocks least important first, without the blocks that were skipped while scoring.
type Ranking struct {
	Criterion   string          `json:"criterion"`
	Scores      []*float64      `json:"scores"`
	Order       []int           `json:"order"`
	Calibration json.RawMessage `json:"-"`
}

// Ranker scores the model run with the blocks in skip removed.
type Ranker func(skip []int) (*Ranking, error)

// Step records one round of iterative pruning.
type Step struct {
	Skipped []int      `json:"skipped"`
	Scores  []*float64 `json:"scores"`
	Order   []int      `json:"order"`
	Removed int        `json:"removed"`
}

// Plan is the outcome of selection: the original blocks to remove and why.
type Plan struct {
	Remove  []int
	Method  string // "blocks", "num_blocks" or "ratio"
	Ratio   float64
	Policy  *Policy
	Ranking *Ranking // the one-shot ranking, or the first round of an iterative one
	Steps   []Step
}

// Count returns the number of blocks a selection removes, checking the policy can allow it
// before any (expensive) scoring starts.
func Count(cfg *model.Config, sel Selection) (int, string, error) {
	if len(sel.Blocks) > 0 {
		return len(sel.Blocks), "blocks", nil
	}
	n, method := sel.NumBlocks, "num_blocks"
	if sel.Ratio != 0 {
		var err error
		if n, err = BlocksForRatio(cfg, sel.Ratio); err != nil {
			return 0, "", err
		}
		method = "ratio"
	} else if n <= 0 || n >= cfg.NumHiddenLayers {
		return 0, "", fmt.Errorf("--num-blocks %d: must be between 1 and %d (the model has %d blocks)", n, cfg.NumHiddenLayers-1, cfg.NumHiddenLayers)
	}
	if err := sel.Policy.check(n, cfg.NumHiddenLayers); err != nil {
		return 0, "", err
	}
	return n, method, nil
}

// Select decides which blocks to remove. rank may be nil for explicit --blocks.
func Select(cfg *model.Config, sel Selection, rank Ranker) (*Plan, error) {
	n, method, err := Count(cfg, sel)
	if err != nil {
		return nil, err
	}
	if method == "blocks" {
		return &Plan{Remove: slices.Sorted(slices.Values(sel.Blocks)), Method: method}, nil
	}
	if rank == nil {
		return nil, fmt.Errorf("choosing blocks by --%s needs scores: give --scores FILE or --criterion", map[string]string{"ratio": "ratio", "num_blocks": "num-blocks"}[method])
	}
	p := &Plan{Method: method, Ratio: sel.Ratio, Policy: &sel.Policy}
	if sel.Iterative {
		err = p.iterate(cfg.NumHiddenLayers, n, sel.Policy, rank)
	} else {
		err = p.oneShot(cfg.NumHiddenLayers, n, sel.Policy, rank)
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Plan) oneShot(L, n int, pol Policy, rank Ranker) error {
	rk, err := rank(nil)
	if err != nil {
		return err
	}
	p.Ranking = rk
	p.Remove, err = Choose(rk.Order, n, L, pol)
	return err
}

// iterate removes one block per round: the least important allowed block of a fresh ranking
// of the model that already lacks the blocks removed so far.
func (p *Plan) iterate(L, n int, pol Policy, rank Ranker) error {
	var removed []int
	for len(removed) < n {
		rk, err := rank(slices.Clone(removed))
		if err != nil {
			return err
		}
		if p.Ranking == nil {
			p.Ranking = rk
		}
		next := -1
		for _, b := range rk.Order {
			if pol.Allowed(b, L) && !slices.Contains(removed, b) {
				next = b
				break
			}
		}
		if next < 0 {
			return fmt.Errorf("iterative round %d: the %s ranking has no removable block left", len(removed)+1, rk.Criterion)
		}
		p.Steps = append(p.Steps, Step{Skipped: slices.Clone(removed), Scores: rk.Scores, Order: rk.Order, Removed: next})
		removed = append(removed, next)
	}
	p.Remove = slices.Sorted(slices.Values(removed))
	return nil
}

// StaticRanker ranks by a score file; it cannot re-score, so iterative pruning refuses it.
func StaticRanker(s *ScoreFile) Ranker {
	return func(skip []int) (*Ranking, error) {
		if len(skip) > 0 {
			return nil, fmt.Errorf("--iterative re-scores after each removal: use --criterion instead of --scores")
		}
		return &Ranking{Criterion: s.Criterion, Scores: s.Scores, Order: s.Order, Calibration: s.Calibration}, nil
	}
}
