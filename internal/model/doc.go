// Package model loads, runs and saves LLaMA-family checkpoints (model_type llama, mistral,
// qwen2) in Hugging Face layout, on any GoMLX backend.
//
// The pieces later stages build on:
//
//   - Load(dir, LoadOptions) → *Model: config.json (Config, unknown keys kept) and safetensors
//     weights (single or sharded; F32/F16/BF16 converted to the compute dtype), checked
//     strictly against the config. Model.Save writes the inverse via a temp dir + rename.
//   - Forward(cfg, Params, ids, ForwardOptions): the one forward pass. Options skip blocks
//     (no weight copies), collect the hidden state entering every block, start from a given
//     block with given hidden states (prefix reuse), add Adapter deltas to any linear layer
//     (LoRA), and read/write a KVCache. Embed, Block and Head are its parts.
//   - NLLSum / TokenLogProbs: losses in float32 or wider, IgnoreIndex = −100 as PyTorch.
//   - Runner: executes graphs with the model's weights as parameters (Run with a GraphFn and a
//     cache key), plus Logits, Score (per-token log-probs of variable-length sequences) and
//     Generate (KV-cache decoding, greedy or sampled).
//   - RegisterFastDotGeneralVJP: a DotGeneral gradient that works on SimpleGo (NewRunner
//     registers it).
package model
