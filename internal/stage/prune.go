package stage

import (
	"context"
	"fmt"
	"strings"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/outdir"
	"github.com/shortllm/shortllm/internal/prune"
	"github.com/shortllm/shortllm/internal/score"
)

// PruneJob removes whole blocks and writes the checkpoint. The blocks come from exactly one
// source: Selection.Blocks, a search plan (PlanFile), a scores file (ScoresFile, Criterion
// picking among several), or Criterion computed on Calib in the engine's compute dtype.
type PruneJob struct {
	Model     string  // reference (directory or hub id)
	Opened    *Opened // or a model already loaded for copying (OpenOptions.CopyOnly)
	Selection prune.Selection
	Blocks    string // a comma-separated block list, read into Selection.Blocks once the model is known
	PlanFile  string
	Scores    string
	Criterion string
	Calib     Calib
	BatchSize int // calibration windows per forward pass (0: score's default)
	Write     prune.WriteOptions
}

// Prune runs the job. The output is begun (and a bad or busy one refused) before the model
// is loaded or scored. Tensors are written as loaded: scoring in bf16 uses a bf16 copy of
// the weights, never the written ones.
func (e *Engine) Prune(ctx context.Context, j PruneJob) (*prune.Record, error) {
	o := j.Opened
	dir := ""
	if o != nil {
		dir = o.Dir
	} else {
		var err error
		if dir, err = e.Resolve(ctx, j.Model); err != nil {
			return nil, err
		}
	}
	if j.Write.Stage == nil {
		stage, err := outdir.Begin(j.Write.Out, outdir.Options{Inputs: []string{dir, j.Scores, j.Calib.Path, j.PlanFile}, Force: j.Write.Force})
		if err != nil {
			return nil, err
		}
		defer stage.Close()
		j.Write.Stage = stage
	}
	if o == nil {
		var err error
		if o, err = e.Open(ctx, dir, OpenOptions{Dir: true, CopyOnly: true}); err != nil {
			return nil, err
		}
	}
	plan, err := e.prunePlan(o.Model, &j)
	if err != nil {
		return nil, err
	}
	if j.Write.ToolVersion == "" {
		j.Write.ToolVersion = e.Version
	}
	return prune.Write(o.Model, plan, j.Write)
}

func (e *Engine) prunePlan(m *model.Model, j *PruneJob) (*prune.Plan, error) {
	if j.PlanFile != "" {
		pf, sum, err := prune.ReadPlanFile(j.PlanFile)
		if err != nil {
			return nil, err
		}
		if err := pf.Check(m.Config, j.PlanFile); err != nil {
			return nil, err
		}
		j.Write.PlanFile, j.Write.PlanSHA256 = j.PlanFile, sum
		return pf.Plan(), nil
	}
	if j.Blocks != "" {
		var err error
		if j.Selection.Blocks, err = prune.ParseBlocks(j.Blocks, m.Config.NumHiddenLayers); err != nil {
			return nil, err
		}
	}
	// Check the count against the policy before any scoring time is spent.
	if _, _, err := prune.Count(m.Config, j.Selection); err != nil {
		return nil, err
	}
	var rank prune.Ranker
	if len(j.Selection.Blocks) == 0 {
		var err error
		if rank, err = e.ranker(m, j); err != nil {
			return nil, err
		}
	}
	return prune.Select(m.Config, j.Selection, rank)
}

// ranker reads the scores file or prepares in-process scoring.
func (e *Engine) ranker(m *model.Model, j *PruneJob) (prune.Ranker, error) {
	if j.Scores != "" {
		sf, sum, err := ReadScoresFor(m, j.Scores, j.Criterion)
		if err != nil {
			return nil, err
		}
		j.Write.ScoresFile, j.Write.ScoresSHA256 = j.Scores, sum
		return prune.StaticRanker(sf), nil
	}
	if j.Criterion == "" {
		return nil, nil // Select names what is missing
	}
	if _, err := score.ParseCriteria(j.Criterion); err != nil || strings.Contains(j.Criterion, ",") || j.Criterion == "all" {
		return nil, fmt.Errorf("criterion %q: want one of %s", j.Criterion, strings.Join(score.Criteria(), ", "))
	}
	var calib *score.Calibration
	if score.NeedsData(j.Criterion) {
		var err error
		if calib, err = LoadCalib(m.Dir, j.Calib); err != nil {
			return nil, err
		}
	}
	cm, err := m.WithComputeDType(e.Compute)
	if err != nil {
		return nil, err
	}
	r, err := e.Runner(cm)
	if err != nil {
		return nil, err
	}
	opts := score.Options{BatchSize: j.BatchSize, Progress: e.progress("scoring " + j.Criterion)}
	return prune.ComputeRanker(r, calib, j.Criterion, opts), nil
}

// ReadScoresFor reads a scores file, picks criterion's result (any, when the file holds one)
// and checks that it was computed on m's architecture and weights.
func ReadScoresFor(m *model.Model, path, criterion string) (*prune.ScoreFile, string, error) {
	list, sum, err := prune.ReadScores(path)
	if err != nil {
		return nil, "", err
	}
	sf, err := prune.PickScores(list, criterion, path)
	if err != nil {
		return nil, "", err
	}
	if err := sf.Check(m.Config, path); err != nil {
		return nil, "", err
	}
	if err := sf.CheckWeights(m.Dir, path); err != nil {
		return nil, "", err
	}
	return sf, sum, nil
}
