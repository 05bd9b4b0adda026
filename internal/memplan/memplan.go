// Package memplan estimates a stage's peak memory on one device from the model's shapes,
// before anything is loaded, so a run that cannot fit is refused (or re-planned) up front.
//
// The estimate is a sum of named terms, each a product of shapes and element sizes, so a
// user can see where the memory goes and what a flag changes:
//
//	weights      P · w                      (w = bytes of the compute dtype)
//	master       P · 4                      (CPT in bf16 keeps float32 master weights)
//	gradients    P · 4  (CPT) | P_blocks · 4 (Taylor accumulators) | A · 4 (LoRA)
//	optimizer    2 · P · 4 (CPT AdamW m, v) | 2 · A · 4 + A · 4 (LoRA: m, v and the adapter)
//	activations  L · N · a_layer            (saved for the backward pass; N = B·T tokens)
//	             L · N · D · w + N · a_layer (with rematerialisation: block inputs + one block)
//	attention    B · H · T² · 4 · 2         (scores and probabilities of one layer, float32)
//	logits       N · V · (w + 4 + 4)        (logits, float32 log-softmax and its gradient)
//	host copy    P · w                      (go backend only: host tensors beside its buffers)
//
// Checked against peak RSS on the go backend (smol125 shape, f32, 1×64 tokens; RSS also holds
// the Go runtime and GC slack): eval 960 MiB measured vs 979 estimated, LoRA 1105 vs 1165,
// Taylor 1175 vs 1938 (one batch: accumulators and gradients never coexist), CPT 3497 vs 3030.
//
// a_layer counts the per-token tensors one LLaMA block keeps for its backward pass (see
// layerActivation). P_blocks are the block parameters, A the LoRA adapter parameters.
package memplan

import (
	"errors"
	"fmt"
	"strings"

	"github.com/shortllm/shortllm/internal/model"
)

// Stage names the work being planned.
type Stage string

const (
	Eval   Stage = "eval"   // forward only: perplexity, zero-shot, the ppl criterion per batch
	Taylor Stage = "taylor" // forward + backward w.r.t. all block weights, accumulators kept
	PPL    Stage = "ppl"    // ppl criterion: hidden states entering every block kept per batch
	LoRA   Stage = "lora"   // forward + backward w.r.t. the adapters, base frozen
	CPT    Stage = "cpt"    // full fine-tuning with AdamW
)

// Stages lists the stages in the order plan prints them.
var Stages = []Stage{Eval, PPL, Taylor, LoRA, CPT}

// ErrPlan marks an invalid request.
var ErrPlan = errors.New("invalid memory plan request")

// Request describes one run.
type Request struct {
	Config *model.Config
	Stage  Stage
	// DTypeBytes is the compute dtype's element size: 4 (float32) or 2 (bfloat16).
	DTypeBytes int
	// Batch rows of SeqLen tokens run together (a micro-batch for training).
	Batch, SeqLen int
	// LoRA: rank and target module names (q_proj, …); empty targets mean all seven.
	LoRARank    int
	LoRATargets []string
	// Remat recomputes each block's activations in the backward pass.
	Remat bool
	// HostCopy counts the loaded host tensors beside the backend's own buffers: on the go
	// backend both live in the process (measured: +P·w of RSS at every stage).
	HostCopy bool
}

// Term is one named part of the estimate.
type Term struct {
	Name    string `json:"name"`
	Bytes   int64  `json:"bytes"`
	Formula string `json:"formula"`
}

// Estimate is the plan for one request.
type Estimate struct {
	Stage  Stage  `json:"stage"`
	Params int64  `json:"params"`
	Terms  []Term `json:"terms"`
	Peak   int64  `json:"peak_bytes"`
}

var allTargets = []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

