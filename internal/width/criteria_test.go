package width

import (
	"math"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph code reads like maths
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/prune"
	"github.com/shortllm/shortllm/internal/score"
	"github.com/shortllm/shortllm/internal/testutil"
	"github.com/shortllm/shortllm/internal/testutil/refllama"
)

// calibWindows returns the first n windows of the shared calibration set (fewer than its 10
// keep the tests fast; the formulas do not depend on the count).
func calibWindows(tb testing.TB, n int) [][]int {
	tb.Helper()
	c, err := score.LoadCalibration(testutil.SharedDir(tb, "data", "stories", "calib10x128.ids.json"), nil, score.CalibOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return c.IDs[:n]
}

// refLowest is the reference choice: the k lowest scores, ties to the lower index.
func refLowest(v []float64, k int) []int {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return v[idx[a]] < v[idx[b]] })
	out := slices.Clone(idx[:k])
	slices.Sort(out)
	return out
}

func checkScores(t *testing.T, what string, b int, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s block %d: %d scores, want %d", what, b, len(got), len(want))
	}
	e := maxRel(got, want)
	if strings.HasPrefix(what, "flap") {
		// Standardised scores cross zero, where a relative error means nothing: FLAP's are
		// compared relative to the block's largest |score|.
		scale := 0.0
		for _, w := range want {
			scale = math.Max(scale, math.Abs(w))
		}
		e = maxAbs(got, want) / scale
	}
	if e > 1e-4 {
		t.Errorf("%s block %d: relative error %.3g (got %.6g…, want %.6g…)", what, b, e, got[0], want[0])
	}
}

