// Package refllama is a float64 LLaMA forward written for tests, independent of
// internal/model: the reference that new methods (capture statistics, width masks, sparsity
// reconstruction errors) are checked against. It follows HF LlamaForCausalLM — RMSNorm,
// rotate_half RoPE (default or linear scaling), repeat_kv GQA, SwiGLU, optional biases — and
// reads every layer's head counts and FFN width from its tensors, so width-pruned checkpoints
// run too. It is slow (plain loops) and meant for tiny models.
package refllama

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// Config holds the config.json fields the reference uses.
type Config struct {
	Hidden      int     `json:"hidden_size"`
	Layers      int     `json:"num_hidden_layers"`
	Heads       int     `json:"num_attention_heads"`
	HeadDim     int     `json:"head_dim"`
	Eps         float64 `json:"rms_norm_eps"`
	RopeTheta   float64 `json:"rope_theta"`
	RopeScaling *struct {
		Type   string  `json:"rope_type"`
		Factor float64 `json:"factor"`
	} `json:"rope_scaling"`
}

// Model is a checkpoint in float64: W maps HF tensor names to row-major data ([out, in] for
// linear weights). Tests may replace entries (masked or sparsified weights) before running.
type Model struct {
	Cfg Config
	W   map[string][]float64
}

// The input points of a block's linear layers, as internal/capture names them.
const (
	AttnIn = "attn_in"
	OIn    = "o_in"
	MLPIn  = "mlp_in"
	DownIn = "down_in"
)

// Load reads config.json and model.safetensors (F32, BF16 or F16) from dir.
func Load(tb testing.TB, dir string) *Model {
	tb.Helper()
	m := &Model{W: map[string][]float64{}}
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		tb.Fatal(err)
	}
	if err := json.Unmarshal(raw, &m.Cfg); err != nil {
		tb.Fatalf("%s: %v", dir, err)
	}
	if m.Cfg.HeadDim == 0 {
		m.Cfg.HeadDim = m.Cfg.Hidden / m.Cfg.Heads
	}
	if m.Cfg.RopeTheta == 0 {
		m.Cfg.RopeTheta = 10000
	}
	if rs := m.Cfg.RopeScaling; rs != nil && rs.Type != "linear" && rs.Type != "default" {
		tb.Fatalf("%s: reference handles default and linear rope only, not %q", dir, rs.Type)
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
		if err := json.Unmarshal(rawInfo, &info); err != nil {
			tb.Fatalf("tensor %s: %v", name, err)
		}
		m.W[name] = decode(tb, name, info.Dtype, body[info.Offsets[0]:info.Offsets[1]])
	}
	return m
}

func decode(tb testing.TB, name, dtype string, b []byte) []float64 {
	switch dtype {
	case "F32":
		w := make([]float64, len(b)/4)
		for i := range w {
			w[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])))
		}
		return w
	case "BF16":
		w := make([]float64, len(b)/2)
		for i := range w {
			w[i] = float64(math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*i:])) << 16))
		}
		return w
	case "F16":
		w := make([]float64, len(b)/2)
		for i := range w {
			w[i] = half(binary.LittleEndian.Uint16(b[2*i:]))
		}
		return w
	}
	tb.Fatalf("tensor %s: dtype %s not handled by the reference", name, dtype)
	return nil
}

// half decodes IEEE 754 binary16.
func half(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	frac := float64(h & 0x3ff)
	switch exp {
	case 0:
		return sign * frac * math.Pow(2, -24)
	case 31:
		if frac == 0 {
			return sign * math.Inf(1)
		}
		return math.NaN()
	}
	return sign * (1 + frac/1024) * math.Pow(2, float64(exp-15))
}

// T returns a tensor by name (formatted), panicking when it is missing.
func (m *Model) T(format string, args ...any) []float64 {
	name := fmt.Sprintf(format, args...)
	w, ok := m.W[name]
	if !ok {
		panic("refllama: missing tensor " + name)
	}
	return w
}

// Linear returns W·x (+ b when module has a bias) for module "model.layers.L.self_attn.q_proj" etc.
func (m *Model) Linear(module string, x []float64) []float64 {
	w := m.T("%s.weight", module)
	out := MatVec(w, x)
	if b, ok := m.W[module+".bias"]; ok {
		for i := range out {
			out[i] += b[i]
		}
	}
	return out
}

// MatVec returns W·x for W of shape [len(W)/len(x), len(x)].
func MatVec(w, x []float64) []float64 {
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

// RMSNorm is LlamaRMSNorm in float64.
func (m *Model) RMSNorm(x, weight []float64) []float64 {
	var ss float64
	for _, v := range x {
		ss += v * v
	}
	r := 1 / math.Sqrt(ss/float64(len(x))+m.Cfg.Eps)
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = weight[i] * v * r
	}
	return out
}