// Plan estimates the peak memory of req.
func Plan(req Request) (*Estimate, error) {
	if err := req.check(); err != nil {
		return nil, err
	}
	c := req.Config
	w := int64(req.DTypeBytes)
	P, blockP := params(c)
	N := int64(req.Batch) * int64(req.SeqLen)
	L := int64(c.NumHiddenLayers)
	e := &Estimate{Stage: req.Stage, Params: P}
	add := func(name string, bytes int64, formula string) {
		e.Terms = append(e.Terms, Term{Name: name, Bytes: bytes, Formula: formula})
	}
	add("weights", P*w, fmt.Sprintf("P·w = %d·%d", P, w))
	attn := int64(req.Batch) * int64(c.NumAttentionHeads) * int64(req.SeqLen) * int64(req.SeqLen) * 4 * 2
	layer := layerActivation(c, req.DTypeBytes, req.SeqLen)
	logits := N * int64(c.VocabSize) * (w + 4 + 4)
	switch req.Stage {
	case Eval:
		add("activations", N*layer, "N·a_layer (one block alive)")
	case PPL:
		add("hidden states", (L+1)*N*int64(c.HiddenSize)*w, "(L+1)·N·D·w")
		add("activations", N*layer, "N·a_layer (one block alive)")
	case Taylor:
		add("accumulators", blockP*4, fmt.Sprintf("P_blocks·4 = %d·4", blockP))
		if req.Remat {
			add("gradients", blockP/L*w, "P_blocks/L·w (one block's gradients at a time)")
		} else {
			add("gradients", blockP*w, "P_blocks·w (one step's gradients before accumulation)")
		}
		add("activations", saved(req, layer, N, L), savedFormula(req))
	case LoRA:
		A := loraParams(c, req.LoRARank, req.LoRATargets)
		add("adapter+optimizer", A*4*4, fmt.Sprintf("A·4·(weights, gradients, m, v), A = %d", A))
		add("activations", saved(req, layer, N, L), savedFormula(req))
	case CPT:
		if w != 4 {
			add("master", P*4, "P·4 (float32 master weights)")
		}
		add("gradients", P*4, "P·4")
		add("optimizer", 2*P*4, "2·P·4 (AdamW m, v)")
		add("updated weights", P*w, "P·w (a step's new weights while its inputs are alive)")
		add("activations", saved(req, layer, N, L), savedFormula(req))
	}
	add("attention", attn, "B·H·T²·4·2")
	if req.Stage == Taylor || req.Stage == LoRA || req.Stage == CPT {
		logits += N * int64(c.VocabSize) * 4 // the logits' gradient
	}
	add("logits", logits, "N·V·(w+4+4) (+N·V·4 gradient when training)")
	if req.HostCopy {
		add("host copy", P*w, "P·w (go backend: loaded tensors beside its buffers)")
	}
	for _, t := range e.Terms {
		e.Peak += t.Bytes
	}
	return e, nil
}

func (r Request) check() error {
	switch {
	case r.Config == nil:
		return fmt.Errorf("%w: no model config", ErrPlan)
	case r.DTypeBytes != 2 && r.DTypeBytes != 4:
		return fmt.Errorf("%w: compute dtype of %d bytes (want 4 for f32 or 2 for bf16)", ErrPlan, r.DTypeBytes)
	case r.Batch <= 0 || r.SeqLen <= 0:
		return fmt.Errorf("%w: batch %d × sequence length %d: both must be positive", ErrPlan, r.Batch, r.SeqLen)
	case r.Stage == LoRA && r.LoRARank <= 0:
		return fmt.Errorf("%w: LoRA rank %d must be positive", ErrPlan, r.LoRARank)
	}
	for _, s := range Stages {
		if s == r.Stage {
			return nil
		}
	}
	names := make([]string, len(Stages))
	for i, s := range Stages {
		names[i] = string(s)
	}
	return fmt.Errorf("%w: stage %q (want %s)", ErrPlan, r.Stage, strings.Join(names, ", "))
}

