package search

import (
	"container/list"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph code reads like maths
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/shortllm/shortllm/internal/model"
)

// Objective is what every search minimises: the mean next-token NLL (nats per predicted
// token) of the calibration windows, run by the model with a set of blocks skipped — the
// same number `eval ppl --skip-blocks` reports as nll on those windows. No checkpoint is
// written per candidate.
//
// Candidates share work twice over. A set seen before costs nothing (memo). And the hidden
// state entering block c depends only on which blocks below c are removed, so states are
// kept (LRU, bounded in bytes) keyed by (c, removed blocks below c): a new set starts from
// the deepest kept state its prefix matches and runs only the blocks after it.
//
// Cost is counted in block-forwards: one block run over all calibration windows. A full
// forward is L block-forwards; Forwards reports block-forwards / L. The embedding lookup and
// the LM head (once per new set) are not counted.
type Objective struct {
	r      *model.Runner
	L      int
	parts  []part
	tokens float64
	points []int // blocks whose entry state is worth keeping: where candidate sets differ

	memo   map[string]float64
	states *stateCache
	blocks int // block-forwards spent
	evals  int // distinct sets run
}

// part is one micro-batch of windows: inputs and next-token labels.
type part struct{ ids, labels *tensors.Tensor }

// DefaultCacheBytes bounds the kept hidden states.
const DefaultCacheBytes = 1 << 30

// NewObjective prepares the objective on windows (each at least 2 tokens, already checked
// against the model) in micro-batches of batch windows. points are the blocks where the
// sets to be evaluated first differ (the search's candidates); any set may be evaluated.
func NewObjective(r *model.Runner, windows [][]int, batch int, points []int, cacheBytes int64) (*Objective, error) {
	o := &Objective{r: r, L: r.Model.Config.NumHiddenLayers, memo: map[string]float64{},
		points: slices.Sorted(slices.Values(points))}
	for i := 0; i < len(windows); i += batch {
		rows := windows[i:min(i+batch, len(windows))]
		in, lab := make([][]int, len(rows)), make([][]int, len(rows))
		for j, w := range rows {
			in[j], lab[j] = w[:len(w)-1], w[1:]
		}
		ids, err := model.IDsTensor(in)
		if err != nil {
			return nil, err
		}
		labels, err := model.IDsTensor(lab)
		if err != nil {
			return nil, err
		}
		o.parts = append(o.parts, part{ids, labels})
		o.tokens += float64(len(rows) * (len(rows[0]) - 1))
	}
	if cacheBytes <= 0 {
		cacheBytes = DefaultCacheBytes
	}
	// One entry holds every micro-batch's [B, T−1, D] state; at least a full walk's worth of
	// entries must fit, so the state an evaluation starts from is never evicted under it.
	cfg := r.Model.Config
	entry := int64(len(windows)*(len(windows[0])-1)*cfg.HiddenSize) * 4
	o.states = newStateCache(max(int(cacheBytes/max(entry, 1)), o.L+2))
	return o, nil
}

// Forwards is the work spent so far in full-forward equivalents (block-forwards / L).
func (o *Objective) Forwards() float64 { return float64(o.blocks) / float64(o.L) }

// Evaluated counts the distinct sets run.
func (o *Objective) Evaluated() int { return o.evals }

// Close frees the kept hidden states.
func (o *Objective) Close() { o.states.clear() }

// Cost is the block-forwards Eval(removed) would spend now: 0 for a set seen before.
func (o *Objective) Cost(removed []int) int {
	S := normSet(removed)
	if _, ok := o.memo[setKey(S)]; ok {
		return 0
	}
	from, _ := o.start(S)
	return o.runCount(S, from)
}

// Eval returns the mean calibration NLL of the model without the blocks in removed.
func (o *Objective) Eval(removed []int) (float64, error) {
	S := normSet(removed)
	key := setKey(S)
	if v, ok := o.memo[key]; ok {
		return v, nil
	}
	for _, b := range S {
		if b < 0 || b >= o.L {
			return 0, fmt.Errorf("block %d outside [0, %d)", b, o.L)
		}
	}
	from, hs := o.start(S)
	hs, kept, err := o.walk(S, from, hs)
	if err != nil {
		return 0, err
	}
	var nll float64
	for i, p := range o.parts {
		s, err := o.headNLL(hs[i], p.labels)
		if err != nil {
			return 0, err
		}
		nll += s
	}
	if !kept {
		finalize(hs)
	}
	v := nll / o.tokens
	o.memo[key] = v
	o.evals++
	return v, nil
}

// start finds the deepest kept state S's prefix matches: the entry of block c with the
// blocks of S below c removed. nil states mean "embed the windows and start at block 0".
func (o *Objective) start(S []int) (int, []*tensors.Tensor) {
	pts := o.storePoints(S)
	for i := len(pts) - 1; i >= 0; i-- {
		if hs, ok := o.states.get(stateKey(pts[i], S)); ok {
			return pts[i], hs
		}
	}
	return 0, nil
}

