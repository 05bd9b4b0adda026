package model

// The LLaMA forward pass as a GoMLX graph, following transformers' modeling_llama.py.
//
// Shape symbols used throughout:
//
//	B  batch            T  query tokens      S  key positions (T, or the KV-cache length)
//	D  hidden_size      F  intermediate_size V  vocab_size      L  num_hidden_layers
//	H  attention heads  Hkv key/value heads  G  = H/Hkv query heads per KV head
//	Dh head_dim

import (
	"fmt"
	"math"
	"slices"

	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph code reads like maths
)

// Params maps Hugging Face tensor names to graph nodes holding the weights.
type Params map[string]*Node

// Adapter returns the delta a LoRA-style adapter adds to a linear layer's output, given the
// layer's input x [B, T, in]; the result is [B, T, out].
type Adapter func(x *Node) *Node

// ForwardOptions are what the later stages need from one forward implementation.
type ForwardOptions struct {
	// SkipBlocks are run as identity: "the model without block i" costs no weight copy.
	SkipBlocks []int
	// CollectHidden returns the hidden state entering every block and the final one.
	CollectHidden bool
	// Adapters add to linear layers, keyed by module path, e.g. "model.layers.3.self_attn.q_proj".
	Adapters map[string]Adapter
	// Positions [T] (int32) are the absolute positions of the tokens; nil means 0..T-1.
	Positions *Node
	// Cache, when set, receives this call's keys/values at Positions and attention reads it.
	Cache *KVCache
	// FromBlock starts at that block with InputHidden [B, T, D] instead of embedding ids:
	// stages that vary one block reuse the prefix's hidden states.
	FromBlock   int
	InputHidden *Node
	// NoHead stops before the final norm and LM head (only hidden states are wanted).
	NoHead bool
	// Until, when > 0, runs blocks FromBlock..Until−1 only; with NoHead, ForwardResult.Last is
	// then that block range's output (capture runs one block at a time this way).
	Until int
	// LinearInput, when set, is called with every linear layer's input x [B, T, in] while the
	// graph is built: calibration statistics (internal/capture) are computed from these nodes.
	LinearInput func(module string, x *Node)
}

// ForwardResult holds the graph outputs.
type ForwardResult struct {
	Logits *Node   // [B, T, V]; nil with NoHead
	Hidden []*Node // with CollectHidden: Hidden[i] enters block i, Hidden[L] leaves the last block
	Last   *Node   // the hidden state leaving the last block run, before the final norm
	Cache  *KVCache
}

// KVCache holds per-layer keys and values [B, S, Hkv, Dh] for incremental decoding.
type KVCache struct {
	K, V []*Node
	DUS  bool // write with DynamicUpdateSlice (Engine.KVUpdate), not a one-hot product
}

// Forward runs the model on token ids [B, T] (int32).
// CheckSkipBlocks refuses skipped blocks the model does not have (Forward would silently
// ignore them), a block listed twice, and skipping every block.
func CheckSkipBlocks(cfg *Config, skip []int) error {
	L := cfg.NumHiddenLayers
	seen := map[int]bool{}
	for _, b := range skip {
		switch {
		case b < 0 || b >= L:
			return fmt.Errorf("--skip-blocks: block %d is outside 0..%d (the model has %d blocks)", b, L-1, L)
		case seen[b]:
			return fmt.Errorf("--skip-blocks: block %d is listed twice", b)
		}
		seen[b] = true
	}
	if L > 0 && len(seen) == L {
		return fmt.Errorf("--skip-blocks: all %d blocks are skipped", L)
	}
	return nil
}

func Forward(cfg *Config, p Params, ids *Node, opts ForwardOptions) ForwardResult {
	var h *Node
	if opts.InputHidden != nil {
		h = opts.InputHidden
	} else {
		h = Embed(p, ids)
	}
	T := h.Shape().Dimensions[1]
	pos := opts.Positions
	if pos == nil {
		pos = Iota(h.Graph(), shapeInt32(T), 0)
	}
	cos, sin := ropeTables(cfg, pos, h.DType())
	res := ForwardResult{}
	if opts.Cache != nil {
		res.Cache = &KVCache{K: slices.Clone(opts.Cache.K), V: slices.Clone(opts.Cache.V), DUS: opts.Cache.DUS}
	}
	end := cfg.NumHiddenLayers
	if opts.Until > 0 {
		end = min(opts.Until, end)
	}
	in := blockInputs{pos: pos, cos: cos, sin: sin, adapters: opts.Adapters, cache: res.Cache, tap: opts.LinearInput}
	for i := opts.FromBlock; i < end; i++ {
		if opts.CollectHidden {
			res.Hidden = append(res.Hidden, h)
		}
		if slices.Contains(opts.SkipBlocks, i) {
			continue
		}
		h = Block(cfg, p, i, h, in)
	}
	if opts.CollectHidden {
		res.Hidden = append(res.Hidden, h)
	}
	res.Last = h
	if !opts.NoHead {
		res.Logits = Head(cfg, p, h)
	}
	return res
}

