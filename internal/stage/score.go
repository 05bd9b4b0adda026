package stage

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/dtypes"

	"github.com/shortllm/shortllm/internal/memplan"
	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/score"
)

// Remat says whether a differentiating stage recomputes block activations in its backward
// pass: RematAuto decides from the memory plan (memplan.RematDefault).
type Remat string

// Rematerialisation choices.
const (
	RematAuto Remat = "auto"
	RematOn   Remat = "on"
	RematOff  Remat = "off"
)

// ParseRemat checks a remat value ("" is auto).
func ParseRemat(s string) (Remat, error) {
	switch r := Remat(s); r {
	case "":
		return RematAuto, nil
	case RematAuto, RematOn, RematOff:
		return r, nil
	}
	return "", fmt.Errorf("remat %q: want auto, on or off", s)
}

// Resolve decides for a model in its compute dtype and a batch of batch×seqLen tokens.
func (r Remat) Resolve(m *model.Model, batch, seqLen int) bool {
	switch r {
	case RematOn:
		return true
	case RematOff:
		return false
	}
	if seqLen == 0 {
		return false
	}
	w := 4
	if m.ComputeDType() == dtypes.BFloat16 {
		w = 2
	}
	return memplan.RematDefault(m.Config, w, max(batch, 1), seqLen)
}

// ScoreJob scores every block by each criterion (block criteria; width criteria are
// WidthScore's).
type ScoreJob struct {
	Criteria []string
	Calib    Calib // needed by every criterion but magnitude
	Options  score.Options
	Remat    Remat
}

// NeedsCalib reports whether any criterion runs the model on data.
func (j ScoreJob) NeedsCalib() (string, bool) {
	for _, c := range j.Criteria {
		if score.NeedsData(c) {
			return c, true
		}
	}
	return "", false
}

// Score runs the job on o; progress bars are named "score CRITERION".
func (e *Engine) Score(o *Opened, j ScoreJob) ([]*score.Result, error) {
	var calib *score.Calibration
	if c, ok := j.NeedsCalib(); ok {
		if j.Calib.Path == "" {
			return nil, fmt.Errorf("criterion %s needs calibration data (only magnitude needs none)", c)
		}
		var err error
		if calib, err = LoadCalib(o.Dir, j.Calib); err != nil {
			return nil, err
		}
	}
	seqLen := 0
	if calib != nil && len(calib.IDs) > 0 {
		seqLen = len(calib.IDs[0])
	}
	opts := j.Options
	batch := opts.BatchSize
	if batch == 0 {
		batch = score.DefaultBatchSize
	}
	opts.Remat = j.Remat.Resolve(o.Model, batch, seqLen)
	r, err := e.Runner(o.Model)
	if err != nil {
		return nil, err
	}
	var results []*score.Result
	for _, c := range j.Criteria {
		opts.Progress = e.progress("score " + c)
		res, err := score.Compute(r, calib, c, opts)
		if err != nil {
			return nil, err
		}
		res.ToolVersion = e.Version
		results = append(results, res)
	}
	return results, nil
}
