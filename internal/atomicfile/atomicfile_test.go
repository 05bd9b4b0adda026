package atomicfile

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestWriteJSON_ReplacesAndLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "r.json")
	if err := os.WriteFile(p, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteJSON(p, map[string]int{"a": 1}); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(p)
	if string(got) != "{\n  \"a\": 1\n}\n" {
		t.Errorf("content %q", got)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("left behind: %v", entries)
	}
}

func TestWrite_MissingDirIsOneLineError(t *testing.T) {
	err := Write(filepath.Join(t.TempDir(), "no", "such", "f.json"), []byte("x"))
	if err == nil {
		t.Fatal("want an error")
	}
}

// TestWriteJSON_NaNNamesTheFile: a NaN in a result is an error naming the file, not
// encoding/json's "json: unsupported value: NaN"; nothing is written.
func TestWriteJSON_NaNNamesTheFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "r.json")
	err := WriteJSON(p, map[string]float64{"ppl": math.NaN()})
	if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "NaN") || strings.Contains(err.Error(), "json: unsupported") {
		t.Fatalf("got %v", err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Error("file written")
	}
}

func TestWrite_UsesUmask(t *testing.T) {
	old := syscall.Umask(0o027)
	defer syscall.Umask(old)
	p := filepath.Join(t.TempDir(), "r.json")
	if err := Write(p, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", st.Mode().Perm())
	}
}
