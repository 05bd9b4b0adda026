// Package score ranks the Transformer blocks of a model by importance, the first stage of
// Shortened LLaMA's one-shot depth pruning (Kim et al., 2024, §3.1).
//
//   - LoadCalibration reads the windows data-driven criteria run on: pre-tokenised .json, or
//     .txt/.jsonl text sampled as the paper's get_examples does (seeded, recorded in results).
//   - Compute scores one criterion: taylor (Σ|w·∂L/∂w|), ppl (perplexity with the block
//     removed), magnitude (Σ|w|), bi (ShortGPT's Block Influence) or angular (PruneMe's
//     angular distance of a span of blocks). The "+" names score like their base; the
//     protection of the first and last blocks is pruning's business.
//   - Result is the JSON document `shortllm score` writes; WriteResults and ReadResults store
//     and load it. Order lists blocks least important first.
package score
