// Package search chooses the set of units to remove by searching over sets, instead of
// ranking units one at a time as internal/score's criteria do: the set whose joint removal
// hurts least can differ from the n individually least important units.
//
//   - Objective is the loss every method minimises: the calibration mean NLL of the model
//     with a set of blocks skipped (the skip-blocks forward; no checkpoint per candidate),
//     reusing the hidden states of shared prefixes, with the work counted in forwards.
//   - Run is the one entry point (Options + Run) of `shortllm search` and the pipeline:
//     policy gradient over Bernoulli masks (Gao et al., 2024), evolutionary search (Shen et
//     al., 2024), or exhaustive enumeration for small cases — all under the same "+" policy,
//     ratio rule and calibration as `prune`, capped by a budget, deterministic for a seed.
//   - Plan is the JSON document written for `prune --plan`: the units removed, the
//     objective, the trace (best objective and forwards per step) and the calibration.
//
// Units are whole blocks today (prune.UnitBlock); heads and channels are width pruning's.
package search
