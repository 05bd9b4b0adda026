// Package testutil holds helpers shared by the project's tests.
package testutil

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// SharedDir returns the absolute path of ../shared (beside the checkout) joined with
// elems, after checking that it exists. When it is missing, the test fails if the CI
// environment variable is set (CI must never silently skip golden tests) and is
// skipped otherwise.
func SharedDir(tb testing.TB, elems ...string) string {
	tb.Helper()
	p := filepath.Join(append([]string{RepoRoot(tb), "..", "shared"}, elems...)...)
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatalf("CI is set but %s is missing: %v", p, err)
		}
		tb.Skipf("%s not available: %v", p, err)
	}
	return p
}

// RepoRoot returns the absolute path of the repository root (the directory holding go.mod).
func RepoRoot(tb testing.TB) string {
	tb.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		tb.Fatal("cannot locate testutil source file")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}
