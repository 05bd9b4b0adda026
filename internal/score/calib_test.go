package score

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shortllm/shortllm/internal/testutil"
	"github.com/shortllm/shortllm/internal/tokenizer"
)

// byteTok is a tokenizer stand-in: one id per byte, BOS = 1.
type byteTok struct{}

func (byteTok) Encode(text string, addSpecial bool) []int {
	var ids []int
	if addSpecial {
		ids = append(ids, 1)
	}
	for _, b := range []byte(text) {
		ids = append(ids, int(b))
	}
	return ids
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadCalibration_IDsFile(t *testing.T) {
	c := sharedCalib(t)
	if len(c.IDs) != 10 || c.SeqLen != 128 || c.BOS || c.SHA256 == "" {
		t.Fatalf("got %d windows of %d tokens, bos=%v, sha256=%q", len(c.IDs), c.SeqLen, c.BOS, c.SHA256)
	}
}

// TestLoadCalibration_TextWindows checks the sampling contract on a synthetic file: windows
// are SeqLen long, cut from distinct qualifying rows, and the same seed draws the same ones.
func TestLoadCalibration_TextWindows(t *testing.T) {
	var rows []string
	for i := 0; i < 20; i++ {
		rows = append(rows, strings.Repeat(string(rune('a'+i)), 5+i)) // row i has 5+i (+BOS) tokens
	}
	p := writeFile(t, "rows.txt", strings.Join(rows, "\n")+"\n")
	opts := CalibOptions{Samples: 5, SeqLen: 16, Seed: 7}
	c, err := LoadCalibration(p, byteTok{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, w := range c.IDs {
		if len(w) != 16 {
			t.Fatalf("window of %d tokens", len(w))
		}
		row := w[len(w)-1] - 'a'
		if seen[row] || 5+row+1 < 16 {
			t.Fatalf("window %v from row %d: repeated or too short a row", w, row)
		}
		seen[row] = true
	}
	again, err := LoadCalibration(p, byteTok{}, opts)
	if err != nil || !slices.EqualFunc(c.IDs, again.IDs, slices.Equal) {
		t.Fatalf("same seed drew different windows: %v vs %v (%v)", c.IDs, again.IDs, err)
	}
	opts.Seed = 8
	other, _ := LoadCalibration(p, byteTok{}, opts)
	if slices.EqualFunc(c.IDs, other.IDs, slices.Equal) {
		t.Errorf("seeds 7 and 8 drew the same windows")
	}
}

// TestLoadCalibration_BOS: with BOS a window starting at a row's beginning carries it;
// with NoBOS none does.
func TestLoadCalibration_BOS(t *testing.T) {
	p := writeFile(t, "rows.jsonl", `{"text":"abcd"}`+"\n"+`{"text":"efgh"}`+"\n")
	c, err := LoadCalibration(p, byteTok{}, CalibOptions{Samples: 2, SeqLen: 5})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range c.IDs {
		if w[0] != 1 {
			t.Errorf("window %v: a 5-token window of a 4-byte row must start with BOS", w)
		}
	}
	if _, err := LoadCalibration(p, byteTok{}, CalibOptions{Samples: 2, SeqLen: 5, NoBOS: true}); !errors.Is(err, ErrCalibration) {
		t.Errorf("without BOS no row has 5 tokens: got %v", err)
	}
}

func TestLoadCalibration_Errors(t *testing.T) {
	cases := []struct {
		name, file, content string
		opts                CalibOptions
		want                string
	}{
		{"too few rows", "a.txt", "abcdef\nab\nabcdefgh\n", CalibOptions{Samples: 3, SeqLen: 5}, "only 2 of 3 rows have at least 5 tokens"},
		{"jsonl without text", "a.jsonl", `{"body":"x"}` + "\n", CalibOptions{}, `line 1: no "text" field`},
		{"jsonl broken", "a.jsonl", `{"text":` + "\n", CalibOptions{}, "line 1:"},
		{"no windows", "a.json", `{"other": 1}`, CalibOptions{}, "no windows"},
		{"ragged", "a.json", `{"ids": [[1,2,3],[1,2]]}`, CalibOptions{}, "window 1 has 2 tokens, window 0 has 3"},
		{"negative id", "a.json", `{"ids": [[1,-2,3]]}`, CalibOptions{}, "negative token id -2"},
		{"one token", "a.json", `{"ids": [[1]]}`, CalibOptions{}, "at least 2"},
		{"seq-len mismatch", "a.json", `{"ids": [[1,2,3]]}`, CalibOptions{SeqLen: 4}, "windows have 3 tokens, 4 asked"},
		{"samples mismatch", "a.json", `{"ids": [[1,2,3]]}`, CalibOptions{Samples: 2}, "1 windows, 2 samples asked"},
		{"unknown format", "a.csv", "1,2,3", CalibOptions{}, "unknown calibration format"},
		{"not json", "a.json", "[[1,2", CalibOptions{}, "calib"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := writeFile(t, c.file, c.content)
			_, err := LoadCalibration(p, byteTok{}, c.opts)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.Contains(msg, c.want) || !strings.Contains(msg, p) || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line naming %s and containing %q", msg, p, c.want)
			}
		})
	}
}

func TestLoadCalibration_TextNeedsTokenizer(t *testing.T) {
	p := writeFile(t, "a.txt", "hello\n")
	if _, err := LoadCalibration(p, nil, CalibOptions{}); err == nil || !strings.Contains(err.Error(), "tokenizer") {
		t.Errorf("got %v, want a missing-tokenizer error", err)
	}
}

// TestLoadCalibration_SharedTextRows: every row of the shared text file is long enough for
// the default 10 × 128 windows with BOS, and an 11th sample is refused.
func TestLoadCalibration_SharedTextRows(t *testing.T) {
	path := testutil.SharedDir(t, "data", "stories", "calib10x128.jsonl")
	tok, err := tokenizer.Load(testutil.SharedDir(t, "models", "stories260K"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := LoadCalibration(path, tok, CalibOptions{Seed: DefaultSeed})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.IDs) != DefaultSamples || c.SeqLen != DefaultSeqLen || !c.BOS || c.Seed != DefaultSeed {
		t.Errorf("got %d × %d, bos=%v seed=%d", len(c.IDs), c.SeqLen, c.BOS, c.Seed)
	}
	_, err = LoadCalibration(path, tok, CalibOptions{Samples: 11})
	if !errors.Is(err, ErrCalibration) || !strings.Contains(err.Error(), "11 samples asked") {
		t.Errorf("11 samples from 10 rows: got %v", err)
	}
}

// FuzzLoadCalibration feeds arbitrary bytes to every format: no panic, and whatever loads
// is a non-empty set of equal-length windows of non-negative ids.
func FuzzLoadCalibration(f *testing.F) {
	f.Add(".json", []byte(`{"ids": [[1,2,3],[4,5,6]]}`))
	f.Add(".json", []byte(`[{"criterion":"bi","calibration":{"source":"x","ids":[[1,2]]}}]`))
	f.Add(".json", []byte(`{"calibration": null, "ids": null}`))
	f.Add(".jsonl", []byte(`{"text":"hello world"}`+"\n"+`{"text":""}`))
	f.Add(".txt", []byte("one line\nanother, longer line\r\n\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, ext string, data []byte) {
		if ext != ".json" && ext != ".jsonl" && ext != ".txt" {
			ext = ".json"
		}
		p := filepath.Join(dir, "calib"+ext)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := LoadCalibration(p, byteTok{}, CalibOptions{Samples: 1, SeqLen: 4})
		if err != nil {
			return
		}
		if len(c.IDs) == 0 || c.SeqLen < 2 {
			t.Fatalf("loaded %d windows of %d tokens", len(c.IDs), c.SeqLen)
		}
		for _, w := range c.IDs {
			if len(w) != c.SeqLen {
				t.Fatalf("window of %d tokens, seq_len %d", len(w), c.SeqLen)
			}
			for _, id := range w {
				if id < 0 {
					t.Fatalf("negative id %d", id)
				}
			}
		}
	})
}
