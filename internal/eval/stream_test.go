package eval

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStreamText_Datasets(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		dataset string
		jsonl   bool
		want    string
	}{
		// Rows keep their newline; the whitespace-only " \n" becomes "".
		{"wikitext2", " = T = \n \n A b .\nlast", DatasetWikitext2, false, " = T = \n" + "\n\n" + "" + "\n\n" + " A b .\n" + "\n\n" + "last"},
		{"wikitext2 no final newline", "a\n\nb", DatasetWikitext2, false, "a\n" + "\n\n" + "" + "\n\n" + "b"},
		{"ptb", " a b \n c <unk> \n", DatasetPTB, false, "a b\n\nc <unk>"},
		{"ptb unicode space", "\u00a0x\x1c\n", DatasetPTB, false, "x"},
		{"text", " as is \n\n", DatasetText, false, " as is \n\n"},
		{"jsonl", "{\"text\": \"one\"}\n\n{\"text\": \"two\\n\", \"id\": 3}\n", DatasetText, true, "one\n\ntwo\n"},
		{"jsonl ignores dataset", "{\"text\": \" x \"}", DatasetPTB, true, " x "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := StreamText([]byte(tt.data), tt.dataset, tt.jsonl)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestBuildStream_Errors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	empty := write("empty.txt", "")
	blank := write("blank.raw", " \n \n")
	noText := write("notext.jsonl", "{\"text\": \"a\"}\n{\"body\": \"b\"}\n")
	badJSON := write("bad.jsonl", "{\"text\": \"a\"}\n{\"text\": \n")
	ok := write("ok.txt", "hello")
	tests := []struct {
		name, path, dataset string
		wantIn              []string
		wantErr             error
	}{
		{"empty file", empty, DatasetText, []string{empty}, ErrEmptyData},
		{"whitespace only", blank, DatasetWikitext2, []string{blank}, ErrEmptyData},
		{"missing text field", noText, DatasetText, []string{noText, "line 2", `"text"`}, nil},
		{"bad json", badJSON, DatasetText, []string{badJSON, "line 2"}, nil},
		{"unknown dataset", ok, "wiki", []string{"--dataset", `"wiki"`}, nil},
		{"missing file", filepath.Join(dir, "nope.txt"), DatasetText, []string{"nope.txt"}, os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := BuildStream(tt.path, tt.dataset, byteTokenizer{})
			if err == nil {
				t.Fatal("no error")
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("multi-line error: %q", err)
			}
			for _, w := range tt.wantIn {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v is not %v", err, tt.wantErr)
			}
		})
	}
}

func TestBuildStream_Provenance(t *testing.T) {
	p := filepath.Join(t.TempDir(), "d.txt")
	if err := os.WriteFile(p, []byte("abc"), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := BuildStream(p, DatasetText, byteTokenizer{})
	if err != nil {
		t.Fatal(err)
	}
	// sha256("abc") from FIPS 180-2.
	const want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	if st.SHA256 != want || st.Path != p || st.Dataset != DatasetText {
		t.Errorf("provenance %+v", st)
	}
	if got := st.Tokens; len(got) != 3 || got[0] != 'a'+3 || got[2] != 'c'+3 {
		t.Errorf("tokens %v: BOS must not be added", got)
	}
}

func BenchmarkStreamText_Wikitext2(b *testing.B) {
	data := readShared(b, "data", "wikitext2", "wiki.test.raw")
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := StreamText(data, DatasetWikitext2, false); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBuildStream_PTB(b *testing.B) {
	path := sharedPath(b, "data", "ptb", "ptb.valid.txt")
	for b.Loop() {
		if _, err := BuildStream(path, DatasetPTB, byteTokenizer{}); err != nil {
			b.Fatal(err)
		}
	}
}
