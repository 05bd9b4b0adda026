package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph code reads like maths
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// GenerateOptions control sampling. Temperature 0 is greedy decoding.
type GenerateOptions struct {
	MaxNewTokens int
	Temperature  float64
	TopK         int     // 0 = no limit
	TopP         float64 // 0 or 1 = no nucleus cut
	Seed         uint64
	// StopIDs end generation when produced (the checkpoint's EOS ids); IgnoreEOS forces the
	// full length (speed measurements).
	StopIDs   []int
	IgnoreEOS bool
	// SkipBlocks runs the model without those blocks.
	SkipBlocks []int
	// OnToken, when set, is called with each generated id (streaming output).
	OnToken func(id int)
}

// Validate refuses settings that cannot sample (named by their CLI flags).
func (o GenerateOptions) Validate() error {
	switch {
	case o.MaxNewTokens < 1:
		return fmt.Errorf("--max-new-tokens %d: want at least 1", o.MaxNewTokens)
	case o.Temperature < 0 || math.IsNaN(o.Temperature) || math.IsInf(o.Temperature, 0):
		return fmt.Errorf("--temperature %g: want 0 (greedy) or a positive number", o.Temperature)
	case !(o.TopP >= 0 && o.TopP <= 1):
		return fmt.Errorf("--top-p %g: want a probability mass in (0, 1]", o.TopP)
	case o.TopK < 0:
		return fmt.Errorf("--top-k %d: want 0 (all) or more", o.TopK)
	}
	return nil
}

// Generate continues each prompt (all of the same length) and returns the generated ids per
// row. Keys and values are cached: the prompt runs once, then one token per step.
func (r *Runner) Generate(prompts [][]int, opts GenerateOptions) ([][]int, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	if len(prompts) == 0 || len(prompts[0]) == 0 {
		return nil, fmt.Errorf("generate: empty prompt")
	}
	cfg := r.Model.Config
	P := len(prompts[0])
	S := P + opts.MaxNewTokens
	if S > cfg.MaxPositionEmbeddings {
		return nil, fmt.Errorf("generate: prompt (%d) + new tokens (%d) exceed max_position_embeddings (%d)", P, opts.MaxNewTokens, cfg.MaxPositionEmbeddings)
	}
	if err := r.checkIDs(prompts, 0); err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	mode := r.Engine.KVUpdate
	if mode == KVUpdateDUS && !supportsDUS(r.Backend) {
		return nil, fmt.Errorf("generate: backend %s has no DynamicUpdateSlice for the in-place KV-cache write", r.Backend.Name())
	}
	B := len(prompts)
	cache := r.emptyCache(B, S)
	rng := rand.New(rand.NewPCG(opts.Seed, 0x5eed))
	out := make([][]int, B)
	done := make([]bool, B)
	cur := prompts
	pos := 0
	defer func() { freeAll(cache) }()
	for step := 0; step < opts.MaxNewTokens; step++ {
		d, next, err := r.decodeStep(cur, pos, cache, opts.SkipBlocks, mode, opts.Temperature <= 0)
		if err != nil {
			return nil, err
		}
		freeAll(cache) // device memory is not Go's to collect in time: 268 MB a step at batch 64 for 1B
		cache = next
		pos += len(cur[0])
		V := cfg.VocabSize
		cur = make([][]int, B)
		for b := 0; b < B; b++ {
			var id int
			if d.ids != nil {
				id = int(d.ids[b])
			} else {
				id = sample(d.logits[b*V:(b+1)*V], opts, rng)
			}
			cur[b] = []int{id}
			if done[b] {
				continue
			}
			out[b] = append(out[b], id)
			if opts.OnToken != nil && B == 1 {
				opts.OnToken(id)
			}
			if !opts.IgnoreEOS && slices.Contains(opts.StopIDs, id) {
				done[b] = true
			}
		}
		if allTrue(done) {
			break
		}
	}
	return out, nil
}

// freeAll releases tensors no longer used (a donated one is already empty: a no-op).
func freeAll(ts []*tensors.Tensor) {
	for _, t := range ts {
		_ = t.FinalizeAll()
	}
}

func allTrue(v []bool) bool {
	for _, b := range v {
		if !b {
			return false
		}
	}
	return true
}

// emptyCache allocates zeroed K and V [B, S, Hkv, Dh] for every layer.
func (r *Runner) emptyCache(B, S int) []*tensors.Tensor {
	cfg := r.Model.Config
	dt := r.Model.Weights["model.norm.weight"].DType()
	out := make([]*tensors.Tensor, 2*cfg.NumHiddenLayers)
	for i := range out {
		layer := i % cfg.NumHiddenLayers // K of every layer, then V of every layer
		out[i] = tensors.FromShape(shapes.Make(dt, B, S, cfg.Width(layer).NumKeyValueHeads, cfg.HeadDim))
	}
	return out
}

