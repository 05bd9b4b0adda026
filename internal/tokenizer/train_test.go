package tokenizer

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// opticks is public-domain text every Go installation ships.
func opticks(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(runtime.GOROOT(), "src", "testdata", "Isaac.Newton-Opticks.txt"))
	if err != nil {
		t.Fatalf("Go's Opticks test text (shipped with every Go installation): %v", err)
	}
	return string(data)
}

func trainAndLoad(t *testing.T, text string, vocab int) (*Trained, *Tokenizer) {
	t.Helper()
	tr, err := TrainByteLevel(text, TrainOptions{VocabSize: vocab})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := tr.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tokenizer.json")
	if err := os.WriteFile(path, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	tok, err := LoadHF(path)
	if err != nil {
		t.Fatal(err)
	}
	return tr, tok
}

// TestTrainByteLevel_RoundTrip trains on part of Opticks and checks that other text, odd
// Unicode and control bytes encode and decode back to themselves, that BOS is prepended, and
// that the merges compress the training text.
func TestTrainByteLevel_RoundTrip(t *testing.T) {
	text := opticks(t)
	tr, tok := trainAndLoad(t, text[:60_000], 400)
	if tr.VocabSize() != 400 || tok.VocabSize() != 400 {
		t.Fatalf("vocab: trained %d, loaded %d; want 400", tr.VocabSize(), tok.VocabSize())
	}
	if tok.Kind() != KindHFByteLevel {
		t.Errorf("kind %s, want %s", tok.Kind(), KindHFByteLevel)
	}
	cases := []string{text[100_000:104_000], "  Light, & colours!\n\n\tΑβγ — naïve 日本語 🌈", "\x00\x01\x7f end", ""}
	for _, s := range cases {
		ids := tok.Encode(s, true)
		if len(ids) == 0 || ids[0] != tr.BOSID() {
			t.Fatalf("Encode(%.20q) = %v...; want BOS %d first", s, ids[:min(len(ids), 3)], tr.BOSID())
		}
		if got := tok.Decode(ids); got != s {
			t.Errorf("round trip of %.40q gave %.40q", s, got)
		}
	}
	sample := text[:60_000]
	if n := len(tok.Encode(sample, false)); float64(len(sample))/float64(n) < 1.8 {
		t.Errorf("%d bytes → %d tokens: merges compress less than 1.8 bytes/token", len(sample), n)
	}
}

// TestTrainByteLevel_Deterministic: the same text gives the same merges (no map order leaks).
func TestTrainByteLevel_Deterministic(t *testing.T) {
	text := opticks(t)[:20_000]
	a, _ := TrainByteLevel(text, TrainOptions{VocabSize: 320})
	b, _ := TrainByteLevel(text, TrainOptions{VocabSize: 320})
	ja, _ := a.MarshalJSON()
	jb, _ := b.MarshalJSON()
	if string(ja) != string(jb) {
		t.Fatal("two trainings on the same text wrote different tokenizer.json files")
	}
}

func TestTrainByteLevel_VocabTooSmall(t *testing.T) {
	if _, err := TrainByteLevel("abc", TrainOptions{VocabSize: 100}); err == nil {
		t.Fatal("vocab 100 accepted; want an error (256 bytes + 2 added tokens do not fit)")
	}
}
