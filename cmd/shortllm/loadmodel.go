package main

import (
	"context"

	"github.com/shortllm/shortllm/internal/model"
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
