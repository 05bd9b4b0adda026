// Package width removes attention heads and FFN channels (width pruning), the other half of
// the comparison in "Shortened LLaMA" (Kim et al. 2024), with its baselines as their papers
// and released code define them: LLM-Pruner (Taylor importance of coupled groups), Wanda-sp
// and FLAP (An et al. 2024; activations from internal/capture).
//
//   - Units: a head unit is a KV group (a key/value head with its query heads; with MHA, one
//     head) or, with AllowWithinGroups, a single query head where every group keeps the same
//     count; a channel is a row of gate_proj/up_proj and the column of down_proj.
//   - Run(runner, Options) scores every unit and, with a ratio (a share of all parameters, as
//     for blocks), plans what to remove: the same share per candidate block ("uniform":
//     LLM-Pruner, Wanda-sp) or one ranking over all blocks ("global": FLAP), plus FLAP's bias
//     compensation.
//   - Apply slices the weights (Mask zeroes them instead: the same function, for tests and
//     sequential pruning); Write saves the model with shortllm_prune.json (Record.Width lists
//     the units removed per block). Per-block widths go to config.json as internal/model
//     documents (widths.go).
package width
