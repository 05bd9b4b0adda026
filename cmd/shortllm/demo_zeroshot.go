package main

// The demo's zero-shot tasks. The seven benchmarks cannot ship with the demo, so demo-data
// builds small stand-ins from Opticks' held-out paragraphs in each task's Hugging Face field
// layout: every item asks which continuation (or, for winogrande, which word) the book
// actually has, against distractors taken from other held-out sentences. They run through
// exactly the harness code path of the real tasks; their numbers say how well the demo model
// knows Newton's prose, not how it would do on BoolQ or ARC.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// demoZeroShotItems is the number of items written per task.
const demoZeroShotItems = 32

// sentenceHalves splits held-out paragraphs into sentences of 8–28 words and cuts each in
// two: the context and the true continuation.
func sentenceHalves(heldout []string) (ctx, cont []string) {
	for _, p := range heldout {
		for _, s := range strings.SplitAfter(p, ". ") {
			w := strings.Fields(s)
			// "_" marks italics in the book and would clash with winogrande's blank.
			if len(w) < 8 || len(w) > 28 || strings.ContainsAny(s, "_[]") {
				continue
			}
			half := len(w) / 2
			ctx = append(ctx, strings.Join(w[:half], " "))
			cont = append(cont, strings.Join(w[half:], " "))
		}
	}
	return ctx, cont
}

// demoZeroShot returns each task's JSONL lines.
func demoZeroShot(heldout []string) (map[string][]string, error) {
	ctx, cont := sentenceHalves(heldout)
	n := len(ctx)
	if n < 2*demoZeroShotItems+8 {
		return nil, fmt.Errorf("demo zero-shot: %d held-out sentences, need %d", n, 2*demoZeroShotItems+8)
	}
	// choices is the true continuation of item i among k-1 continuations of later sentences,
	// the true one at position gold.
	choices := func(i, k, stride, gold int) ([]string, int) {
		out := make([]string, 0, k)
		for j, d := 0, 1; j < k; j++ {
			if j == gold {
				out = append(out, cont[i])
				continue
			}
			out = append(out, cont[(i+d*stride)%n])
			d++
		}
		return out, gold
	}
	labels := []string{"A", "B", "C", "D"}
	tasks := map[string][]string{}
	add := func(task string, v any) error {
		b, err := json.Marshal(v)
		tasks[task] = append(tasks[task], string(b))
		return err
	}
	for k := 0; k < demoZeroShotItems; k++ {
		i := 2 * k // items of different tasks start from the same sentences, distractors differ
		c2, g2 := choices(i, 2, 7, k%2)
		c4, g4 := choices(i+1, 4, 5, k%4)
		c4b, g4b := choices(i, 4, 3, (k+2)%4)
		word, other := swapWord(cont[i], cont[(i+11)%n])
		errs := []error{
			add("boolq", map[string]any{"passage": ctx[i] + " " + c2[(k/2)%2], "question": "is this how the sentence goes in the book",
				"label": boolLabel(g2 == (k/2)%2)}),
			add("piqa", map[string]any{"goal": ctx[i], "sol1": c2[0], "sol2": c2[1], "label": g2}),
			add("hellaswag", map[string]any{"activity_label": "Opticks", "ctx_a": ctx[i+1], "ctx_b": "", "endings": c4, "label": fmt.Sprint(g4)}),
			add("winogrande", map[string]any{"sentence": ctx[i] + " " + strings.Replace(cont[i], word, "_", 1),
				"option1": []string{word, other}[k%2], "option2": []string{other, word}[k%2], "answer": fmt.Sprint(1 + k%2)}),
			add("arc_easy", map[string]any{"question": ctx[i+1], "choices": map[string]any{"text": c4, "label": labels}, "answerKey": labels[g4]}),
			add("arc_challenge", map[string]any{"question": ctx[i], "choices": map[string]any{"text": c4b, "label": labels}, "answerKey": labels[g4b]}),
			add("openbookqa", map[string]any{"question_stem": ctx[i], "choices": map[string]any{"text": c4b, "label": labels}, "answerKey": labels[g4b]}),
		}
		for _, err := range errs {
			if err != nil {
				return nil, err
			}
		}
	}
	return tasks, nil
}

// boolLabel is BoolQ's label: 1 for yes.
func boolLabel(yes bool) int {
	if yes {
		return 1
	}
	return 0
}

// swapWord picks the longest word of s (its first occurrence is blanked) and the longest
// different word of t as the wrong option.
func swapWord(s, t string) (word, other string) {
	for _, w := range strings.Fields(s) {
		if w = strings.Trim(w, ".,;:()_"); len(w) > len(word) {
			word = w
		}
	}
	for _, w := range strings.Fields(t) {
		if w = strings.Trim(w, ".,;:()_"); len(w) > len(other) && w != word {
			other = w
		}
	}
	return word, other
}

func writeDemoZeroShot(out string, heldout []string) error {
	tasks, err := demoZeroShot(heldout)
	if err != nil {
		return err
	}
	dir := filepath.Join(out, "data", "zeroshot")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for task, lines := range tasks {
		path := filepath.Join(dir, task+".jsonl")
		if err := writeFileAtomic(path, []byte(strings.Join(lines, "\n")+"\n")); err != nil {
			return err
		}
	}
	return nil
}
