package eval

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/shortllm/shortllm/internal/inputfile"
)

// Task is one zero-shot task loaded from <data-dir>/<name>.jsonl.
type Task struct {
	Name   string
	Path   string
	SHA256 string // of the whole file
	Limit  int    // as passed to LoadTask; 0 = all
	Total  int    // items in the file (non-blank lines), before Limit
	Docs   []Doc
}

// Doc is one task item rendered into lm-eval's requests, one per choice.
// Contexts[i]+Continuations[i] is the text lm-eval scores for choice i; for
// ordinary tasks the context is shared and the continuation is " "+choice,
// for multiple_input tasks (winogrande) the choice lives in the context and
// the continuation is shared.
type Doc struct {
	Index         int // 0-based item index (lm-eval's doc_id)
	Line          int // 1-based line in Task.Path
	Gold          int
	MultipleInput bool
	// Choices is lm-eval's doc_to_choice; acc_norm divides by len(Choices[i])
	// in code points, whatever the continuation is.
	Choices       []string
	Contexts      []string
	Continuations []string
}

// ErrNoItems is returned (wrapped) for a task file without items.
var ErrNoItems = errors.New("no items")

// targetDelimiter is lm-eval's default target_delimiter between context and
// choice.
const targetDelimiter = " "

// Paper metrics: the metric the Shortened LLaMA tables report per task.
const (
	MetricAcc     = "acc"
	MetricAccNorm = "acc_norm"
)

type taskSpec struct {
	paperMetric string
	reportsNorm bool // lm-eval's task yaml lists acc_norm
	parse       func(f fields) (Doc, error)
}

// TaskNames lists the supported tasks in the paper's table order.
func TaskNames() []string {
	return []string{"boolq", "piqa", "hellaswag", "winogrande", "arc_easy", "arc_challenge", "openbookqa"}
}

func lookupTask(name string) (taskSpec, bool) {
	switch name {
	case "boolq":
		return taskSpec{MetricAcc, false, parseBoolQ}, true
	case "piqa":
		return taskSpec{MetricAcc, true, parsePIQA}, true
	case "hellaswag":
		return taskSpec{MetricAccNorm, true, parseHellaSwag}, true
	case "winogrande":
		return taskSpec{MetricAcc, false, parseWinogrande}, true
	case "arc_easy":
		return taskSpec{MetricAcc, true, parseARC}, true
	case "arc_challenge":
		return taskSpec{MetricAccNorm, true, parseARC}, true
	case "openbookqa":
		return taskSpec{MetricAccNorm, true, parseOpenBookQA}, true
	}
	return taskSpec{}, false
}

// LoadTask reads <dataDir>/<task>.jsonl and renders its first limit items
// (all when limit is 0). Blank lines are skipped. Every problem is reported as
// one line naming file:line.
func LoadTask(dataDir, task string, limit int) (*Task, error) {
	spec, ok := lookupTask(task)
	if !ok {
		return nil, fmt.Errorf("unknown task %q (want one of %s)", task, strings.Join(TaskNames(), ", "))
	}
	if limit < 0 {
		return nil, fmt.Errorf("--limit %d: need 0 (all) or more", limit)
	}
	path := filepath.Join(dataDir, task+".jsonl")
	data, err := inputfile.Read(path, inputfile.DataLimit)
	if err != nil {
		return nil, fmt.Errorf("task %s: %w", task, err)
	}
	docs, err := parseTaskData(data, spec, limit)
	if le := (*LineError)(nil); errors.As(err, &le) {
		le.Path = path
	}
	if err != nil {
		return nil, fmt.Errorf("task %s: %w", task, err)
	}
	sum := sha256.Sum256(data)
	return &Task{Name: task, Path: path, SHA256: hex.EncodeToString(sum[:]), Limit: limit, Total: countItems(data), Docs: docs}, nil
}

// LineError locates a problem in a data file. Line 0 means the file as a
// whole.
type LineError struct {
	Path string
	Line int
	Err  error
}

func (e *LineError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %v", e.Path, e.Err)
	}
	return fmt.Sprintf("%s:%d: %v", e.Path, e.Line, e.Err)
}

func (e *LineError) Unwrap() error { return e.Err }

// countItems counts the non-blank lines: the task's items, the harness's
// n-samples "original".
func countItems(data []byte) int {
	n := 0
	for _, line := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) > 0 {
			n++
		}
	}
	return n
}

