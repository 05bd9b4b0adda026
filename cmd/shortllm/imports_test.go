package main

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The verbs are a front end over internal/stage: flags in, calls, output. Tensor compute
// (GoMLX graphs, backends, dtypes) belongs to the library, so a cmd file that imports GoMLX
// has grown stage logic. Test files may (they build fixtures).
func TestCmdImportsNoGoMLX(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		ast, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, imp := range ast.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if forbiddenInCmd(path) {
				t.Errorf("%s imports %s: move the work into internal/stage (or the package it belongs to)", f, path)
			}
		}
	}
	if checked < 10 {
		t.Fatalf("checked only %d files: is the test running in cmd/shortllm?", checked)
	}
}

func forbiddenInCmd(path string) bool {
	return strings.HasPrefix(path, "github.com/gomlx/")
}

// The rule itself must catch what it is meant to.
func TestForbiddenInCmd(t *testing.T) {
	for path, want := range map[string]bool{
		"github.com/gomlx/gomlx/pkg/core/graph":       true,
		"github.com/gomlx/gomlx/backends":             true,
		"github.com/gomlx/gomlx/pkg/core/dtypes":      true,
		"github.com/shortllm/shortllm/internal/stage": false,
		"github.com/spf13/cobra":                      false,
	} {
		if got := forbiddenInCmd(path); got != want {
			t.Errorf("forbiddenInCmd(%q) = %v, want %v", path, got, want)
		}
	}
}
