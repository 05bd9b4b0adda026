package eval

// The float64 reference LLaMA (independent of internal/model) as an LM, so the
// perplexity protocol can be checked against the goldens' numbers.

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/shortllm/shortllm/internal/testutil/refllama"
	"github.com/shortllm/shortllm/internal/tokenizer"
)

// refLlama adapts the shared float64 reference (internal/testutil/refllama) to the LM
// interface the perplexity and zero-shot code take.
type refLlama struct {
	*refllama.Model
	maxPos int
}

func loadRefLlama(tb testing.TB, dir string) *refLlama {
	tb.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var c struct {
		MaxPos int `json:"max_position_embeddings"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		tb.Fatal(err)
	}
	return &refLlama{Model: refllama.Load(tb, dir), maxPos: c.MaxPos}
}

// logProbs returns log p(s[t] | s[:t]) and greedy flags for t ≥ 1.
func (m *refLlama) logProbs(s []int) Scored {
	xs := m.Embed(s[:len(s)-1])
	for l := range m.Cfg.Layers {
		m.Block(l, xs, nil)
	}
	T := len(xs)
	out := Scored{LogProbs: make([]float64, T), Greedy: make([]bool, T)}
	for t, x := range xs {
		logits := m.Logits(x)
		best := 0
		for v, l := range logits {
			if l > logits[best] {
				best = v
			}
		}
		var z float64
		for _, l := range logits {
			z += math.Exp(l - logits[best])
		}
		out.LogProbs[t] = logits[s[t+1]] - logits[best] - math.Log(z)
		out.Greedy[t] = s[t+1] == best
	}
	return out
}

func (m *refLlama) MaxLen() int { return m.maxPos }

// Score runs sequences in parallel; the reference is slow and tests share
// two cores, so it uses what GOMAXPROCS allows.
func (m *refLlama) Score(seqs [][]int) ([]Scored, error) {
	out := make([]Scored, len(seqs))
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i, s := range seqs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			out[i] = m.logProbs(s)
			<-sem
		}()
	}
	wg.Wait()
	return out, nil
}

// The reference itself must reproduce the forward golden before its
// perplexities mean anything.
func TestRefLlama_ForwardGolden(t *testing.T) {
	m := loadRefLlama(t, sharedPath(t, "models", "stories260K"))
	var g struct {
		ProbeIDs []int     `json:"probe_ids"`
		NLL      []float64 `json:"nll"`
	}
	if err := json.Unmarshal(readShared(t, "goldens", "stories260K.forward.json"), &g); err != nil {
		t.Fatal(err)
	}
	got := m.logProbs(g.ProbeIDs)
	if len(g.NLL) != len(got.LogProbs) {
		t.Fatalf("%d nll values in golden, %d computed", len(g.NLL), len(got.LogProbs))
	}
	for i, nll := range g.NLL {
		if math.Abs(-got.LogProbs[i]-nll) > 1e-9 {
			t.Fatalf("position %d: nll %v, golden %v", i+1, -got.LogProbs[i], nll)
		}
	}
}

// EvalPerplexity with the reference model must reproduce the Shortened
// LLaMA perplexities of the goldens, which pins down row handling, joining,
// tokenisation and chunking, not just the counts.
func TestEvalPerplexity_Golden(t *testing.T) {
	if testing.Short() {
		t.Skip("slow reference forward")
	}
	m := loadRefLlama(t, sharedPath(t, "models", "stories260K"))
	sp, err := tokenizer.LoadSentencePiece(sharedPath(t, "models", "stories260K", "tokenizer.model"))
	if err != nil {
		t.Fatal(err)
	}
	tok := spPlainTokenizer{realTokenizer(t), sp}
	var g struct {
		SeqLen  int `json:"seq_len"`
		Results []struct {
			Dataset, Path, BOS string
			MaxChunks          int     `json:"max_chunks"`
			PPL                float64 `json:"ppl"`
		} `json:"results"`
	}
	if err := json.Unmarshal(readShared(t, "goldens", "stories260K.ppl64.json"), &g); err != nil {
		t.Fatal(err)
	}
	// Three of the six runs keep the test short while covering every dataset
	// layout and both BOS modes.
	keep := map[string]bool{"ptb/once": true, "wikitext2/every": true, "text/once": true}
	for _, r := range g.Results {
		if !keep[r.Dataset+"/"+r.BOS] {
			continue
		}
		path := sharedPath(t, strings.Split(r.Path, "/")...)
		res, err := EvalPerplexity(m, tok, path, r.Dataset, PPLOptions{SeqLen: g.SeqLen, BOS: r.BOS, MaxChunks: r.MaxChunks, BatchSize: 8})
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(res.PPL-r.PPL) > 1e-9*r.PPL {
			t.Errorf("%s bos %s: ppl %.12f, golden %.12f", r.Dataset, r.BOS, res.PPL, r.PPL)
		} else {
			t.Logf("%s bos %s: ppl %.12f matches golden", r.Dataset, r.BOS, res.PPL)
		}
	}
}

// spPlainTokenizer adds PlainEncoder to the HF tokenizer through the
// SentencePiece model of the same vocabulary, which reads "<unk>" as text.
type spPlainTokenizer struct {
	*tokenizer.Tokenizer
	sp *tokenizer.Tokenizer
}

func (t spPlainTokenizer) EncodePlain(text string) []int { return t.sp.Encode(text, false) }

// With Hugging Face semantics PTB's "<unk>" becomes token 0 and the PTB golden is missed;
// the project's tokenizer implements PlainEncoder, so corpus streams spell it out.
func TestBuildStream_PlainEncoderForSpecialText(t *testing.T) {
	tok := realTokenizer(t)
	p := filepath.Join(t.TempDir(), "p.txt")
	if err := os.WriteFile(p, []byte(" a <unk> b \n"), 0o644); err != nil {
		t.Fatal(err)
	}
	plain, err := BuildStream(p, DatasetPTB, tok)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(plain.Tokens, 0) || !slices.Contains(tok.Encode("a <unk> b", false), 0) {
		t.Errorf("stream %v should spell <unk> out; Encode should hold id 0", plain.Tokens)
	}
}
