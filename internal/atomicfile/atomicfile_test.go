package atomicfile

import (
	"os"
	"path/filepath"
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
