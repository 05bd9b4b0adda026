package eval

import (
	"os"
	"testing"

	"github.com/shortllm/shortllm/internal/testutil"
)

func sharedPath(tb testing.TB, elems ...string) string {
	tb.Helper()
	return testutil.SharedDir(tb, elems...)
}

func readShared(tb testing.TB, elems ...string) []byte {
	tb.Helper()
	data, err := os.ReadFile(sharedPath(tb, elems...))
	if err != nil {
		tb.Fatal(err)
	}
	return data
}
