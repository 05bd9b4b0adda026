package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shortllm/shortllm/internal/testutil"
)

// TestGreedy200 decodes llama2.c's greedy sample: its ids start with BOS, and llama2.c
// drops the leading space of the first piece after BOS, as Decode's Strip step does.
func TestGreedy200(t *testing.T) {
	dir := testutil.SharedDir(t, "goldens")
	want, err := os.ReadFile(filepath.Join(dir, "stories260K.greedy200.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var fwd struct {
		GreedyIDs []int `json:"greedy_ids"`
	}
	buf, err := os.ReadFile(filepath.Join(dir, "stories260K.forward.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(buf, &fwd); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []*Tokenizer{
		load(t, Load, "models", "stories260K"),
		load(t, LoadSentencePiece, "models", "stories260K", "tokenizer.model"),
	} {
		if fwd.GreedyIDs[0] != tok.BOS() {
			t.Fatalf("greedy ids start with %d, not BOS %d", fwd.GreedyIDs[0], tok.BOS())
		}
		if got := tok.Decode(fwd.GreedyIDs); got != string(want) {
			t.Errorf("%s: Decode(greedy_ids) =\n%q\nwant\n%q", tok.Kind(), got, want)
		}
	}
}

func TestSpecialIDs(t *testing.T) {
	cases := []struct {
		name          string
		tok           *Tokenizer
		kind          string
		bos, eos, pad int
		vocab         int
	}{
		{"stories260K", load(t, Load, "models", "stories260K"), KindHFBPE, 1, 2, -1, 512},
		{"stories260K.model", load(t, LoadSentencePiece, "models", "stories260K", "tokenizer.model"), KindSentencePiece, 1, 2, -1, 512},
		{"llama2.model", load(t, LoadSentencePiece, "tokenizers", "llama2", "tokenizer.model"), KindSentencePiece, 1, 2, -1, 32000},
		{"llama3", load(t, Load, "tokenizers", "llama3"), KindHFByteLevel, 128000, 128009, -1, 128256},
	}
	for _, c := range cases {
		tk := c.tok
		if tk.Kind() != c.kind || tk.BOS() != c.bos || tk.EOS() != c.eos || tk.PAD() != c.pad || tk.VocabSize() != c.vocab {
			t.Errorf("%s: kind %s bos %d eos %d pad %d vocab %d, want %s %d %d %d %d", c.name,
				tk.Kind(), tk.BOS(), tk.EOS(), tk.PAD(), tk.VocabSize(), c.kind, c.bos, c.eos, c.pad, c.vocab)
		}
		s, ok := tk.IDToToken(c.bos)
		if id, ok2 := tk.TokenToID(s); !ok || !ok2 || id != c.bos {
			t.Errorf("%s: IDToToken/TokenToID(%d) round trip gave %q, %d", c.name, c.bos, s, id)
		}
		if _, ok := tk.IDToToken(c.vocab); ok {
			t.Errorf("%s: IDToToken(%d) should fail", c.name, c.vocab)
		}
	}
}

func TestLoadPrefersTokenizerJSON(t *testing.T) {
	if k := load(t, Load, "tokenizers", "llama2").Kind(); k != KindHFBPE {
		t.Errorf("Load(llama2) kind %s, want %s", k, KindHFBPE)
	}
}

// TestLongInputLinear guards against quadratic merging: SentencePiece and HF without a
// pre-tokenizer see a text without spaces as one word.
func TestLongInputLinear(t *testing.T) {
	text := strings.Repeat("Thequickbrownfox,jumpsoverthelazydog.", 5000) // 185 KB, one word
	for _, tok := range []*Tokenizer{
		load(t, LoadSentencePiece, "tokenizers", "llama2", "tokenizer.model"),
		load(t, Load, "tokenizers", "llama2"),
	} {
		start := time.Now()
		ids := tok.Encode(text, false)
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s: %d bytes took %v", tok.Kind(), len(text), d)
		}
		if got := tok.Decode(ids); got != text {
			t.Errorf("%s: long round trip differs", tok.Kind())
		}
	}
}

// TestSplitAtSpaceIsExact checks that cutting words before "▁" runs, an optimisation,
// gives the same ids as merging the whole text at once.
func TestSplitAtSpaceIsExact(t *testing.T) {
	text := "  Hello,  world!\n\tIt's   ▁▁ 12345 é😀 the end  "
	for _, tok := range []*Tokenizer{
		load(t, LoadSentencePiece, "tokenizers", "llama2", "tokenizer.model"),
		load(t, Load, "tokenizers", "llama2"),
		load(t, Load, "models", "stories260K"),
	} {
		if !tok.splitAtSpace {
			t.Fatalf("%s: expected splitAtSpace", tok.Kind())
		}
		whole := *tok
		whole.splitAtSpace = false
		whole.cache = &wordCache{}
		if got, want := tok.Encode(text, true), whole.Encode(text, true); !slices.Equal(got, want) {
			t.Errorf("%s: split %v, whole %v", tok.Kind(), got, want)
		}
	}
}

func TestLossyUTF8(t *testing.T) {
	cases := map[string]string{
		"ok":               "ok",
		"\xF0\x9F\x98":     "\uFFFD",
		"\xFF\xFEa":        "\uFFFD\uFFFDa",
		"a\xE2\x82":        "a\uFFFD",
		"\xED\xA0\x80":     "\uFFFD\uFFFD\uFFFD",
		"\xC3\xA9\xC3":     "é\uFFFD",
		"\xF0\x9F\x98\x80": "😀",
	}
	for in, want := range cases {
		if got := lossyUTF8([]byte(in)); got != want {
			t.Errorf("lossyUTF8(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestByteLevelTable(t *testing.T) {
	seen := map[rune]bool{}
	for b := 0; b < 256; b++ {
		r := byteLevelRune(byte(b))
		if seen[r] {
			t.Fatalf("rune %U used twice", r)
		}
		seen[r] = true
		if back, ok := byteLevelByte(r); !ok || back != byte(b) {
			t.Fatalf("byte %#x -> %U -> %#x", b, r, back)
		}
	}
	if byteLevelRune(' ') != 'Ġ' || byteLevelRune('\n') != 'Ċ' {
		t.Error("space/newline are not Ġ/Ċ")
	}
}

func TestSplitBehaviors(t *testing.T) {
	find := func(s string) [][2]int { return literalSpans(s, "-") }
	cases := map[string]string{
		behaviorIsolated:           "a|-|b|-|-|c",
		behaviorRemoved:            "a|b|c",
		behaviorMergedWithPrevious: "a-|b-|-|c",
		behaviorMergedWithNext:     "a|-b|-|-c",
		behaviorContiguous:         "a|-|b|--|c",
	}
	for b, want := range cases {
		got := strings.Join(splitPreTokenizer(find, b, false)([]string{"a-b--c"}, true), "|")
		if got != want {
			t.Errorf("%s: %q, want %q", b, got, want)
		}
	}
}

// TestHandWrittenRegex checks the hand-written splitters against regexp2 running the
// same pattern.
func TestHandWrittenRegex(t *testing.T) {
	inputs := []string{
		"Hello world!  It's 12345 o'clock\n\n  \tdone.\r\n",
		"I'LL DON'T 'Re  ,,,x  \u00a0y\u3000\u3000z 😀😀 ٣٤٥٦ ",
		"   leading\n  \n trailing   ",
	}
	for _, p := range []string{llama3Pattern, gpt2Pattern} {
		re, err := compileRegexWith2(p)
		if err != nil {
			t.Fatal(err)
		}
		fast, _ := compileRegex(p)
		for _, in := range inputs {
			if got, want := fast(in), re(in); !equalSpans(got, want) {
				t.Errorf("pattern %.20q on %q: %v, regexp2 %v", p, in, got, want)
			}
		}
	}
}

func equalSpans(a, b [][2]int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestConcurrentEncode shares one tokenizer (and its word cache) between goroutines;
// run with -race.
func TestConcurrentEncode(t *testing.T) {
	tok := load(t, Load, "models", "stories260K")
	want := tok.Encode("Once upon a time, there was a little girl.", true)
	done := make(chan []int)
	for range 4 {
		go func() { done <- tok.Encode("Once upon a time, there was a little girl.", true) }()
	}
	for range 4 {
		if got := <-done; !slices.Equal(got, want) {
			t.Errorf("concurrent Encode = %v, want %v", got, want)
		}
	}
}
