// Package prune removes whole transformer blocks from a LLaMA-family checkpoint, as in
// "Shortened LLaMA: Depth Pruning for LLMs" (Kim et al. 2024).
//
//   - How many: BlocksForRatio turns a parameter share (--ratio) into a block count the way
//     the paper labels its prunings; ParseRatio and ParseBlocks read the flags.
//   - Which: a Ranker orders the blocks least important first (from a score file, ReadScores,
//     or computed by internal/score); Select applies the "+" Policy (first and last blocks are
//     never candidates) one-shot or iteratively (re-scoring after each removal, as SLEB does).
//   - Writing: Apply renumbers the surviving blocks without copying tensors; Write saves the
//     pruned model beside a shortllm_prune.json Record through Model.Save (temp dir + rename).
//   - Inspect summarises a model directory from its headers alone (no weights loaded).
package prune