// Embed looks up token embeddings: model.embed_tokens(input_ids). ids [B, T] → [B, T, D].
func Embed(p Params, ids *Node) *Node {
	return Gather(p["model.embed_tokens.weight"], InsertAxes(ids, -1))
}

// Head applies the final norm and the LM head: lm_head(norm(h)). h [B, T, D] → [B, T, V].
func Head(cfg *Config, p Params, h *Node) *Node {
	h = RMSNorm(h, p["model.norm.weight"], cfg.RMSNormEps)
	w := p["lm_head.weight"]
	if cfg.TieWordEmbeddings || w == nil {
		w = p["model.embed_tokens.weight"]
	}
	return headProduct(h, w) // [B, T, V]
}

// headProduct is h [B, T, D] · wᵀ for the LM head's w [V, D]. On SimpleGo, a product with few
// rows (decoding: B·T < 32) and many columns takes its blocked path, which pads the rows to a
// 32-row block — 32× the work at batch 1 — and re-blocks all of w; there the vocabulary is split
// into n equal parts on a batch axis, which SimpleGo runs with its row-dot kernel, one part per
// core. The sums are the same; only their grouping into kernel calls differs.
func headProduct(h, w *Node) *Node {
	dims := h.Shape().Dimensions
	B, T, D := dims[0], dims[1], dims[2]
	V := w.Shape().Dimensions[0]
	n := goHeadSplit(h.Graph(), h.DType(), B*T, V)
	if n <= 1 {
		return DotGeneral(h, []int{2}, nil, w, []int{1}, nil)
	}
	rows := B * T
	parts := Reshape(w, n, V/n, D)                                       // [n, V/n, D]
	hb := BroadcastToDims(Reshape(h, 1, rows, D), n, rows, D)            // [n, rows, D]
	out := DotGeneral(hb, []int{2}, []int{0}, parts, []int{2}, []int{0}) // [n, rows, V/n]
	return Reshape(TransposeAllAxes(out, 1, 0, 2), B, T, V)              // [B, T, V]
}

// goHeadSplit returns how many vocabulary parts headProduct uses (≤ 1: none): only on SimpleGo,
// for fewer rows than its block, the fewest parts (at least 2) that divide V and keep each
// part's rows × columns at or under its small-product limit (16 blocks).
func goHeadSplit(g *Graph, dt dtypes.DType, rows, V int) int {
	if _, ok := g.Backend().(*simplego.Backend); !ok {
		return 1
	}
	blk := 1 << simplego.DotGeneralTargetBlockLog2Dim[dt]
	limit := 16 * blk * blk
	if rows >= blk || rows*V <= limit {
		return 1
	}
	for n := max(2, (rows*V+limit-1)/limit); n <= 256 && n <= V; n++ {
		if V%n == 0 {
			return n
		}
	}
	return 1
}

type blockInputs struct {
	pos, cos, sin *Node
	adapters      map[string]Adapter
	cache         *KVCache
	tap           func(module string, x *Node)
}

// Block is one decoder layer (LlamaDecoderLayer.forward):
//
//	h = h + self_attn(input_layernorm(h));  h = h + mlp(post_attention_layernorm(h))
func Block(cfg *Config, p Params, i int, h *Node, in blockInputs) *Node {
	pre := layerPrefix(i)
	x := RMSNorm(h, p[pre+"input_layernorm.weight"], cfg.RMSNormEps)
	h = Add(h, attention(cfg, p, i, x, in))
	x = RMSNorm(h, p[pre+"post_attention_layernorm.weight"], cfg.RMSNormEps)
	return Add(h, mlp(p, pre+"mlp.", x, in))
}

func layerPrefix(i int) string { return fmt.Sprintf("model.layers.%d.", i) }

// RMSNorm is LlamaRMSNorm: weight * (x / sqrt(mean(x², -1) + eps)), computed in float32 (or
// wider) and cast back, as HF does. 1/Sqrt instead of Rsqrt: GoMLX has no Rsqrt gradient.
func RMSNorm(x, w *Node, eps float64) *Node {
	dt := x.DType()
	xf := upcast(x)
	variance := ReduceAndKeep(Square(xf), ReduceMean, -1)
	normed := Div(xf, Sqrt(AddScalar(variance, eps)))
	return Mul(ExpandLeftToRank(w, x.Rank()), ConvertDType(normed, dt))
}

// upcast promotes half-precision activations to float32 for reductions.
func upcast(x *Node) *Node {
	if x.DType() == dtypes.BFloat16 || x.DType() == dtypes.Float16 {
		return ConvertDType(x, dtypes.Float32)
	}
	return x
}

