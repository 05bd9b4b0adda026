package memplan

import (
	"errors"
	"testing"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/testutil"
)

func shape(tb testing.TB, name string) *model.Config {
	tb.Helper()
	c, err := model.LoadConfig(testutil.SharedDir(tb, "bench", name))
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// TestPlan_PublishedParameterCounts: the parameter count behind every term is the models'
// published one (LLaMA-2-7B 6,738,415,616; Llama-3.2-1B 1,235,814,400 with tied embeddings).
func TestPlan_PublishedParameterCounts(t *testing.T) {
	for name, want := range map[string]int64{"llama-2-7b-shape.json": 6738415616, "llama-3.2-1b-shape.json": 1235814400} {
		e, err := Plan(Request{Config: shape(t, name), Stage: Eval, DTypeBytes: 2, Batch: 1, SeqLen: 128})
		if err != nil {
			t.Fatal(err)
		}
		if e.Params != want {
			t.Errorf("%s: %d parameters, want %d", name, e.Params, want)
		}
		if e.Terms[0].Name != "weights" || e.Terms[0].Bytes != 2*want {
			t.Errorf("%s: first term %+v, want weights = 2·P", name, e.Terms[0])
		}
	}
}

// TestPlan_Terms checks each stage's terms on a tiny config against hand-computed values.
func TestPlan_Terms(t *testing.T) {
	c := &model.Config{HiddenSize: 8, IntermediateSize: 16, NumHiddenLayers: 2, NumAttentionHeads: 2,
		NumKeyValueHeads: 1, HeadDim: 4, VocabSize: 10, TieWordEmbeddings: true}
	// P = embed 80 + per block (q 64 + k 32 + v 32 + o 64 + gate 128 + up 128 + down 128 + 2 norms 16 = 592)·2 + norm 8.
	const P, blockP = 80 + 2*592 + 8, 2 * 592
	// a_layer(w=4, T=3) = norms 2·8·16 + qkv (2+2)·4·4·2 + att (2·2·4·4 + 2·3·12) + mlp 5·16·4 + resid 5·8·4
	const layer = 256 + 128 + (64 + 72) + 320 + 160
	const N = 2 * 3
	cases := []struct {
		stage Stage
		remat bool
		terms map[string]int64
	}{
		{Eval, false, map[string]int64{"weights": 4 * P, "activations": N * layer, "attention": 2 * 2 * 9 * 8, "logits": N * 10 * 12}},
		{PPL, false, map[string]int64{"hidden states": 3 * N * 8 * 4}},
		{Taylor, false, map[string]int64{"accumulators": 4 * blockP, "gradients": 4 * blockP, "activations": 2 * N * layer, "logits": N * 10 * 16}},
		{CPT, false, map[string]int64{"gradients": 4 * P, "optimizer": 8 * P}},
		{CPT, true, map[string]int64{"activations": 2*N*8*4 + N*layer}},
		{Taylor, true, map[string]int64{"gradients": 4 * blockP / 2, "activations": 2*N*8*4 + N*layer}},
		// LoRA r=2 on all seven: per layer 2·((8+8)+(8+4)·2+(8+8)+(8+16)·2+(16+8)) = 2·128.
		{LoRA, false, map[string]int64{"adapter+optimizer": 2 * 2 * 128 * 16}},
	}
	for _, tc := range cases {
		e, err := Plan(Request{Config: c, Stage: tc.stage, DTypeBytes: 4, Batch: 2, SeqLen: 3, LoRARank: 2, Remat: tc.remat})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int64{}
		var sum int64
		for _, term := range e.Terms {
			got[term.Name] = term.Bytes
			sum += term.Bytes
		}
		for name, want := range tc.terms {
			if got[name] != want {
				t.Errorf("%s remat=%v: %s = %d, want %d", tc.stage, tc.remat, name, got[name], want)
			}
		}
		if sum != e.Peak {
			t.Errorf("%s: peak %d is not the sum of the terms %d", tc.stage, e.Peak, sum)
		}
	}
	e, _ := Plan(Request{Config: c, Stage: CPT, DTypeBytes: 2, Batch: 1, SeqLen: 1})
	if e.Terms[1].Name != "master" || e.Terms[1].Bytes != 4*P {
		t.Errorf("bf16 CPT: second term %+v, want float32 master weights", e.Terms[1])
	}
}

func TestPlan_BadRequests(t *testing.T) {
	c := &model.Config{HiddenSize: 8, IntermediateSize: 16, NumHiddenLayers: 1, NumAttentionHeads: 2, NumKeyValueHeads: 2, HeadDim: 4, VocabSize: 10}
	for _, r := range []Request{
		{Stage: Eval, DTypeBytes: 4, Batch: 1, SeqLen: 1},
		{Config: c, Stage: Eval, DTypeBytes: 8, Batch: 1, SeqLen: 1},
		{Config: c, Stage: Eval, DTypeBytes: 4, Batch: 0, SeqLen: 1},
		{Config: c, Stage: "train", DTypeBytes: 4, Batch: 1, SeqLen: 1},
		{Config: c, Stage: LoRA, DTypeBytes: 4, Batch: 1, SeqLen: 1},
	} {
		if _, err := Plan(r); !errors.Is(err, ErrPlan) {
			t.Errorf("%+v: err %v, want ErrPlan", r, err)
		}
	}
}

// TestPlan_LoRAParametersMatchPEFT: PEFT's print_trainable_parameters reports 19,988,480
// trainable parameters for r=8 on all seven projections of LLaMA-2-7B.
func TestPlan_LoRAParametersMatchPEFT(t *testing.T) {
	if got := loraParams(shape(t, "llama-2-7b-shape.json"), 8, nil); got != 19988480 {
		t.Errorf("LoRA r=8 on LLaMA-2-7B: %d parameters, want 19988480", got)
	}
}

func TestRematDefault(t *testing.T) {
	if !RematDefault(shape(t, "llama-2-7b-shape.json"), 2, 10, 128) {
		t.Error("LLaMA-7B bf16 Taylor at 10×128: want remat on")
	}
	if RematDefault(shape(t, "llama-2-7b-shape.json"), 2, 1, 128) {
		t.Error("LLaMA-7B bf16 at 1×128: want remat off")
	}
	// A tiny model saves more activations than it has weights, but too few to matter.
	tiny := &model.Config{HiddenSize: 64, IntermediateSize: 172, NumHiddenLayers: 16, NumAttentionHeads: 8, NumKeyValueHeads: 4,
		VocabSize: 512, MaxPositionEmbeddings: 512, TieWordEmbeddings: true}
	if saved := SavedActivations(tiny, 4, 10, 128); saved <= 4*760_000 || saved >= RematMinActivations {
		t.Fatalf("deep16-sized activations %d: the case below tests nothing", saved)
	}
	if RematDefault(tiny, 4, 10, 128) {
		t.Error("deep16-sized model at 10×128: want remat off")
	}
}
