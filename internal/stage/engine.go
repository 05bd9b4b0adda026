package stage

import (
	"fmt"
	"io"
	"sync"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"

	"github.com/shortllm/shortllm/internal/backend"
	"github.com/shortllm/shortllm/internal/hub"
	"github.com/shortllm/shortllm/internal/model"
)

// Settings are what a front end knows when it starts: the backend spec (empty: $GOMLX_BACKEND,
// else go), the compute dtype name and where notices and progress go.
type Settings struct {
	Backend string
	DType   string // f32 (default), bf16 or f64: what weights and activations are held in
	Notices io.Writer
	// Progress, if set, returns a progress callback for one piece of work.
	Progress func(desc string) func(done, total int)
	Version  string
	Hub      hub.Options
}

// Engine carries the settings every stage runs with, resolved once: the compute dtype, the
// execution settings (KV-cache update, donation) and the backend, created on first use so
// that stages which only copy tensors never initialise a GPU.
type Engine struct {
	Compute  dtypes.DType
	Notices  io.Writer
	Progress func(desc string) func(done, total int)
	Version  string
	Hub      hub.Options

	spec string
	once sync.Once
	be   backends.Backend
	exec model.Engine
	err  error
}

// NewEngine checks the settings. The fast DotGeneral gradient is registered here, once, for
// every stage that differentiates (score taylor, retrain, search, width).
func NewEngine(s Settings) (*Engine, error) {
	dt, err := model.ParseDType(s.DType, "dtype")
	if err != nil {
		return nil, err
	}
	if s.Notices == nil {
		s.Notices = io.Discard
	}
	model.RegisterFastDotGeneralVJP()
	return &Engine{Compute: dt, Notices: s.Notices, Progress: s.Progress, Version: s.Version, Hub: s.Hub, spec: s.Backend}, nil
}

// Backend creates the compute backend (once) and resolves the execution settings for it.
func (e *Engine) Backend() (backends.Backend, error) {
	e.once.Do(func() {
		if e.be, e.err = backend.New(e.spec, e.Notices); e.err != nil {
			return
		}
		if e.exec, e.err = model.EngineFromEnv(e.be); e.err != nil {
			e.err = fmt.Errorf("backend %s: %w", e.be.Name(), e.err)
		}
	})
	return e.be, e.err
}

// BackendName is the backend's name ("" before one is created).
func (e *Engine) BackendName() string {
	if e.be == nil {
		return ""
	}
	return e.be.Name()
}

// Exec returns the execution settings (after Backend).
func (e *Engine) Exec() model.Engine { return e.exec }

// Runner prepares a runner for m on the engine's backend with its execution settings.
func (e *Engine) Runner(m *model.Model) (*model.Runner, error) {
	be, err := e.Backend()
	if err != nil {
		return nil, err
	}
	return model.NewRunnerWith(be, m, e.exec), nil
}

// progress returns the callback for desc, or nil.
func (e *Engine) progress(desc string) func(done, total int) {
	if e.Progress == nil {
		return nil
	}
	return e.Progress(desc)
}

// DTypeName is the compute dtype's short name (f32, bf16).
func (e *Engine) DTypeName() string { return model.DTypeName(e.Compute) }

// IsBF16 reports whether stages compute in bfloat16.
func (e *Engine) IsBF16() bool { return e.Compute == dtypes.BFloat16 }
