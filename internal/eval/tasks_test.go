package eval

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// writeTask writes a broken or synthetic task file into a temp data dir.
func writeTask(t *testing.T, task, content string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, task+".jsonl"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

const (
	arcLine  = `{"question":"Q?","choices":{"text":["a","b","c"],"label":["A","B","C"]},"answerKey":"C"}`
	winoLine = `{"sentence":"Tom beat Bob so _ was happy.","option1":"Tom","option2":"Bob","answer":"1"}`
)

func TestLoadTask_BadInput(t *testing.T) {
	tests := []struct {
		name, task, content string
		want                []string // in the error, besides the task name
		wantErr             error
	}{
		{"missing field", "boolq", `{"question":"q","label":0}`, []string{":1:", `missing field "passage"`}, nil},
		{"mistyped field", "piqa", `{"goal":"g","sol1":"a","sol2":["b"],"label":0}`, []string{":1:", `"sol2"`, "want a string"}, nil},
		{"gold out of range", "piqa", "\n" + `{"goal":"g","sol1":"a","sol2":"b","label":2}`, []string{":2:", "gold index 2 out of range"}, nil},
		{"negative gold", "hellaswag", `{"activity_label":"x","ctx_a":"a","ctx_b":"b","endings":["1","2"],"label":"-1"}`, []string{":1:", "gold index -1"}, nil},
		{"non-integer label", "hellaswag", `{"activity_label":"x","ctx_a":"a","ctx_b":"b","endings":["1","2"],"label":"two"}`, []string{":1:", `"label"`}, nil},
		{"answer key not a label", "arc_easy", arcLine + "\n" + strings.Replace(arcLine, `"C"}`, `"E"}`, 1), []string{":2:", `"E"`}, nil},
		{"labels and texts differ", "openbookqa", `{"question_stem":"q","choices":{"text":["a"],"label":["A","B"]},"answerKey":"A"}`, []string{":1:", "1 texts but 2 labels"}, nil},
		{"winogrande without blank", "winogrande", strings.Replace(winoLine, "_", "he", 1), []string{":1:", `"_"`}, nil},
		{"winogrande bad answer", "winogrande", strings.Replace(winoLine, `"1"}`, `"3"}`, 1), []string{":1:", `"3"`}, nil},
		{"not json", "boolq", "{passage: 1}", []string{":1:", "not a JSON object"}, nil},
		{"json array", "boolq", "[1, 2]", []string{":1:", "not a JSON object"}, nil},
		{"empty choice", "piqa", `{"goal":"g","sol1":"","sol2":"b","label":0}`, []string{":1:", "choice 0 is empty"}, nil},
		{"empty file", "boolq", "", []string{"boolq.jsonl", "no items"}, ErrNoItems},
		{"blank lines only", "boolq", "\n \n", []string{"boolq.jsonl", "no items"}, ErrNoItems},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeTask(t, tt.task, tt.content)
			_, err := LoadTask(dir, tt.task, 0)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("multi-line error %q", msg)
			}
			for _, w := range append(tt.want, filepath.Join(dir, tt.task+".jsonl")) {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
			var le *LineError
			if !errors.As(err, &le) {
				t.Errorf("error %v is not a *LineError", err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v is not %v", err, tt.wantErr)
			}
		})
	}
}

func TestLoadTask_UnknownTaskAndLimit(t *testing.T) {
	if _, err := LoadTask(t.TempDir(), "mmlu", 0); err == nil || !strings.Contains(err.Error(), `unknown task "mmlu"`) {
		t.Errorf("unknown task: %v", err)
	}
	if _, err := LoadTask(t.TempDir(), "boolq", -1); err == nil || !strings.Contains(err.Error(), "--limit") {
		t.Errorf("negative limit: %v", err)
	}
	if _, err := LoadTask(t.TempDir(), "boolq", 0); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// The limit keeps the first N items, and a broken line beyond it is never read.
func TestLoadTask_Limit(t *testing.T) {
	dir := writeTask(t, "arc_easy", arcLine+"\n\n"+arcLine+"\n"+arcLine+"\nnot json\n")
	task, err := LoadTask(dir, "arc_easy", 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(task.Docs) != 2 || task.Docs[1].Index != 1 || task.Docs[1].Line != 3 || task.Limit != 2 {
		t.Errorf("docs %+v", task.Docs)
	}
	if _, err := LoadTask(dir, "arc_easy", 0); err == nil || !strings.Contains(err.Error(), ":5:") {
		t.Errorf("full load: %v, want an error at line 5", err)
	}
}

func TestParseWinogrande_PartialEvaluation(t *testing.T) {
	dir := writeTask(t, "winogrande", winoLine)
	task, err := LoadTask(dir, "winogrande", 0)
	if err != nil {
		t.Fatal(err)
	}
	want := Doc{
		Index: 0, Line: 1, Gold: 0, MultipleInput: true,
		Choices:       []string{"Tom beat Bob so Tom", "Tom beat Bob so Bob"},
		Contexts:      []string{"Tom beat Bob so Tom", "Tom beat Bob so Bob"},
		Continuations: []string{" was happy.", " was happy."},
	}
	if !reflect.DeepEqual(task.Docs[0], want) {
		t.Errorf("got %+v\nwant %+v", task.Docs[0], want)
	}
}

func TestHellaswagPreprocess(t *testing.T) {
	tests := []struct{ in, want string }{
		{"  Cooking: [header] How to cook [title] Boil water.  ", "Cooking: How to cook. Boil water."},
		{"a [step] b [substeps] c", "a b c"},
		{"x   y", "x  y"}, // Python's replace is one non-overlapping pass
		{"[a\nb] c", "[a\nb] c"},
	}
	for _, tt := range tests {
		if got := hellaswagPreprocess(tt.in); got != tt.want {
			t.Errorf("preprocess(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestPyCapitalize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"the lady", "The lady"},
		{"then He SAYS", "Then he says"},
		{"", ""},
		{"élan VITAL", "Élan vital"},
		{"ǆemal", "ǅemal"}, // title case, not upper case
		{" x", " x"},
	}
	for _, tt := range tests {
		if got := pyCapitalize(tt.in); got != tt.want {
			t.Errorf("capitalize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestPyStrip_PythonWhitespace(t *testing.T) {
	if got := pyStrip("\x1c\u3000 a b\u2029\x1f"); got != "a b" {
		t.Errorf("got %q", got)
	}
	if got := pyRStrip(" a\u200b"); got != " a\u200b" { // ZWSP is not whitespace in Python
		t.Errorf("got %q", got)
	}
}
