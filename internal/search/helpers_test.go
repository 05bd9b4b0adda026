package search

import (
	"os"
	"sync"
	"testing"

	"github.com/gomlx/gomlx/backends"

	"github.com/shortllm/shortllm/internal/backend"
	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/score"
	"github.com/shortllm/shortllm/internal/testutil"
)

var (
	backendOnce sync.Once
	testBE      backends.Backend
	backendErr  error
)

func testBackend(tb testing.TB) backends.Backend {
	tb.Helper()
	backendOnce.Do(func() { testBE, backendErr = backend.New("go", os.Stderr) })
	if backendErr != nil {
		tb.Fatal(backendErr)
	}
	return testBE
}

func loadRunner(tb testing.TB, name string) *model.Runner {
	tb.Helper()
	m, err := model.Load(testutil.SharedDir(tb, "models", name), model.LoadOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return model.NewRunner(testBackend(tb), m)
}

// smallCalib is the first n windows of ../shared's calibration, cut to seqLen tokens: enough
// to tell block sets apart, small enough to keep the tests fast.
func smallCalib(tb testing.TB, n, seqLen int) *score.Calibration {
	tb.Helper()
	c, err := score.LoadCalibration(testutil.SharedDir(tb, "data", "stories", "calib10x128.ids.json"), nil, score.CalibOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	c.IDs = c.IDs[:n]
	for i := range c.IDs {
		c.IDs[i] = c.IDs[i][:seqLen]
	}
	c.SeqLen = seqLen
	return c
}
