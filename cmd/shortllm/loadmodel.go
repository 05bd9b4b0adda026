package main

import (
	"context"
	"fmt"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/retrain"
	"github.com/shortllm/shortllm/internal/tokenizer"
)

// loaded is a model ready to run: its directory, weights, runner and tokenizer.
type loaded struct {
	dir     string
	adapter string
	model   *model.Model
	runner  *model.Runner
	tok     *tokenizer.Tokenizer
}

// loadRunner resolves ref, loads the checkpoint (merging a PEFT LoRA adapter directory into
// the weights in memory when adapter is set) and its tokenizer, and prepares a runner on the
// chosen backend. needTok makes a missing tokenizer an error.
func (a *app) loadRunner(ctx context.Context, ref, adapter string, needTok bool) (*loaded, error) {
	dir, err := a.resolveModel(ctx, ref)
	if err != nil {
		return nil, err
	}
	dt, err := model.ParseDType(a.dtype, "--dtype")
	if err != nil {
		return nil, err
	}
	m, err := model.Load(dir, model.LoadOptions{DType: dt})
	if err != nil {
		return nil, err
	}
	if adapter != "" {
		if err := retrain.MergeAdapter(m, adapter); err != nil {
			return nil, err
		}
	}
	tok, err := tokenizer.Load(dir)
	if err != nil && needTok {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	be, err := a.backend()
	if err != nil {
		return nil, err
	}
	return &loaded{dir: dir, adapter: adapter, model: m, runner: model.NewRunner(be, m), tok: tok}, nil
}

// provenance is recorded in every eval result so runs can be compared later.
type provenance struct {
	Model      string `json:"model"`
	Adapter    string `json:"adapter,omitempty"`
	ConfigHash string `json:"config_hash"`
	NumLayers  int    `json:"num_layers"`
	Params     int64  `json:"params"`
	Tokenizer  string `json:"tokenizer,omitempty"`
	Backend    string `json:"backend"`
	DType      string `json:"dtype"`
	Version    string `json:"tool_version"`
}

func (a *app) provenance(l *loaded) provenance {
	p := provenance{Model: l.dir, Adapter: l.adapter, ConfigHash: l.model.Config.Hash(), NumLayers: l.model.Config.NumHiddenLayers,
		Params: l.model.NumParams(), Backend: l.runner.Backend.Name(), DType: model.DTypeName(l.model.ComputeDType()), Version: version}
	if l.tok != nil {
		p.Tokenizer = l.tok.Kind()
	}
	return p
}