// linear is nn.Linear (y = x Wᵀ + b) plus an optional adapter delta. x [B, T, in] → [B, T, out].
func linear(p Params, module string, x *Node, in blockInputs) *Node {
	if in.tap != nil {
		in.tap(module, x)
	}
	y := DotGeneral(x, []int{2}, nil, p[module+".weight"], []int{1}, nil)
	if b := p[module+".bias"]; b != nil {
		y = Add(y, ExpandLeftToRank(b, y.Rank()))
	}
	if a := in.adapters[module]; a != nil {
		y = Add(y, a(x))
	}
	return y
}

// mlp is LlamaMLP: down_proj(silu(gate_proj(x)) * up_proj(x)).
func mlp(p Params, pre string, x *Node, in blockInputs) *Node {
	gate := linear(p, pre+"gate_proj", x, in)
	up := linear(p, pre+"up_proj", x, in)
	act := Mul(gate, Sigmoid(gate)) // silu
	return linear(p, pre+"down_proj", Mul(act, up), in)
}

// attention is LlamaAttention with grouped-query heads (repeat_kv) and rotary embeddings.
// x [B, T, D] → [B, T, D].
func attention(cfg *Config, p Params, i int, x *Node, in blockInputs) *Node {
	pre := layerPrefix(i) + "self_attn."
	dims := x.Shape().Dimensions
	B, T := dims[0], dims[1]
	// Heads come from the weights' shapes: width-pruned blocks differ (Config.Width).
	Dh := cfg.HeadDim
	H, Hkv := p[pre+"q_proj.weight"].Shape().Dimensions[0]/Dh, p[pre+"k_proj.weight"].Shape().Dimensions[0]/Dh
	G := H / Hkv

	q := Reshape(linear(p, pre+"q_proj", x, in), B, T, H, Dh)
	k := Reshape(linear(p, pre+"k_proj", x, in), B, T, Hkv, Dh)
	v := Reshape(linear(p, pre+"v_proj", x, in), B, T, Hkv, Dh)
	q, k = applyRope(q, in.cos, in.sin), applyRope(k, in.cos, in.sin)

	keyPos := in.pos
	if in.cache != nil {
		k, v = in.cache.update(i, in.pos, k, v)
		keyPos = Iota(x.Graph(), shapeInt32(k.Shape().Dimensions[1]), 0)
	}
	S := k.Shape().Dimensions[1]

	// Query head h uses KV head h / G (repeat_kv), so view q as [B, T, Hkv, G, Dh].
	qg := Reshape(q, B, T, Hkv, G, Dh)
	scores := DotGeneral(qg, []int{4}, []int{0, 2}, k, []int{3}, []int{0, 2}) // [B, Hkv, T, G, S]
	scores = MulScalar(upcast(scores), 1/math.Sqrt(float64(Dh)))
	// Causal mask as an additive bias [1, 1, T, 1, S] (0 or −1e30): broadcasting a bias is
	// cheaper than materialising a boolean mask of the scores' full shape for Where.
	allowed := LessOrEqual(InsertAxes(keyPos, 0), InsertAxes(in.pos, -1)) // [T, S]: key pos ≤ query pos
	bias := Where(allowed, ScalarZero(x.Graph(), scores.DType()), Scalar(x.Graph(), scores.DType(), -1e30))
	scores = Add(scores, Reshape(bias, 1, 1, T, 1, S))
	probs := ConvertDType(Softmax(scores, -1), v.DType())
	out := DotGeneral(probs, []int{4}, []int{0, 1}, v, []int{1}, []int{0, 2}) // [B, Hkv, T, G, Dh]
	out = Reshape(TransposeAllAxes(out, 0, 2, 1, 3, 4), B, T, H*Dh)
	return linear(p, pre+"o_proj", out, in)
}

// update writes this step's k, v [B, T, Hkv, Dh] at positions pos [T] into layer i's cache
// [B, S, Hkv, Dh] and returns the whole cache. Backends with DynamicUpdateSlice (XLA) write in
// place (xla_kvcache.go); SimpleGo has none, so there the write is a one-hot product:
// cache·(1−Σₜ onehot) + Σₜ onehot ⊗ new.
func (c *KVCache) update(i int, pos, k, v *Node) (*Node, *Node) {
	if c.DUS {
		return c.updateDUS(i, pos, k, v)
	}
	S := c.K[i].Shape().Dimensions[1]
	oneHot := OneHot(pos, S, k.DType()) // [T, S]
	keep := OneMinus(ReduceSum(oneHot, 0))
	keep = Reshape(keep, 1, S, 1, 1)
	write := func(cache, x *Node) *Node {
		placed := DotGeneral(oneHot, []int{0}, nil, x, []int{1}, nil) // [S, B, Hkv, Dh]
		placed = TransposeAllAxes(placed, 1, 0, 2, 3)
		return Add(Mul(cache, keep), placed)
	}
	c.K[i], c.V[i] = write(c.K[i], k), write(c.V[i], v)
	return c.K[i], c.V[i]
}

