package prune

import (
	"encoding/json"
	"fmt"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/score"
)

// ComputeRanker scores blocks in-process with internal/score. Each call re-scores r's model
// with skip removed on the same calibration windows, which is what iterative pruning needs.
func ComputeRanker(r *model.Runner, calib *score.Calibration, criterion string, opts score.Options) Ranker {
	return func(skip []int) (*Ranking, error) {
		o := opts
		o.SkipBlocks = skip
		res, err := score.Compute(r, calib, criterion, o)
		if err != nil {
			return nil, err
		}
		rk := &Ranking{Criterion: res.Criterion, Scores: res.Scores, Order: res.Order}
		if res.Calibration != nil {
			if rk.Calibration, err = json.Marshal(res.Calibration); err != nil {
				return nil, fmt.Errorf("record calibration: %w", err)
			}
		}
		return rk, nil
	}
}
