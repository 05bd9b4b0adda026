package eval

// A minimal float64 LLaMA forward, test-only, so the perplexity protocol can
// be checked against the goldens' numbers without importing internal/model.
// It implements just what stories260K needs (F32 safetensors, no biases, no
// rope scaling) and follows HF LlamaForCausalLM: RMSNorm, rotate_half RoPE,
// repeat_kv GQA, SwiGLU.

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/shortllm/shortllm/internal/tokenizer"
)

type refConfig struct {
	Hidden     int     `json:"hidden_size"`
	FFN        int     `json:"intermediate_size"`
	Layers     int     `json:"num_hidden_layers"`
	Heads      int     `json:"num_attention_heads"`
	KVHeads    int     `json:"num_key_value_heads"`
	Vocab      int     `json:"vocab_size"`
	MaxPos     int     `json:"max_position_embeddings"`
	Eps        float64 `json:"rms_norm_eps"`
	RopeTheta  float64 `json:"rope_theta"`
	TorchDtype string  `json:"torch_dtype"`
}

type refLlama struct {
	cfg     refConfig
	weights map[string][]float64 // row-major [out, in]
}

func loadRefLlama(tb testing.TB, dir string) *refLlama {
	tb.Helper()
	m := &refLlama{weights: map[string][]float64{}}
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		tb.Fatal(err)
	}
	if err := json.Unmarshal(raw, &m.cfg); err != nil {
		tb.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		tb.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(data)
	var header map[string]json.RawMessage
	if err := json.Unmarshal(data[8:8+n], &header); err != nil {
		tb.Fatal(err)
	}
	body := data[8+n:]
	for name, rawInfo := range header {
		if name == "__metadata__" {
			continue
		}
		var info struct {
			Dtype   string `json:"dtype"`
			Offsets [2]int `json:"data_offsets"`
		}
		if err := json.Unmarshal(rawInfo, &info); err != nil || info.Dtype != "F32" {
			tb.Fatalf("tensor %s: dtype %s, %v (reference handles F32 only)", name, info.Dtype, err)
		}
		b := body[info.Offsets[0]:info.Offsets[1]]
		w := make([]float64, len(b)/4)
		for i := range w {
			w[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])))
		}
		m.weights[name] = w
	}
	return m
}

func (m *refLlama) w(format string, args ...any) []float64 {
	name := format
	if len(args) > 0 {
		name = fmt.Sprintf(format, args...)
	}
	w, ok := m.weights[name]
	if !ok {
		panic("missing tensor " + name)
	}
	return w
}

// matVec returns W·x for W of shape [len(W)/len(x), len(x)].
func matVec(w, x []float64) []float64 {
	out := make([]float64, len(w)/len(x))
	for o := range out {
		row := w[o*len(x) : (o+1)*len(x)]
		var s float64
		for i, xi := range x {
			s += row[i] * xi
		}
		out[o] = s
	}
	return out
}

func (m *refLlama) rmsNorm(x, weight []float64) []float64 {
	var ss float64
	for _, v := range x {
		ss += v * v
	}
	r := 1 / math.Sqrt(ss/float64(len(x))+m.cfg.Eps)
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = weight[i] * v * r
	}
	return out
}

// rope applies HF's rotate_half rotation to every head of v in place.
func (m *refLlama) rope(v []float64, pos, headDim int) {
	half := headDim / 2
	for h := 0; h < len(v); h += headDim {
		for i := range half {
			ang := float64(pos) * math.Pow(m.cfg.RopeTheta, -float64(2*i)/float64(headDim))
			c, s := math.Cos(ang), math.Sin(ang)
			a, b := v[h+i], v[h+i+half]
			v[h+i], v[h+i+half] = a*c-b*s, b*c+a*s
		}
	}
}

// logProbs returns log p(s[t] | s[:t]) and greedy flags for t ≥ 1.
func (m *refLlama) logProbs(s []int) Scored {
	c := m.cfg
	hd := c.Hidden / c.Heads
	T := len(s) - 1
	xs := make([][]float64, T)
	for t := range T {
		xs[t] = append([]float64(nil), m.w("model.embed_tokens.weight")[s[t]*c.Hidden:(s[t]+1)*c.Hidden]...)
	}
	for l := range c.Layers {
		ks, vs, qs := make([][]float64, T), make([][]float64, T), make([][]float64, T)
		for t, x := range xs {
			h := m.rmsNorm(x, m.w("model.layers.%d.input_layernorm.weight", l))
			qs[t] = matVec(m.w("model.layers.%d.self_attn.q_proj.weight", l), h)
			ks[t] = matVec(m.w("model.layers.%d.self_attn.k_proj.weight", l), h)
			vs[t] = matVec(m.w("model.layers.%d.self_attn.v_proj.weight", l), h)
			m.rope(qs[t], t, hd)
			m.rope(ks[t], t, hd)
		}
		for t, x := range xs {
			att := make([]float64, c.Hidden)
			for hh := range c.Heads {
				kv := hh / (c.Heads / c.KVHeads) * hd
				q := qs[t][hh*hd : (hh+1)*hd]
				scores := make([]float64, t+1)
				maxS := math.Inf(-1)
				for j := 0; j <= t; j++ {
					var d float64
					for i := range hd {
						d += q[i] * ks[j][kv+i]
					}
					scores[j] = d / math.Sqrt(float64(hd))
					maxS = max(maxS, scores[j])
				}
				var z float64
				for j := range scores {
					scores[j] = math.Exp(scores[j] - maxS)
					z += scores[j]
				}
				for j := range scores {
					for i := range hd {
						att[hh*hd+i] += scores[j] / z * vs[j][kv+i]
					}
				}
			}
			o := matVec(m.w("model.layers.%d.self_attn.o_proj.weight", l), att)
			for i := range x {
				x[i] += o[i]
			}
			h := m.rmsNorm(x, m.w("model.layers.%d.post_attention_layernorm.weight", l))
			g := matVec(m.w("model.layers.%d.mlp.gate_proj.weight", l), h)
			u := matVec(m.w("model.layers.%d.mlp.up_proj.weight", l), h)
			for i := range g {
				g[i] = g[i] / (1 + math.Exp(-g[i])) * u[i]
			}
			d := matVec(m.w("model.layers.%d.mlp.down_proj.weight", l), g)
			for i := range x {
				x[i] += d[i]
			}
		}
	}
	out := Scored{LogProbs: make([]float64, T), Greedy: make([]bool, T)}
	for t, x := range xs {
		logits := matVec(m.w("lm_head.weight"), m.rmsNorm(x, m.w("model.norm.weight")))
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

func (m *refLlama) MaxLen() int { return m.cfg.MaxPos }

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
