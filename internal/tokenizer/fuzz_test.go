package tokenizer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/shortllm/shortllm/internal/testutil"
)

// sharedSeed returns a shared file's bytes, or nil when ../shared is absent.
func sharedSeed(elems ...string) []byte {
	p := filepath.Join(append([]string{"..", "..", "..", "shared"}, elems...)...)
	b, err := os.ReadFile(p)
	if err != nil {
		return nil
	}
	return b
}

var fuzzTexts = []string{"", " ", "Hello world", "a  b\n\nc\t", "<s>x</s>", "é😀\u2581z", "1234567 it's"}

// exercise encodes and decodes a few texts to catch panics in a freshly parsed tokenizer.
func exercise(tok *Tokenizer) {
	for _, s := range fuzzTexts {
		tok.Decode(tok.Encode(s, true))
	}
	tok.Decode([]int{-1, 0, 1, 2, 3, 1 << 30})
}

func FuzzSentencePieceModel(f *testing.F) {
	f.Add(tinySPModel())
	if b := sharedSeed("models", "stories260K", "tokenizer.model"); b != nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseSPModel(data)
		if err != nil {
			return
		}
		exercise(newSPTokenizer(m))
	})
}

func FuzzHFTokenizerJSON(f *testing.F) {
	f.Add([]byte(strings.Replace(tinyHF, "MERGES", `["a b"]`, 1)))
	if b := sharedSeed("models", "stories260K", "tokenizer.json"); b != nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := parseHF(data)
		if err != nil {
			return
		}
		exercise(tok)
	})
}

// FuzzEncodeDecode checks that decoding inverts encoding: exactly for byte-level BPE,
// and for SentencePiece with byte fallback up to "▁" reading as a space. Text holding
// special-token text is skipped for Hugging Face files, which match it as tokens.
func FuzzEncodeDecode(f *testing.F) {
	for _, s := range fuzzTexts {
		f.Add(s)
	}
	stories := load(f, LoadSentencePiece, "models", "stories260K", "tokenizer.model")
	storiesHF := load(f, LoadHF, "models", "stories260K", "tokenizer.json")
	llama3 := load(f, Load, "tokenizers", "llama3")
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			llama3.Decode(llama3.Encode(s, true))
			stories.Decode(stories.Encode(s, true))
			return
		}
		if got := stories.Decode(stories.Encode(s, true)); got != strings.ReplaceAll(s, spaceSymbol, " ") {
			t.Errorf("sentencepiece: %q -> %q", s, got)
		}
		if !strings.Contains(s, "<") {
			if got := storiesHF.Decode(storiesHF.Encode(s, true)); got != strings.ReplaceAll(s, spaceSymbol, " ") {
				t.Errorf("hf: %q -> %q", s, got)
			}
		}
		if !strings.Contains(s, "<|") {
			if got := llama3.Decode(llama3.Encode(s, true)); got != s {
				t.Errorf("llama3: %q -> %q", s, got)
			}
		}
		checkSplitters(t, s)
	})
}

// checkSplitters compares the hand-written pre-tokenizer regexes with regexp2.
func checkSplitters(t *testing.T, s string) {
	for _, p := range []string{llama3Pattern, gpt2Pattern} {
		re, err := compileRegexWith2(p)
		if err != nil {
			t.Fatal(err)
		}
		fast, _ := compileRegex(p)
		if got, want := fast(s), re(s); !equalSpans(got, want) {
			t.Errorf("pattern %.20q on %q: %v, regexp2 %v", p, s, got, want)
		}
	}
}

func BenchmarkEncodeWikiText2(b *testing.B) {
	text, err := os.ReadFile(filepath.Join(testutil.SharedDir(b, "data", "wikitext2"), "wiki.test.raw"))
	if err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name   string
		loader func(string) (*Tokenizer, error)
		elems  []string
	}{
		{"stories260K-sentencepiece", LoadSentencePiece, []string{"models", "stories260K", "tokenizer.model"}},
		{"stories260K-hf", Load, []string{"models", "stories260K"}},
		{"llama2-sentencepiece", LoadSentencePiece, []string{"tokenizers", "llama2", "tokenizer.model"}},
		{"llama2-hf", Load, []string{"tokenizers", "llama2"}},
		{"llama3-hf", Load, []string{"tokenizers", "llama3"}},
	}
	for _, c := range cases {
		tok := load(b, c.loader, c.elems...)
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				tok.Encode(string(text), true)
			}
		})
	}
}
