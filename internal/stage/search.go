package stage

import "github.com/shortllm/shortllm/internal/search"

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