// rope applies HF's rotate_half rotation to every head of v in place.
func (m *Model) rope(v []float64, pos int) {
	hd := m.Cfg.HeadDim
	half := hd / 2
	scale := 1.0
	if rs := m.Cfg.RopeScaling; rs != nil && rs.Type == "linear" {
		scale = rs.Factor
	}
	for h := 0; h < len(v); h += hd {
		for i := range half {
			ang := float64(pos) * math.Pow(m.Cfg.RopeTheta, -float64(2*i)/float64(hd)) / scale
			c, s := math.Cos(ang), math.Sin(ang)
			a, b := v[h+i], v[h+i+half]
			v[h+i], v[h+i+half] = a*c-b*s, b*c+a*s
		}
	}
}

// Embed returns the embeddings of ids, one row per token.
func (m *Model) Embed(ids []int) [][]float64 {
	d := m.Cfg.Hidden
	e := m.T("model.embed_tokens.weight")
	xs := make([][]float64, len(ids))
	for t, id := range ids {
		xs[t] = append([]float64(nil), e[id*d:(id+1)*d]...)
	}
	return xs
}

// Block runs decoder layer l on one window's hidden states xs [T][D] in place. tap, when not
// nil, receives each linear input point's rows [T][in] (attn_in, o_in, mlp_in, down_in).
func (m *Model) Block(l int, xs [][]float64, tap func(point string, rows [][]float64)) {
	if tap == nil {
		tap = func(string, [][]float64) {}
	}
	pre := fmt.Sprintf("model.layers.%d.", l)
	hd := m.Cfg.HeadDim
	T := len(xs)
	ins := make([][]float64, T)
	qs, ks, vs := make([][]float64, T), make([][]float64, T), make([][]float64, T)
	for t, x := range xs {
		ins[t] = m.RMSNorm(x, m.T("%sinput_layernorm.weight", pre))
		qs[t] = m.Linear(pre+"self_attn.q_proj", ins[t])
		ks[t] = m.Linear(pre+"self_attn.k_proj", ins[t])
		vs[t] = m.Linear(pre+"self_attn.v_proj", ins[t])
		m.rope(qs[t], t)
		m.rope(ks[t], t)
	}
	tap(AttnIn, ins)
	heads, kvHeads := len(qs[0])/hd, len(ks[0])/hd
	atts := make([][]float64, T)
	for t := range xs {
		att := make([]float64, heads*hd)
		for hh := range heads {
			kv := hh / (heads / kvHeads) * hd
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
		atts[t] = att
	}
	tap(OIn, atts)
	mlpIn, downIn := make([][]float64, T), make([][]float64, T)
	for t, x := range xs {
		o := m.Linear(pre+"self_attn.o_proj", atts[t])
		for i := range x {
			x[i] += o[i]
		}
		mlpIn[t] = m.RMSNorm(x, m.T("%spost_attention_layernorm.weight", pre))
		g := m.Linear(pre+"mlp.gate_proj", mlpIn[t])
		u := m.Linear(pre+"mlp.up_proj", mlpIn[t])
		for i := range g {
			g[i] = g[i] / (1 + math.Exp(-g[i])) * u[i]
		}
		downIn[t] = g
		d := m.Linear(pre+"mlp.down_proj", g)
		for i := range x {
			x[i] += d[i]
		}
	}
	tap(MLPIn, mlpIn)
	tap(DownIn, downIn)
}

// Logits applies the final norm and the LM head (tied to the embeddings when lm_head is absent).
func (m *Model) Logits(x []float64) []float64 {
	head, ok := m.W["lm_head.weight"]
	if !ok {
		head = m.T("model.embed_tokens.weight")
	}
	return MatVec(head, m.RMSNorm(x, m.T("model.norm.weight")))
}

// NLL returns the summed next-token negative log-likelihood of the windows (each token
// predicts the next, as internal/score does) with the blocks in skip removed, and the number
// of predicted tokens.
func (m *Model) NLL(windows [][]int, skip map[int]bool) (float64, int) {
	var sum float64
	n := 0
	for _, w := range windows {
		xs := m.Embed(w[:len(w)-1])
		for l := range m.Cfg.Layers {
			if !skip[l] {
				m.Block(l, xs, nil)
			}
		}
		for t, x := range xs {
			logits := m.Logits(x)
			maxL := math.Inf(-1)
			for _, v := range logits {
				maxL = max(maxL, v)
			}
			var z float64
			for _, v := range logits {
				z += math.Exp(v - maxL)
			}
			sum -= logits[w[t+1]] - maxL - math.Log(z)
			n++
		}
	}
	return sum, n
}