// applyRope is apply_rotary_pos_emb: x·cos + rotate_half(x)·sin, x [B, T, heads, Dh], cos/sin [T, Dh].
func applyRope(x, cos, sin *Node) *Node {
	T, Dh := cos.Shape().Dimensions[0], cos.Shape().Dimensions[1]
	c := Reshape(cos, 1, T, 1, Dh)
	s := Reshape(sin, 1, T, 1, Dh)
	return Add(Mul(x, c), Mul(rotateHalf(x), s))
}

// rotateHalf is cat(−x₂, x₁) over the last axis. Slicing would need Pad in its gradient, which
// SimpleGo lacks, so the halves are mixed by a constant 2×2 matrix instead.
func rotateHalf(x *Node) *Node {
	dims := x.Shape().Dimensions
	r := len(dims)
	half := dims[r-1] / 2
	split := Reshape(x, append(slices.Clone(dims[:r-1]), 2, half)...)
	mix := Const(x.Graph(), [][]float32{{0, -1}, {1, 0}}) // out[0] = −in[1]; out[1] = in[0]
	mix = ConvertDType(mix, x.DType())
	rot := DotGeneral(split, []int{r - 1}, nil, mix, []int{1}, nil) // [..., half, 2]
	perm := iotaFrom(0, r+1)
	perm[r-1], perm[r] = r, r-1
	return Reshape(TransposeAllAxes(rot, perm...), dims...)
}

// ropeTables returns cos and sin [T, Dh] for positions pos [T], as LlamaRotaryEmbedding does
// (freqs duplicated over both halves). Angles are computed in float64: the products pos·θ lose
// digits in float32 at long contexts.
func ropeTables(cfg *Config, pos *Node, dt dtypes.DType) (*Node, *Node) {
	invFreq := RopeInvFreq(cfg)
	both := append(slices.Clone(invFreq), invFreq...)
	g := pos.Graph()
	freq := Const(g, both)                                                                // [Dh]
	angles := Mul(InsertAxes(ConvertDType(pos, dtypes.Float64), -1), InsertAxes(freq, 0)) // [T, Dh]
	return ConvertDType(Cos(angles), dt), ConvertDType(Sin(angles), dt)
}

// RopeInvFreq returns the Dh/2 inverse frequencies after rope_scaling (HF's rope_init_fn for
// the default, linear and llama3 rope types).
func RopeInvFreq(cfg *Config) []float64 {
	dh := cfg.HeadDim
	inv := make([]float64, dh/2)
	for j := range inv {
		inv[j] = 1 / math.Pow(cfg.RopeTheta, float64(2*j)/float64(dh))
	}
	rs := cfg.RopeScaling
	if rs == nil {
		return inv
	}
	switch rs.Type {
	case "linear":
		for j := range inv {
			inv[j] /= rs.Factor
		}
	case "llama3":
		lowWavelen := float64(rs.OriginalMaxPositionEmbeddings) / rs.LowFreqFactor
		highWavelen := float64(rs.OriginalMaxPositionEmbeddings) / rs.HighFreqFactor
		for j, f := range inv {
			wavelen := 2 * math.Pi / f
			switch {
			case wavelen > lowWavelen:
				inv[j] = f / rs.Factor
			case wavelen >= highWavelen:
				smooth := (float64(rs.OriginalMaxPositionEmbeddings)/wavelen - rs.LowFreqFactor) / (rs.HighFreqFactor - rs.LowFreqFactor)
				inv[j] = (1-smooth)*f/rs.Factor + smooth*f
			}
		}
	}
	return inv
}

// TokenLogProbs returns log p(targets) [B, T] from logits [B, T, V] (log-softmax in float32
// or wider) and whether each target is the argmax.
func TokenLogProbs(logits, targets *Node) (logp, greedy *Node) {
	wide := upcast(logits) // also for ArgMax: XLA's ArgMax fails to build for bfloat16
	lp := LogSoftmax(wide, -1)
	dims := logits.Shape().Dimensions
	B, T := dims[0], dims[1]
	g := logits.Graph()
	bIdx := Iota(g, shapeInt32(B, T), 0)
	tIdx := Iota(g, shapeInt32(B, T), 1)
	idx := Stack([]*Node{bIdx, tIdx, ConvertDType(targets, dtypes.Int32)}, -1) // [B, T, 3]
	logp = Gather(lp, idx)
	greedy = Equal(ArgMax(wide, -1, dtypes.Int32), ConvertDType(targets, dtypes.Int32))
	return logp, greedy
}