// params returns the model's parameter count (a tied head counted once) and the blocks' share.
func params(c *model.Config) (total, blocks int64) {
	for name, dims := range c.ExpectedShapes() {
		n := int64(1)
		for _, d := range dims {
			n *= int64(d)
		}
		total += n
		if strings.HasPrefix(name, "model.layers.") {
			blocks += n
		}
	}
	return total, blocks
}

// layerActivation is the bytes per token one block keeps for its backward pass (or holds at
// once in a forward): the block input, both RMSNorms (float32 upcast, normalised, scaled),
// q/k/v and their rotated copies, the attention output before and after the head transpose,
// the o_proj output and residual, and the SwiGLU intermediates (gate, up, sigmoid, silu,
// product: 5·F), down_proj output and residual; the T-long score rows are counted per token
// (H·T·(4+4+w): scores, softmax and the probabilities in the compute dtype).
func layerActivation(c *model.Config, w, T int) int64 {
	D, F := int64(c.HiddenSize), int64(c.IntermediateSize)
	H, Hkv, Dh := int64(c.NumAttentionHeads), int64(c.NumKeyValueHeads), int64(c.HeadDim)
	W := int64(w)
	norms := 2 * D * (8 + 2*W) // upcast and normalised in float32, cast and scaled in w
	qkv := (H + 2*Hkv) * Dh * W * 2
	att := 2*H*Dh*W + H*int64(T)*(8+W)
	mlp := 5 * F * W
	resid := 5 * D * W // input, o_proj out, residual, down out, residual
	return norms + qkv + att + mlp + resid
}

func saved(r Request, layer, N, L int64) int64 {
	if r.Remat {
		return L*N*int64(r.Config.HiddenSize)*int64(r.DTypeBytes) + N*layer
	}
	return L * N * layer
}

func savedFormula(r Request) string {
	if r.Remat {
		return "L·N·D·w + N·a_layer (rematerialised: block inputs + one block)"
	}
	return "L·N·a_layer (saved for the backward pass)"
}

// loraParams counts adapter parameters: r·(in+out) per targeted module per layer.
func loraParams(c *model.Config, r int, targets []string) int64 {
	if len(targets) == 0 {
		targets = allTargets
	}
	D, F := int64(c.HiddenSize), int64(c.IntermediateSize)
	q := int64(c.NumAttentionHeads) * int64(c.HeadDim)
	kv := int64(c.NumKeyValueHeads) * int64(c.HeadDim)
	size := map[string]int64{"q_proj": D + q, "k_proj": D + kv, "v_proj": D + kv, "o_proj": q + D,
		"gate_proj": D + F, "up_proj": D + F, "down_proj": F + D}
	var per int64
	for _, t := range targets {
		per += size[t]
	}
	return int64(r) * per * int64(c.NumHiddenLayers)
}

// RematMinActivations is the smallest saved-activation size for which `--remat auto`
// recomputes: below it the memory saved is too small to be worth a second forward pass.
const RematMinActivations = 2 << 30

// RematDefault says whether a training-like stage (Taylor, LoRA, CPT) should rematerialise
// by default: when the activations it would save exceed the weights themselves (LLaMA-7B in
// bf16 at 10×128 saves ~14 GB against 12.6 GB of weights) and RematMinActivations, so that
// recomputing one more forward costs far less than the memory it frees. Small models keep
// the faster whole-graph backward.
func RematDefault(c *model.Config, dtypeBytes, batch, seqLen int) bool {
	P, _ := params(c)
	saved := SavedActivations(c, dtypeBytes, batch, seqLen)
	return saved > P*int64(dtypeBytes) && saved >= RematMinActivations
}

// SavedActivations is the activation memory a whole-graph backward keeps for batch×seqLen
// tokens: every block's saved tensors.
func SavedActivations(c *model.Config, dtypeBytes, batch, seqLen int) int64 {
	N := int64(batch) * int64(seqLen)
	return int64(c.NumHiddenLayers) * N * layerActivation(c, dtypeBytes, seqLen)
}