// TestLLMPruner_MatchesFloat64Reference: Σ|w·∂L/∂w| per coupled group from float64
// gradients of the mean loss over all windows in one batch (no accumulation), grouped here.
func TestLLMPruner_MatchesFloat64Reference(t *testing.T) {
	windows := calibWindows(t, 4)
	m := loadShared(t, "deep16")
	res, err := Run(model.NewRunner(testBackend(t), m), Options{Criterion: "llm-pruner", Ratio: 0.2, Windows: windows, BatchSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	m64, err := model.Load(m.Dir, model.LoadOptions{DType: dtypes.Float64})
	if err != nil {
		t.Fatal(err)
	}
	r64 := model.NewRunner(testBackend(t), m64)
	blocks := []int{4, 5, 6, 7, 8, 9, 10, 11, 12, 13} // first 4 and last 2 kept
	mods := []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
	var names []string
	for _, b := range blocks {
		for _, mod := range mods {
			prefix := "self_attn."
			if mod[0] == 'g' || mod[0] == 'u' || mod[0] == 'd' {
				prefix = "mlp."
			}
			names = append(names, layerName(b)+prefix+mod+".weight")
		}
	}
	in, lab := make([][]int, len(windows)), make([][]int, len(windows))
	for i, w := range windows {
		in[i], lab[i] = w[:len(w)-1], w[1:]
	}
	inT, _ := model.IDsTensor(in)
	labT, _ := model.IDsTensor(lab)
	grads, err := r64.Run("test/grad64", func(p model.Params, x []*Node) []*Node {
		res := model.Forward(m64.Config, p, x[0], model.ForwardOptions{})
		sum, n := model.NLLSum(res.Logits, x[1])
		ws := make([]*Node, len(names))
		for i, nm := range names {
			ws[i] = p[nm]
		}
		return Gradient(Div(sum, n), ws...)
	}, inT, labT)
	if err != nil {
		t.Fatal(err)
	}
	cfg := m.Config
	D, dh, F := cfg.HiddenSize, cfg.HeadDim, cfg.IntermediateSize
	for bi, b := range blocks {
		sal := func(k int) []float64 { // |w·g| of module k of block b
			w := tensors.MustCopyFlatData[float64](m64.Weights[names[bi*7+k]])
			g := tensors.MustCopyFlatData[float64](grads[bi*7+k])
			out := make([]float64, len(w))
			for i := range w {
				out[i] = math.Abs(w[i] * g[i])
			}
			return out
		}
		q, k, v, o, gate, up, down := sal(0), sal(1), sal(2), sal(3), sal(4), sal(5), sal(6)
		G := cfg.KVGroups()
		heads := make([]float64, cfg.NumKeyValueHeads)
		for g := range heads {
			for r := g * dh; r < (g+1)*dh; r++ { // k and v rows of KV head g
				for c := 0; c < D; c++ {
					heads[g] += k[r*D+c] + v[r*D+c]
				}
			}
			for r := g * G * dh; r < (g+1)*G*dh; r++ { // q rows and o columns of its query heads
				for c := 0; c < D; c++ {
					heads[g] += q[r*D+c] + o[c*(cfg.NumAttentionHeads*dh)+r]
				}
			}
		}
		chans := make([]float64, F)
		for j := range chans {
			for c := 0; c < D; c++ {
				chans[j] += gate[j*D+c] + up[j*D+c] + down[c*F+j]
			}
		}
		checkScores(t, "llm-pruner heads", b, res.Scores.Heads[b], heads)
		checkScores(t, "llm-pruner channels", b, res.Scores.Channels[b], chans)
		u := res.Plan.Layers[b]
		if want := refLowest(heads, len(u.KVHeads)); !slices.Equal(u.KVHeads, want) {
			t.Errorf("block %d: removed KV groups %v, reference %v", b, u.KVHeads, want)
		}
		if want := refLowest(chans, len(u.Channels)); !slices.Equal(u.Channels, want) {
			t.Errorf("block %d: removed channels %v, reference %v", b, u.Channels, want)
		}
	}
	for _, b := range []int{0, 3, 14, 15} {
		if u := res.Plan.Layers[b]; len(u.Heads)+len(u.Channels) > 0 {
			t.Errorf("block %d is kept by LLM-Pruner's default but lost %v", b, u)
		}
	}
}

// refStats runs the float64 reference over the windows block by block, returning per block
// Σx, Σx² and N of o_proj's and down_proj's inputs; before running block b, edit(b) may
// change the reference weights (sequential pruning).
type refInput struct {
	sum, sumSq []float64
	n          int
}

func refBlockStats(ref *refllama.Model, windows [][]int, b int, xs [][][]float64) (o, d refInput) {
	acc := func(in *refInput, rows [][]float64) {
		if in.sum == nil {
			in.sum, in.sumSq = make([]float64, len(rows[0])), make([]float64, len(rows[0]))
		}
		for _, r := range rows {
			for j, x := range r {
				in.sum[j] += x
				in.sumSq[j] += x * x
			}
			in.n++
		}
	}
	for w := range windows {
		ref.Block(b, xs[w], func(point string, rows [][]float64) {
			switch point {
			case refllama.OIn:
				acc(&o, rows)
			case refllama.DownIn:
				acc(&d, rows)
			}
		})
	}
	return o, d
}

// TestWandaSP_MatchesFloat64Reference: mean_i |W_ij|·sqrt(Σx_j²/n_windows) per o_proj and
// down_proj column, heads summed over head_dim, blocks pruned in order with the statistics of
// the already pruned blocks' outputs — all in the float64 reference model.
func TestWandaSP_MatchesFloat64Reference(t *testing.T) {
	windows := calibWindows(t, 3)
	m := loadShared(t, "deep16")
	res, err := Run(model.NewRunner(testBackend(t), m), Options{Criterion: "wanda-sp", Ratio: 0.2, Windows: windows})
	if err != nil {
		t.Fatal(err)
	}
	ref := refllama.Load(t, testutil.SharedDir(t, "models", "deep16"))
	cfg := m.Config
	D, dh, F, HD := cfg.HiddenSize, cfg.HeadDim, cfg.IntermediateSize, cfg.NumAttentionHeads*cfg.HeadDim
	xs := make([][][]float64, len(windows))
	for w, ids := range windows {
		xs[w] = ref.Embed(ids)
	}
	n := float64(len(windows))
	for b := 0; b < cfg.NumHiddenLayers; b++ {
		snap := make([][][]float64, len(xs)) // Block runs in place: stats pass on a copy
		for w := range xs {
			snap[w] = make([][]float64, len(xs[w]))
			for t := range xs[w] {
				snap[w][t] = slices.Clone(xs[w][t])
			}
		}
		oIn, dIn := refBlockStats(ref, windows, b, snap)
		wo, wd := ref.W[layerName(b)+"self_attn.o_proj.weight"], ref.W[layerName(b)+"mlp.down_proj.weight"]
		col := func(w []float64, in refInput, cols, j int) float64 {
			s := 0.0
			for i := 0; i < D; i++ {
				s += math.Abs(w[i*cols+j])
			}
			return s / float64(D) * math.Sqrt(in.sumSq[j]/n)
		}
		heads := make([]float64, cfg.NumKeyValueHeads)
		for j := 0; j < HD; j++ {
			heads[j/(dh*cfg.KVGroups())] += col(wo, oIn, HD, j)
		}
		chans := make([]float64, F)
		for j := range chans {
			chans[j] = col(wd, dIn, F, j)
		}
		checkScores(t, "wanda-sp heads", b, res.Scores.Heads[b], heads)
		checkScores(t, "wanda-sp channels", b, res.Scores.Channels[b], chans)
		u := res.Plan.Layers[b]
		if want := refLowest(heads, len(u.KVHeads)); !slices.Equal(u.KVHeads, want) {
			t.Errorf("block %d: removed KV groups %v, reference %v", b, u.KVHeads, want)
		}
		if want := refLowest(chans, len(u.Channels)); !slices.Equal(u.Channels, want) {
			t.Errorf("block %d: removed channels %v, reference %v", b, u.Channels, want)
		}
		// Prune the reference the same way (zero o columns and down columns), then run it.
		for _, g := range u.KVHeads {
			for j := g * cfg.KVGroups() * dh; j < (g+1)*cfg.KVGroups()*dh; j++ {
				for i := 0; i < D; i++ {
					wo[i*HD+j] = 0
				}
			}
		}
		for _, j := range u.Channels {
			for i := 0; i < D; i++ {
				wd[i*F+j] = 0
			}
		}
		for w := range xs {
			ref.Block(b, xs[w], nil)
		}
	}
}

// TestFLAP_MatchesFloat64Reference: fluctuation (sample variance) × squared column norm
// (squared again for o_proj), standardised per block and module, head mean over head_dim,
// global parameter-weighted ranking, and the bias compensation W[:, removed]·mean.
func TestFLAP_MatchesFloat64Reference(t *testing.T) {
	windows := calibWindows(t, 3)
	m := loadShared(t, "deep16")
	res, err := Run(model.NewRunner(testBackend(t), m), Options{Criterion: "flap", Ratio: 0.2, Windows: windows})
	if err != nil {
		t.Fatal(err)
	}
	ref := refllama.Load(t, testutil.SharedDir(t, "models", "deep16"))
	cfg := m.Config
	D, dh, F, HD, G := cfg.HiddenSize, cfg.HeadDim, cfg.IntermediateSize, cfg.NumAttentionHeads*cfg.HeadDim, cfg.KVGroups()
	xs := make([][][]float64, len(windows))
	for w, ids := range windows {
		xs[w] = ref.Embed(ids)
	}
	type unitRef struct {
		b, i   int
		head   bool
		z      float64
		params int
	}
	var all []unitRef
	means := map[int][2][]float64{}
	for b := 0; b < cfg.NumHiddenLayers; b++ {
		oIn, dIn := refBlockStats(ref, windows, b, xs) // runs the (unpruned) block in place
		wo, wd := ref.W[layerName(b)+"self_attn.o_proj.weight"], ref.W[layerName(b)+"mlp.down_proj.weight"]
		metric := func(w []float64, in refInput, cols int) []float64 {
			out := make([]float64, cols)
			for j := range out {
				nn := float64(in.n)
				mean := in.sum[j] / nn
				variance := (in.sumSq[j] - nn*mean*mean) / (nn - 1)
				for i := 0; i < D; i++ {
					out[j] += w[i*cols+j] * w[i*cols+j]
				}
				out[j] *= variance
			}
			return out
		}
		z := func(v []float64) []float64 {
			var mu, ss float64
			for _, x := range v {
				mu += x / float64(len(v))
			}
			for _, x := range v {
				ss += (x - mu) * (x - mu)
			}
			sd := math.Sqrt(ss / float64(len(v)-1))
			out := make([]float64, len(v))
			for i, x := range v {
				out[i] = (x - mu) / sd
			}
			return out
		}
		a := metric(wo, oIn, HD)
		for j := range a {
			a[j] *= a[j]
		}
		za := z(a)
		heads := make([]float64, cfg.NumKeyValueHeads)
		for j, x := range za {
			heads[j/(G*dh)] += x / float64(G*dh)
		}
		chans := z(metric(wd, dIn, F))
		checkScores(t, "flap heads", b, res.Scores.Heads[b], heads)
		checkScores(t, "flap channels", b, res.Scores.Channels[b], chans)
		for i, v := range heads {
			all = append(all, unitRef{b, i, true, v, 2*G*dh*D + 2*dh*D})
		}
		for i, v := range chans {
			all = append(all, unitRef{b, i, false, v, 3 * D})
		}
		mo, md := make([]float64, HD), make([]float64, F)
		for j := range mo {
			mo[j] = oIn.sum[j] / float64(oIn.n)
		}
		for j := range md {
			md[j] = dIn.sum[j] / float64(dIn.n)
		}
		means[b] = [2][]float64{mo, md}
	}
	// Global choice: removed params closest to 20% of all parameters plus the zero biases
	// the compensated model gains (q, k, v, o, gate, up, down biases at the original widths).
	total := float64(prune.CountParams(cfg).Total)
	target := 0.2*total + float64(cfg.NumHiddenLayers*((cfg.NumAttentionHeads+2*cfg.NumKeyValueHeads)*dh+D+2*F+D))
	sort.SliceStable(all, func(i, j int) bool { return all[i].z < all[j].z })
	best, n, cum := math.Abs(target), 0, 0.0
	for k, u := range all {
		cum += float64(u.params)
		if d := math.Abs(cum - target); d < best {
			best, n = d, k+1
		}
	}
	wantKV, wantCh := map[int][]int{}, map[int][]int{}
	for _, u := range all[:n] {
		if u.head {
			wantKV[u.b] = append(wantKV[u.b], u.i)
		} else {
			wantCh[u.b] = append(wantCh[u.b], u.i)
		}
	}
	for b := 0; b < cfg.NumHiddenLayers; b++ {
		slices.Sort(wantKV[b])
		slices.Sort(wantCh[b])
		u := res.Plan.Layers[b]
		if !slices.Equal(u.KVHeads, wantKV[b]) || !slices.Equal(u.Channels, wantCh[b]) {
			t.Errorf("block %d: removed KV %v channels %v, reference %v %v", b, u.KVHeads, u.Channels, wantKV[b], wantCh[b])
			continue
		}
		wo, wd := ref.W[layerName(b)+"self_attn.o_proj.weight"], ref.W[layerName(b)+"mlp.down_proj.weight"]
		comp := func(w, mean []float64, cols int, removed []int, got []float32) {
			if len(removed) == 0 {
				return
			}
			want := make([]float64, D)
			g := make([]float64, D)
			for i := 0; i < D; i++ {
				for _, j := range removed {
					want[i] += w[i*cols+j] * mean[j]
				}
				g[i] = float64(got[i])
			}
			if e := maxAbs(g, want); e > 1e-5 {
				t.Errorf("block %d: bias compensation differs by %.3g", b, e)
			}
		}
		comp(wo, means[b][0], HD, expand(u.Heads, dh), res.Plan.OBias[b])
		comp(wd, means[b][1], F, u.Channels, res.Plan.DownBias[b])
	}
}

func maxAbs(a, b []float64) float64 {
	m := 0.0
	for i := range a {
		m = math.Max(m, math.Abs(a[i]-b[i]))
	}
	return m
}
