package search

import (
	"testing"

	"github.com/gomlx/gomlx/backends"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/score"
	"github.com/shortllm/shortllm/internal/testutil"
	"github.com/shortllm/shortllm/internal/testutil/modeltest"
)

func testBackend(tb testing.TB) backends.Backend { return modeltest.Backend(tb) }

func loadRunner(tb testing.TB, name string) *model.Runner { return modeltest.Runner(tb, name) }

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
