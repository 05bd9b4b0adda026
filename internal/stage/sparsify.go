package stage

import (
	"context"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/sparsify"
)

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
