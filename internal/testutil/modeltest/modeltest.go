// Package modeltest loads ../shared models for tests on one shared SimpleGo backend. It is
// for packages above internal/model (model's own tests cannot import it).
package modeltest

import (
	"os"
	"sync"
	"testing"

	"github.com/gomlx/gomlx/backends"

	"github.com/shortllm/shortllm/internal/backend"
	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/testutil"
)

// shared is the one backend of a test binary: creating one is cheap, but sharing it keeps
// parallel tests from oversubscribing the cores.
var shared struct {
	once sync.Once
	be   backends.Backend
	err  error
}

// Backend returns the test binary's SimpleGo backend.
func Backend(tb testing.TB) backends.Backend {
	tb.Helper()
	shared.once.Do(func() { shared.be, shared.err = backend.New("go", os.Stderr) })
	if shared.err != nil {
		tb.Fatal(shared.err)
	}
	return shared.be
}

// Load loads ../shared/models/name in float32.
func Load(tb testing.TB, name string) *model.Model {
	tb.Helper()
	m, err := model.Load(testutil.SharedDir(tb, "models", name), model.LoadOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// Runner loads ../shared/models/name and returns a runner on the shared backend.
func Runner(tb testing.TB, name string) *model.Runner {
	tb.Helper()
	return model.NewRunner(Backend(tb), Load(tb, name))
}