// decoded is one decode step's result: the last position's logits [B·V], or for greedy
// decoding only their argmax per row.
type decoded struct {
	logits []float32
	ids    []int32
}

// decodeStep runs tokens cur [B, T] at positions pos.. through the cached model and returns
// the last position's logits (or, greedy, their argmax) and the updated cache. Greedy steps
// pick the id on the device: copying B×V logits to the host each step (33 MB at batch 64 for
// a 128K vocabulary) would cost more than the step itself on a GPU.
func (r *Runner) decodeStep(cur [][]int, pos int, cache []*tensors.Tensor, skip []int, mode string, greedy bool) (decoded, []*tensors.Tensor, error) {
	cfg := r.Model.Config
	L := cfg.NumHiddenLayers
	ids, err := IDsTensor(cur)
	if err != nil {
		return decoded{}, nil, err
	}
	T := len(cur[0])
	positions := make([]int32, T)
	for i := range positions {
		positions[i] = int32(pos + i)
	}
	args := append([]*tensors.Tensor{ids, tensors.FromFlatDataAndDimensions(positions, T)}, cache...)
	// The cache inputs are not used after this step (Generate keeps the outputs), so their
	// buffers can be donated: XLA then updates the cache in place.
	donate := make([]bool, len(args))
	if r.Engine.DonateKV {
		for i := 2; i < len(args); i++ {
			donate[i] = true
		}
	}
	key := "decode/" + mode + "/" + SkipKey(skip)
	if greedy {
		key += "/argmax"
	}
	out, err := r.RunDonating(key, func(p Params, in []*Node) []*Node {
		kv := &KVCache{K: in[2 : 2+L], V: in[2+L : 2+2*L], DUS: mode == KVUpdateDUS}
		// The head runs on the last position only: a 128-token prompt at batch 64 would
		// otherwise make 64×128 rows of 128K logits to keep 64 of them.
		res := Forward(cfg, p, in[0], ForwardOptions{SkipBlocks: skip, Positions: in[1], Cache: kv,
			NoHead: true, CollectHidden: true})
		h := res.Hidden[len(res.Hidden)-1]
		B, T := h.Shape().Dimensions[0], h.Shape().Dimensions[1]
		last := Head(cfg, p, Slice(h, AxisRange(), AxisElem(T-1), AxisRange())) // [B, 1, V]
		logits := ConvertDType(Reshape(last, B, cfg.VocabSize), dtypes.Float32)
		outs := []*Node{logits}
		if greedy {
			outs[0] = ArgMax(logits, -1, dtypes.Int32) // first index among ties, as the host loop
		}
		outs = append(outs, res.Cache.K...)
		return append(outs, res.Cache.V...)
	}, donate, args...)
	if err != nil {
		return decoded{}, nil, err
	}
	if greedy {
		return decoded{ids: tensors.MustCopyFlatData[int32](out[0])}, out[1:], nil
	}
	return decoded{logits: tensors.MustCopyFlatData[float32](out[0])}, out[1:], nil
}

// sample picks the next id: argmax at temperature 0, else softmax(logits/T) restricted to
// the top-k ids and the smallest prefix of probability ≥ top-p (HF's warper order).
func sample(logits []float32, opts GenerateOptions, rng *rand.Rand) int {
	if opts.Temperature <= 0 {
		best := 0
		for i, v := range logits {
			if v > logits[best] {
				best = i
			}
		}
		return best
	}
	idx := make([]int, len(logits))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return logits[idx[a]] > logits[idx[b]] })
	if opts.TopK > 0 && opts.TopK < len(idx) {
		idx = idx[:opts.TopK]
	}
	probs := make([]float64, len(idx))
	top := float64(logits[idx[0]])
	var sum float64
	for i, id := range idx {
		probs[i] = math.Exp((float64(logits[id]) - top) / opts.Temperature)
		sum += probs[i]
	}
	if opts.TopP > 0 && opts.TopP < 1 {
		var acc float64
		for i := range probs {
			acc += probs[i] / sum
			if acc >= opts.TopP {
				idx, probs = idx[:i+1], probs[:i+1]
				break
			}
		}
		sum = 0
		for _, p := range probs {
			sum += p
		}
	}
	u := rng.Float64() * sum
	for i, p := range probs {
		u -= p
		if u <= 0 {
			return idx[i]
		}
	}
	return idx[len(idx)-1]
}
