package main

import (
	"context"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/outdir"
	"github.com/shortllm/shortllm/internal/stage"
)

// loaded is a model ready to run: the opened checkpoint (merged with its adapter) and a runner.
type loaded struct {
	*stage.Opened
	runner *model.Runner
}

// loadRunner opens ref (merging a PEFT LoRA adapter directory into the weights in memory
// when adapter is set) in the --dtype compute dtype and prepares a runner. needTok makes a
// missing tokenizer an error.
func (a *app) loadRunner(ctx context.Context, ref, adapter string, needTok bool) (*loaded, error) {
	if ref == "" {
		return nil, errModelRequired
	}
	e, err := a.engine()
	if err != nil {
		return nil, err
	}
	o, err := e.Open(ctx, ref, stage.OpenOptions{Adapter: adapter, NeedTokenizer: needTok})
	if err != nil {
		return nil, err
	}
	r, err := e.Runner(o.Model)
	if err != nil {
		return nil, err
	}
	return &loaded{Opened: o, runner: r}, nil
}

// provenance is recorded in every eval result so runs can be compared later.
type provenance = stage.Provenance

func (a *app) provenance(l *loaded) provenance { return a.eng.Provenance(l.Opened) }

// openForResult resolves ref, begins the --out results file (refused, before any work, when
// it is or overlaps an input) and opens the model in the compute dtype.
func (a *app) openForResult(ctx context.Context, ref, out string, inputs ...string) (*stage.Engine, *stage.Opened, *outdir.File, error) {
	dir, err := a.resolveModel(ctx, ref)
	if err != nil {
		return nil, nil, nil, err
	}
	outFile, err := beginOutFile(out, append([]string{dir}, inputs...)...)
	if err != nil {
		return nil, nil, nil, err
	}
	m, err := a.eng.Open(ctx, dir, stage.OpenOptions{Dir: true})
	if err != nil {
		outFile.Close()
		return nil, nil, nil, err
	}
	return a.eng, m, outFile, nil
}
