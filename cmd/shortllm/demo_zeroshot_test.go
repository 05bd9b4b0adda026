package main

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/shortllm/shortllm/internal/eval"
)

// TestDemoZeroShot_CommittedFilesAreWhatDemoDataWrites: the zero-shot files in testdata/demo
// are exactly what demo-data builds from Go's copy of Opticks, every one loads as its task,
// and each item's gold choice is the book's own continuation.
func TestDemoZeroShot_CommittedFilesAreWhatDemoDataWrites(t *testing.T) {
	text, err := os.ReadFile(filepath.Join(runtime.GOROOT(), "src", "testdata", "Isaac.Newton-Opticks.txt"))
	if err != nil {
		t.Skipf("Go's Opticks text: %v", err)
	}
	_, heldout := splitParagraphs(paragraphs(string(text)))
	tasks, err := demoZeroShot(heldout)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(demoModel(t), "data", "zeroshot")
	_, cont := sentenceHalves(heldout)
	for _, name := range eval.TaskNames() {
		want, err := os.ReadFile(filepath.Join(dir, name+".jsonl"))
		if err != nil || string(want) != strings.Join(tasks[name], "\n")+"\n" {
			t.Errorf("%s: committed file differs from demo-data's output (%v); rebuild with make demo-model", name, err)
		}
		task, err := eval.LoadTask(dir, name, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(task.Docs) != demoZeroShotItems {
			t.Errorf("%s: %d items", name, len(task.Docs))
		}
		if name == "piqa" || name == "arc_easy" {
			for _, d := range task.Docs {
				if !contains(cont, d.Choices[d.Gold]) {
					t.Errorf("%s item %d: gold %q is no sentence's continuation", name, d.Index, d.Choices[d.Gold])
				}
			}
		}
	}
}