// parseTaskData parses JSONL task data into at most limit docs (0 = all).
// Errors are *LineError without Path.
func parseTaskData(data []byte, spec taskSpec, limit int) ([]Doc, error) {
	var docs []Doc
	for n, line := range bytes.Split(data, []byte("\n")) {
		if limit > 0 && len(docs) == limit {
			break
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		doc, err := parseTaskLine(line, spec)
		if err != nil {
			return nil, &LineError{Line: n + 1, Err: err}
		}
		doc.Index, doc.Line = len(docs), n+1
		docs = append(docs, doc)
	}
	if len(docs) == 0 {
		return nil, &LineError{Err: ErrNoItems}
	}
	return docs, nil
}

// parseTaskLine renders one JSON object and checks the result.
func parseTaskLine(line []byte, spec taskSpec) (Doc, error) {
	var f fields
	if err := json.Unmarshal(line, &f); err != nil {
		return Doc{}, fmt.Errorf("not a JSON object: %w", err)
	}
	if f == nil {
		return Doc{}, errors.New("not a JSON object: null")
	}
	doc, err := spec.parse(f)
	if err != nil {
		return Doc{}, err
	}
	if len(doc.Choices) < 2 {
		return Doc{}, fmt.Errorf("%d choices; need at least 2", len(doc.Choices))
	}
	if doc.Gold < 0 || doc.Gold >= len(doc.Choices) {
		return Doc{}, fmt.Errorf("gold index %d out of range for %d choices", doc.Gold, len(doc.Choices))
	}
	for i, c := range doc.Choices {
		// acc_norm divides by the choice length: an empty one makes it undefined.
		if c == "" {
			return Doc{}, fmt.Errorf("choice %d is empty", i)
		}
	}
	return doc, nil
}

// sharedContext builds a Doc whose choices all follow one context, lm-eval's
// usual (ctx, " "+choice) requests.
func sharedContext(ctx string, choices []string, gold int) Doc {
	d := Doc{Gold: gold, Choices: choices}
	for _, c := range choices {
		d.Contexts = append(d.Contexts, ctx)
		d.Continuations = append(d.Continuations, targetDelimiter+c)
	}
	return d
}

// boolq: "{{passage}}\nQuestion: {{question}}?\nAnswer:", choices no/yes.
func parseBoolQ(f fields) (Doc, error) {
	passage, err1 := f.str("passage")
	question, err2 := f.str("question")
	label, err3 := f.index("label")
	if err := firstErr(err1, err2, err3); err != nil {
		return Doc{}, err
	}
	return sharedContext(passage+"\nQuestion: "+question+"?\nAnswer:", []string{"no", "yes"}, label), nil
}

// piqa: "Question: {{goal}}\nAnswer:", choices [sol1, sol2].
func parsePIQA(f fields) (Doc, error) {
	goal, err1 := f.str("goal")
	sol1, err2 := f.str("sol1")
	sol2, err3 := f.str("sol2")
	label, err4 := f.index("label")
	if err := firstErr(err1, err2, err3, err4); err != nil {
		return Doc{}, err
	}
	return sharedContext("Question: "+goal+"\nAnswer:", []string{sol1, sol2}, label), nil
}

// hellaswag: lm-eval's process_docs builds the query from activity_label,
// ctx_a and ctx_b.capitalize(), then preprocesses query and endings.
func parseHellaSwag(f fields) (Doc, error) {
	label, err1 := f.str("activity_label")
	ctxA, err2 := f.str("ctx_a")
	ctxB, err3 := f.str("ctx_b")
	endings, err4 := f.strs("endings")
	gold, err5 := f.index("label")
	if err := firstErr(err1, err2, err3, err4, err5); err != nil {
		return Doc{}, err
	}
	query := hellaswagPreprocess(label + ": " + ctxA + " " + pyCapitalize(ctxB))
	choices := make([]string, len(endings))
	for i, e := range endings {
		choices[i] = hellaswagPreprocess(e)
	}
	return sharedContext(query, choices, gold), nil
}

// bracketRE matches WikiHow artifacts such as "[header]"; like Python's re,
// Go's "." does not cross newlines.
var bracketRE = regexp.MustCompile(`\[.*?\]`)

// hellaswagPreprocess is lm-eval's hellaswag utils.preprocess.
func hellaswagPreprocess(s string) string {
	s = pyStrip(s)
	s = strings.ReplaceAll(s, " [title]", ". ")
	s = bracketRE.ReplaceAllLiteralString(s, "")
	return strings.ReplaceAll(s, "  ", " ")
}

// winogrande: partial evaluation. Each option is substituted into the
// sentence up to "_" (the choice is the context) and the shared continuation
// is the rest of the sentence, scored the same way for both options.
func parseWinogrande(f fields) (Doc, error) {
	sentence, err1 := f.str("sentence")
	opt1, err2 := f.str("option1")
	opt2, err3 := f.str("option2")
	answer, err4 := f.str("answer")
	if err := firstErr(err1, err2, err3, err4); err != nil {
		return Doc{}, err
	}
	idx := strings.Index(sentence, "_")
	if idx < 0 {
		return Doc{}, errors.New(`field "sentence" has no "_" blank`)
	}
	var gold int
	switch answer {
	case "1":
		gold = 0
	case "2":
		gold = 1
	default:
		return Doc{}, fmt.Errorf(`field "answer" is %q; want "1" or "2"`, answer)
	}
	target := targetDelimiter + pyStrip(sentence[idx+1:])
	choices := []string{sentence[:idx] + opt1, sentence[:idx] + opt2}
	return Doc{
		Gold: gold, MultipleInput: true, Choices: choices,
		Contexts: choices, Continuations: []string{target, target},
	}, nil
}

// arc_easy / arc_challenge: "Question: {{question}}\nAnswer:",
// gold = choices.label.index(answerKey).
func parseARC(f fields) (Doc, error) {
	question, err1 := f.str("question")
	texts, key, err2 := labelledChoices(f, "answerKey")
	if err := firstErr(err1, err2); err != nil {
		return Doc{}, err
	}
	return sharedContext("Question: "+question+"\nAnswer:", texts, key), nil
}

// openbookqa: the bare question_stem, gold = choices.label.index(answerKey.lstrip()).
func parseOpenBookQA(f fields) (Doc, error) {
	stem, err1 := f.str("question_stem")
	texts, key, err2 := labelledChoices(f, "answerKey")
	if err := firstErr(err1, err2); err != nil {
		return Doc{}, err
	}
	return sharedContext(stem, texts, key), nil
}

// labelledChoices reads {"choices": {"text": [...], "label": [...]}} and
// finds keyField's label among them. The key is left-stripped as OpenBookQA's
// yaml does; for ARC that is a no-op on valid data.
func labelledChoices(f fields, keyField string) ([]string, int, error) {
	key, err := f.str(keyField)
	if err != nil {
		return nil, 0, err
	}
	choices, err := f.obj("choices")
	if err != nil {
		return nil, 0, err
	}
	texts, err1 := choices.strs("text")
	labels, err2 := choices.strs("label")
	if err := firstErr(err1, err2); err != nil {
		return nil, 0, fmt.Errorf(`field "choices": %w`, err)
	}
	if len(texts) != len(labels) {
		return nil, 0, fmt.Errorf(`field "choices": %d texts but %d labels`, len(texts), len(labels))
	}
	key = strings.TrimLeftFunc(key, pyIsSpace)
	for i, l := range labels {
		if l == key {
			return texts, i, nil
		}
	}
	return nil, 0, fmt.Errorf("gold %s %q is not among choice labels %q", keyField, key, labels)
}

// firstErr returns the first non-nil error: errors.Join would make
// multi-line messages, and one problem per line is enough to fix the data.
func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// fields is one decoded JSON object whose values are parsed on demand, so
// that a missing or mistyped field is reported by name.
type fields map[string]json.RawMessage

func (f fields) raw(name string) (json.RawMessage, error) {
	v, ok := f[name]
	if !ok || string(v) == "null" {
		return nil, fmt.Errorf("missing field %q", name)
	}
	return v, nil
}

func (f fields) str(name string) (string, error) {
	var s string
	return s, f.decode(name, &s, "a string")
}

func (f fields) strs(name string) ([]string, error) {
	var s []string
	return s, f.decode(name, &s, "a list of strings")
}

func (f fields) obj(name string) (fields, error) {
	var o fields
	if err := f.decode(name, &o, "an object"); err != nil {
		return nil, err
	}
	return o, nil
}

func (f fields) decode(name string, dst any, want string) error {
	v, err := f.raw(name)
	if err != nil {
		return err
	}
	if json.Unmarshal(v, dst) != nil {
		return fmt.Errorf("field %q is %s; want %s", name, clip(string(v)), want)
	}
	return nil
}

// index reads a gold label given as a JSON integer or, as in HF's HellaSwag,
// a string holding one.
func (f fields) index(name string) (int, error) {
	v, err := f.raw(name)
	if err != nil {
		return 0, err
	}
	var n int
	if json.Unmarshal(v, &n) == nil {
		return n, nil
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
			return n, nil
		}
	}
	return 0, fmt.Errorf("field %q is %s; want an integer label", name, clip(string(v)))
}

// clip keeps error messages to one short line.
func clip(s string) string {
	const max = 40
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > max {
		return string(r[:max]) + "…"
	}
	return s
}
