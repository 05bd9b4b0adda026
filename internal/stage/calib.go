package stage

import (
	"context"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/score"
	"github.com/shortllm/shortllm/internal/search"
	"github.com/shortllm/shortllm/internal/sparsify"
	"github.com/shortllm/shortllm/internal/tokenizer"
)

// Calib names calibration data and how windows are drawn from text: what score, prune
// --criterion, search, width pruning and sparsify all read.
type Calib struct {
	Path string
	score.CalibOptions
}

// LoadCalib reads c with the tokenizer of the model in modelDir (needed for text files only;
// LoadCalibration says so when it is missing).
func LoadCalib(modelDir string, c Calib) (*score.Calibration, error) {
	var tok score.Tokenizer
	if t, err := tokenizer.Load(modelDir); err == nil { // a nil *Tokenizer must not reach the interface
		tok = t
	}
	return score.LoadCalibration(c.Path, tok, c.CalibOptions)
}

// Search runs a block-set search on o with the calibration windows of c.
func (e *Engine) Search(o *Opened, c Calib, opts search.Options) (*search.Plan, error) {
	var err error
	if opts.Calib, err = LoadCalib(o.Dir, c); err != nil {
		return nil, err
	}
	r, err := e.Runner(o.Model)
	if err != nil {
		return nil, err
	}
	if opts.Progress == nil {
		opts.Progress = e.progress("search " + opts.Method)
	}
	plan, err := search.Run(r, opts)
	if err != nil {
		return nil, err
	}
	plan.ToolVersion = e.Version
	return plan, nil
}

// Sparsify loads the model in float32 (the methods update weights on the host) and zeroes
// weights by opts; c is read when the method needs calibration data. progress, if set, gets
// the number of blocks and returns the per-block callback.
func (e *Engine) Sparsify(ctx context.Context, ref string, c Calib, opts sparsify.Options, progress func(total int) func(int, int)) (*model.Model, *sparsify.Record, error) {
	dir, err := e.Resolve(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	m, err := model.Load(dir, model.LoadOptions{})
	if err != nil {
		return nil, nil, err
	}
	if c.Path != "" {
		if opts.Calib, err = LoadCalib(dir, c); err != nil {
			return nil, nil, err
		}
	}
	be, err := e.Backend()
	if err != nil {
		return nil, nil, err
	}
	if progress != nil {
		opts.Progress = progress(m.Config.NumHiddenLayers)
	}
	rec, err := sparsify.Run(model.NewRunnerWith(be, m, e.Exec()), opts)
	return m, rec, err
}
