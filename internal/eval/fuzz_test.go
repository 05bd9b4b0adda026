package eval

import (
	"strings"
	"testing"
)

// FuzzTaskLine feeds arbitrary lines to every task parser: none may panic,
// and whatever parses must be a well-formed Doc that NewRequest accepts.
func FuzzTaskLine(f *testing.F) {
	seeds := []string{
		`{"question":"q","passage":"p","idx":0,"label":1}`,
		`{"goal":"g","sol1":"a","sol2":"b","label":0}`,
		`{"ind":0,"activity_label":"A [title] b","ctx_a":"x.","ctx_b":"the Y","endings":["e1 [step] ","e2"],"label":"1"}`,
		winoLine,
		arcLine,
		`{"id":"o","question_stem":"s","choices":{"text":["a","b"],"label":["A","B"]},"answerKey":" B"}`,
		`{"label":"1e3"}`, `null`, `{}`, `{"sentence":"_","option1":"","option2":" ","answer":"2"}`,
	}
	for i, s := range seeds {
		for task := range 7 {
			if task == i%7 || i >= 6 {
				f.Add(uint8(task), []byte(s))
			}
		}
	}
	names := TaskNames()
	f.Fuzz(func(t *testing.T, which uint8, line []byte) {
		spec, _ := lookupTask(names[int(which)%len(names)])
		doc, err := parseTaskLine(line, spec)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("multi-line error %q", err)
			}
			return
		}
		n := len(doc.Choices)
		if n < 2 || len(doc.Contexts) != n || len(doc.Continuations) != n || doc.Gold < 0 || doc.Gold >= n {
			t.Fatalf("malformed doc %+v", doc)
		}
		for i := range n {
			if doc.Choices[i] == "" || !strings.HasPrefix(doc.Continuations[i], targetDelimiter) {
				t.Fatalf("choice %d malformed: %+v", i, doc)
			}
			if _, err := NewRequest(doc.Contexts[i], doc.Continuations[i], byteTokenizer{}, 1<<16, nil); err != nil &&
				doc.Contexts[i] != "" {
				t.Fatalf("choice %d: %v", i, err)
			}
		}
	})
}

// FuzzBuildStream fuzzes the dataset-text parser behind BuildStream.
func FuzzBuildStream(f *testing.F) {
	f.Add([]byte(" = T = \n \n a b .\n"), uint8(0), false)
	f.Add([]byte(" a b \n c <unk> \n"), uint8(1), false)
	f.Add([]byte("as is"), uint8(2), false)
	f.Add([]byte("{\"text\": \"one\"}\n\n{\"text\": \"two\"}\n"), uint8(2), true)
	f.Add([]byte("{\"text\": 1}"), uint8(0), true)
	f.Add([]byte("\x1c\r\n\u00a0"), uint8(1), false)
	datasets := []string{DatasetWikitext2, DatasetPTB, DatasetText}
	f.Fuzz(func(t *testing.T, data []byte, which uint8, jsonl bool) {
		dataset := datasets[int(which)%len(datasets)]
		text, err := StreamText(data, dataset, jsonl)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("multi-line error %q", err)
			}
			return
		}
		if pyStrip(text) == "" {
			t.Fatal("accepted text without content")
		}
		if jsonl {
			return
		}
		lines := splitLinesKeepEnds(string(data))
		switch dataset {
		case DatasetText:
			if text != string(data) {
				t.Fatal("text dataset altered the file")
			}
		case DatasetPTB:
			// Stripped rows hold no "\n", so the separators give the rows back.
			if rows := strings.Split(text, rowSeparator); len(rows) != len(lines) {
				t.Fatalf("%d rows from %d lines", len(rows), len(lines))
			}
		case DatasetWikitext2:
			if strings.Count(text, "\n") < 2*(len(lines)-1) {
				t.Fatalf("fewer separators than rows")
			}
		}
	})
}
