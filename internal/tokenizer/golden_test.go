package tokenizer

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/shortllm/shortllm/internal/testutil"
)

type goldenLine struct {
	Text             string `json:"text"`
	IDs              []int  `json:"ids"`
	IDsNoSpecial     []int  `json:"ids_no_special"`
	IDsSentencePiece []int  `json:"ids_sentencepiece"`
	Decoded          string `json:"decoded"`
	Note             string `json:"note"`
}

func readGolden(t *testing.T, name string) []goldenLine {
	t.Helper()
	path := filepath.Join(testutil.SharedDir(t, "goldens", "tokenizers"), name+".jsonl")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []goldenLine
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var g goldenLine
		if err := json.Unmarshal(sc.Bytes(), &g); err != nil {
			t.Fatalf("%s line %d: %v", path, len(lines)+1, err)
		}
		lines = append(lines, g)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// loaded caches tokenizers across tests: Llama-3's 9 MB tokenizer.json takes a while.
var loaded sync.Map

func load(t testing.TB, loader func(string) (*Tokenizer, error), elems ...string) *Tokenizer {
	t.Helper()
	path := testutil.SharedDir(t, elems...)
	if v, ok := loaded.Load(path); ok {
		return v.(*Tokenizer)
	}
	tok, err := loader(path)
	if err != nil {
		t.Fatal(err)
	}
	loaded.Store(path, tok)
	return tok
}

// mentionsSpecialText marks golden lines whose input contains special-token text, which
// Hugging Face matches as tokens and SentencePiece encodes as characters.
func mentionsSpecialText(g goldenLine) bool {
	return strings.Contains(g.Note, "special-token text") || strings.Contains(g.Note, "<s>/</s>/<unk> text")
}

// noSpecial derives the ids without BOS when a golden has only the ids with it.
func noSpecial(g goldenLine, bos int) []int {
	if g.IDsNoSpecial != nil || len(g.IDs) == 0 {
		return g.IDsNoSpecial
	}
	if g.IDs[0] == bos {
		return g.IDs[1:]
	}
	return g.IDs
}

func checkGolden(t *testing.T, tok *Tokenizer, lines []goldenLine, sentencePiece bool) {
	t.Helper()
	matched := 0
	for i, g := range lines {
		want, wantNo := g.IDs, noSpecial(g, tok.BOS())
		if sentencePiece && mentionsSpecialText(g) {
			// SentencePiece spells special-token text as characters (the note says so).
			if g.IDsSentencePiece == nil {
				if got := tok.Decode(tok.Encode(g.Text, false)); got != g.Text {
					t.Errorf("line %d %q: SentencePiece round trip %q", i, g.Text, got)
				}
				matched++
				continue
			}
			wantNo = g.IDsSentencePiece
			want = append([]int{tok.BOS()}, wantNo...)
		}
		ok := true
		if got := tok.Encode(g.Text, true); !slices.Equal(got, want) {
			t.Errorf("line %d %q: Encode(special) = %v, want %v", i, g.Text, got, want)
			ok = false
		}
		if got := tok.Encode(g.Text, false); !slices.Equal(got, wantNo) {
			t.Errorf("line %d %q: Encode = %v, want %v", i, g.Text, got, wantNo)
			ok = false
		}
		wantDec := g.Decoded
		if sentencePiece && mentionsSpecialText(g) {
			wantDec = strings.ReplaceAll(g.Text, spaceSymbol, " ")
		}
		if got := tok.Decode(want); got != wantDec {
			t.Errorf("line %d %q: Decode = %q, want %q", i, g.Text, got, wantDec)
			ok = false
		}
		if ok {
			matched++
		}
	}
	t.Logf("%d/%d golden lines matched", matched, len(lines))
}

func TestGoldenStories260K(t *testing.T) {
	lines := readGolden(t, "stories260K")
	dir := []string{"models", "stories260K"}
	t.Run("tokenizer.model", func(t *testing.T) {
		checkGolden(t, load(t, LoadSentencePiece, append(dir, "tokenizer.model")...), lines, true)
	})
	t.Run("tokenizer.json", func(t *testing.T) {
		checkGolden(t, load(t, LoadHF, append(dir, "tokenizer.json")...), lines, false)
	})
	t.Run("Load", func(t *testing.T) {
		checkGolden(t, load(t, Load, dir...), lines, false)
	})
}

func TestGoldenLlama2(t *testing.T) {
	lines := readGolden(t, "llama2")
	dir := []string{"tokenizers", "llama2"}
	t.Run("tokenizer.model", func(t *testing.T) {
		checkGolden(t, load(t, LoadSentencePiece, append(dir, "tokenizer.model")...), lines, true)
	})
	t.Run("tokenizer.json", func(t *testing.T) {
		checkGolden(t, load(t, LoadHF, append(dir, "tokenizer.json")...), lines, false)
	})
}

func TestGoldenLlama3(t *testing.T) {
	lines := readGolden(t, "llama3")
	checkGolden(t, load(t, Load, "tokenizers", "llama3"), lines, false)
}

// TestEncodePlain_MatchesSentencePiece: the tokenizer.json loader in plain mode reads text the
// way SentencePiece does ("<unk>" and "<s>" are characters), on every golden line.
func TestEncodePlain_MatchesSentencePiece(t *testing.T) {
	for _, c := range []struct{ golden, dir string }{
		{"stories260K", "models/stories260K"},
		{"llama2", "tokenizers/llama2"},
	} {
		t.Run(c.golden, func(t *testing.T) {
			hf := load(t, LoadHF, append(strings.Split(c.dir, "/"), "tokenizer.json")...)
			sp := load(t, LoadSentencePiece, append(strings.Split(c.dir, "/"), "tokenizer.model")...)
			special := 0
			for _, g := range readGolden(t, c.golden) {
				if mentionsSpecialText(g) {
					special++
				}
				got, want := hf.EncodePlain(g.Text), sp.Encode(g.Text, false)
				if !slices.Equal(got, want) {
					t.Fatalf("%q: EncodePlain %v, SentencePiece %v", g.Text, got, want)
				}
			}
			if special == 0 {
				t.Errorf("no golden line mentions special-token text; the test proves nothing")
			}
		})
	}
}