// storePoints are the blocks (ascending) whose entry state is kept for S. A block right
// after a removed one is left out: its entry state is the removed block's, kept under the
// lower key, so every kept tensor has exactly one key.
func (o *Objective) storePoints(S []int) []int {
	var pts []int
	for _, c := range o.points {
		if !slices.Contains(S, c-1) {
			pts = append(pts, c)
		}
	}
	for _, c := range S {
		if !slices.Contains(S, c-1) && !slices.Contains(o.points, c) {
			pts = append(pts, c)
		}
	}
	slices.Sort(pts)
	return pts
}

// runCount is the number of blocks walk runs from block from.
func (o *Objective) runCount(S []int, from int) int {
	n := 0
	for b := from; b < o.L; b++ {
		if !slices.Contains(S, b) {
			n++
		}
	}
	return n
}

// walk runs blocks from..L−1 except S on the states entering from (embedding the windows when
// hs is nil), keeping the entry state at each store point. It returns the final states and
// whether the cache owns them (then the caller must not free them).
func (o *Objective) walk(S []int, from int, hs []*tensors.Tensor) ([]*tensors.Tensor, bool, error) {
	kept := hs != nil // hs belongs to the cache: never free it here
	if hs == nil {
		var err error
		if hs, err = o.embed(); err != nil {
			return nil, false, err
		}
	}
	pts := o.storePoints(S)
	for b := from; b < o.L; b++ {
		if !kept && slices.Contains(pts, b) {
			kept = o.states.put(stateKey(b, S), hs)
		}
		if slices.Contains(S, b) {
			continue
		}
		next := make([]*tensors.Tensor, len(hs))
		for i, h := range hs {
			out, err := o.block(b, h)
			if err != nil {
				return nil, false, err
			}
			next[i] = out
		}
		if !kept {
			finalize(hs)
		}
		hs, kept = next, false
		o.blocks++
	}
	return hs, kept, nil
}

func (o *Objective) embed() ([]*tensors.Tensor, error) {
	hs := make([]*tensors.Tensor, len(o.parts))
	for i, p := range o.parts {
		out, err := o.r.Run("search/embed", func(w model.Params, x []*Node) []*Node {
			return []*Node{model.Embed(w, x[0])}
		}, p.ids)
		if err != nil {
			return nil, err
		}
		hs[i] = out[0]
	}
	return hs, nil
}

// block runs block b alone on h [B, T, D]: Forward from b until b+1.
func (o *Objective) block(b int, h *tensors.Tensor) (*tensors.Tensor, error) {
	cfg := o.r.Model.Config
	out, err := o.r.Run("search/block/"+strconv.Itoa(b), func(w model.Params, x []*Node) []*Node {
		res := model.Forward(cfg, w, nil, model.ForwardOptions{FromBlock: b, Until: b + 1, InputHidden: x[0], NoHead: true})
		return []*Node{res.Last}
	}, h)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// headNLL applies the final norm and LM head to h and returns the summed NLL of labels.
func (o *Objective) headNLL(h, labels *tensors.Tensor) (float64, error) {
	cfg := o.r.Model.Config
	out, err := o.r.Run("search/head-nll", func(w model.Params, x []*Node) []*Node {
		s, _ := model.NLLSum(model.Head(cfg, w, x[0]), x[1])
		return []*Node{ConvertDType(s, dtypes.Float64)}
	}, h, labels)
	if err != nil {
		return 0, err
	}
	return tensors.MustCopyFlatData[float64](out[0])[0], nil
}

func finalize(ts []*tensors.Tensor) {
	for _, t := range ts {
		_ = t.FinalizeAll()
	}
}

// normSet sorts and de-duplicates a block set.
func normSet(s []int) []int {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

func setKey(S []int) string {
	parts := make([]string, len(S))
	for i, b := range S {
		parts[i] = strconv.Itoa(b)
	}
	return strings.Join(parts, ",")
}

// stateKey names the state entering block c with S's blocks below c removed.
func stateKey(c int, S []int) string {
	var below []int
	for _, b := range S {
		if b < c {
			below = append(below, b)
		}
	}
	return strconv.Itoa(c) + "|" + setKey(below)
}

// stateCache keeps hidden states by key, least recently used evicted first; an evicted
// state's device buffers are freed at once rather than when the GC gets to them.
type stateCache struct {
	cap   int
	order *list.List // front = most recent; values are *stateEntry
	byKey map[string]*list.Element
}

type stateEntry struct {
	key string
	hs  []*tensors.Tensor
}

func newStateCache(capacity int) *stateCache {
	return &stateCache{cap: capacity, order: list.New(), byKey: map[string]*list.Element{}}
}

func (c *stateCache) get(key string) ([]*tensors.Tensor, bool) {
	e, ok := c.byKey[key]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*stateEntry).hs, true
}

// put keeps hs under key and reports whether it did (false: the key holds other tensors).
func (c *stateCache) put(key string, hs []*tensors.Tensor) bool {
	if _, ok := c.byKey[key]; ok {
		return false
	}
	c.byKey[key] = c.order.PushFront(&stateEntry{key, hs})
	for c.order.Len() > c.cap {
		last := c.order.Back()
		e := c.order.Remove(last).(*stateEntry)
		delete(c.byKey, e.key)
		finalize(e.hs)
	}
	return true
}

func (c *stateCache) clear() {
	for _, e := range c.byKey {
		finalize(e.Value.(*stateEntry).hs)
	}
	c.order.Init()
	c.byKey = map[string]*list.Element{}
}
