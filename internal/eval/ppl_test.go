package eval

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func seq(from, to int) []int {
	var s []int
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

func TestChunks_BOSModes(t *testing.T) {
	const bos = 99
	stream := seq(10, 20) // 10 tokens
	tests := []struct {
		bos       string
		maxChunks int
		want      [][]int
	}{
		{BOSNone, 0, [][]int{{10, 11, 12, 13}, {14, 15, 16, 17}}},
		{BOSOnce, 0, [][]int{{bos, 10, 11, 12}, {13, 14, 15, 16}}},
		{BOSEvery, 0, [][]int{{bos, 10, 11, 12, 13}, {bos, 14, 15, 16, 17}}},
		{BOSEvery, 1, [][]int{{bos, 10, 11, 12, 13}}},
		{BOSOnce, 5, [][]int{{bos, 10, 11, 12}, {13, 14, 15, 16}}},
	}
	for _, tt := range tests {
		got, err := Chunks(stream, 4, tt.bos, bos, tt.maxChunks)
		if err != nil {
			t.Fatalf("%s/%d: %v", tt.bos, tt.maxChunks, err)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s/%d: got %v, want %v", tt.bos, tt.maxChunks, got, tt.want)
		}
	}
	// BOSOnce with 11 stream tokens: BOS + 11 = 12 = 3 chunks of 4.
	got, _ := Chunks(seq(10, 21), 4, BOSOnce, bos, 0)
	if len(got) != 3 {
		t.Errorf("once with 11 tokens: %d chunks, want 3", len(got))
	}
	// Chunks must not alias the stream.
	got, _ = Chunks(stream, 4, BOSNone, bos, 0)
	got[0][0] = -1
	if stream[0] != 10 {
		t.Error("chunk aliases the stream")
	}
}

func TestChunks_Errors(t *testing.T) {
	tests := []struct {
		name           string
		n, seqLen, bos int
		mode           string
		maxChunks      int
		want           string
	}{
		{"too short", 3, 4, 1, BOSNone, 0, "no chunk"},
		{"unknown bos", 10, 4, 1, "twice", 0, "--bos"},
		{"no bos id", 10, 4, -1, BOSEvery, 0, "no BOS"},
		{"seq len", 10, 1, 1, BOSNone, 0, "--seq-len"},
		{"max chunks", 10, 4, 1, BOSNone, -2, "--max-chunks"},
	}
	for _, tt := range tests {
		_, err := Chunks(seq(0, tt.n), tt.seqLen, tt.mode, tt.bos, tt.maxChunks)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tt.name, err, tt.want)
		}
	}
}

func TestPerplexity_UniformLMIsVocabSize(t *testing.T) {
	for _, vocab := range []int{2, 512, 32000} {
		chunks, err := Chunks(seq(0, 1000), 64, BOSEvery, 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		res, err := Perplexity(uniformLM{vocab: vocab, maxLen: 64}, chunks, 3, nil)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(res.PPL-float64(vocab)) > 1e-9*float64(vocab) {
			t.Errorf("vocab %d: ppl %v", vocab, res.PPL)
		}
		if res.Chunks != 15 || res.Tokens != 15*64 {
			t.Errorf("vocab %d: %d chunks, %d tokens; want 15, 960", vocab, res.Chunks, res.Tokens)
		}
	}
}

// The mean is over tokens, not chunks: chunks of different lengths weigh
// by their token counts.
func TestPerplexity_BigramLMTokenWeighted(t *testing.T) {
	lm := bigramLM{vocab: 50, maxLen: 16}
	chunks := [][]int{{1, 5, 9, 3}, {1, 2}, {7, 7, 7, 7, 7, 7, 7, 7, 7}}
	var nll float64
	var n int
	for _, c := range chunks {
		for t := 1; t < len(c); t++ {
			lp, _ := lm.logProb(c[t-1], c[t])
			nll -= lp
			n++
		}
	}
	var progress []int
	res, err := Perplexity(lm, chunks, 2, func(done, total int) {
		if total != 3 {
			t.Errorf("progress total %d", total)
		}
		progress = append(progress, done)
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Tokens != n || math.Abs(res.NLL-nll/float64(n)) > 1e-12 || math.Abs(res.PPL-math.Exp(nll/float64(n))) > 1e-9 {
		t.Errorf("got %+v, want nll %v over %d tokens", res, nll/float64(n), n)
	}
	if !reflect.DeepEqual(progress, []int{2, 3}) {
		t.Errorf("progress %v, want [2 3]", progress)
	}
}

func TestPerplexity_Errors(t *testing.T) {
	if _, err := Perplexity(uniformLM{vocab: 5, maxLen: 4}, [][]int{seq(0, 6)}, 1, nil); err == nil {
		t.Error("chunk longer than maxLen+1 accepted")
	}
	if _, err := Perplexity(uniformLM{vocab: 5, maxLen: 4}, nil, 1, nil); err == nil {
		t.Error("no chunks accepted")
	}
	if _, err := Perplexity(shortLM{uniformLM{vocab: 5, maxLen: 8}}, [][]int{seq(0, 4)}, 1, nil); err == nil {
		t.Error("LM returning too few log-probs accepted")
	}
}

func TestEvalPerplexity_UniformEndToEnd(t *testing.T) {
	p := filepath.Join(t.TempDir(), "w.raw")
	if err := os.WriteFile(p, []byte(strings.Repeat(" some line of text .\n \n", 40)), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := PPLOptions{SeqLen: 32, BOS: BOSOnce, MaxChunks: 10, BatchSize: 4}
	res, err := EvalPerplexity(uniformLM{vocab: byteVocab, maxLen: 32}, byteTokenizer{}, p, DatasetWikitext2, opts)
	if err != nil {
		t.Fatal(err)
	}
	text, _ := StreamText([]byte(strings.Repeat(" some line of text .\n \n", 40)), DatasetWikitext2, false)
	if res.StreamTokens != len(text) || res.Chunks != 10 || res.Tokens != 10*31 ||
		res.SeqLen != 32 || res.BOS != BOSOnce || res.MaxChunks != 10 || res.Dataset != DatasetWikitext2 ||
		res.DataFile != p || len(res.DataSHA256) != 64 || math.Abs(res.PPL-byteVocab) > 1e-9 {
		t.Errorf("result %+v", res)
	}
}

func TestEvalPerplexity_Errors(t *testing.T) {
	p := filepath.Join(t.TempDir(), "w.txt")
	if err := os.WriteFile(p, []byte("short"), 0o644); err != nil {
		t.Fatal(err)
	}
	lm := uniformLM{vocab: 10, maxLen: 8}
	tests := []struct {
		name string
		opts PPLOptions
		ds   string
		want []string
	}{
		{"seq len over max positions", PPLOptions{SeqLen: 9, BOS: BOSNone}, DatasetText, []string{"--seq-len 9", "max_position_embeddings 8"}},
		{"unknown bos", PPLOptions{SeqLen: 4, BOS: "both"}, DatasetText, []string{"--bos"}},
		{"unknown dataset", PPLOptions{SeqLen: 4, BOS: BOSNone}, "c4", []string{"--dataset", "c4"}},
		{"too short", PPLOptions{SeqLen: 8, BOS: BOSNone}, DatasetText, []string{p, "no chunk"}},
	}
	for _, tt := range tests {
		_, err := EvalPerplexity(lm, byteTokenizer{}, p, tt.ds, tt.opts)
		if err == nil {
			t.Errorf("%s: no error", tt.name)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", tt.name, err, w)
			}
		}
	}
}
