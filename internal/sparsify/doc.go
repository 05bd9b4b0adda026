// Package sparsify zeroes individual weights of a model's linear layers (unstructured or N:M
// sparsity) without retraining, block by block as the papers' released code does: each block's
// linear inputs are captured on the calibration windows after the earlier blocks were already
// sparsified (internal/capture), the block's seven matrices are pruned, and the sparsified block
// produces the next block's inputs.
//
// Methods (Options.Method), each matched to its released code where one exists:
//   - magnitude: |W|, the smallest share of the whole matrix (Wanda's prune_magnitude compares
//     within the matrix, not per row); N:M per group of M consecutive input weights.
//   - wanda (Sun et al., 2023): |W_ij|·‖X_j‖₂ compared within each output row.
//   - sparsegpt (Frantar & Alistarh, 2023): OBS with H = 2XᵀX/N_windows + λI, λ = 1% of the
//     mean diagonal, column blocks of 128 with adaptive mask selection per block, lazy batch
//     updates, the upper Cholesky factor of H⁻¹.
//   - mrp (Zhao et al., 2024, "Pruning Foundation Models for High Accuracy without
//     Retraining"): the multiple-removal OBS solution, all pruned weights of a row removed at
//     once with the optimal update of the rest.
//
// Allocation "alpha" is AlphaPruning (Lu et al., 2024): per-block sparsities from the
// heavy-tail exponent of each matrix's eigenvalue spectrum. Refine "dsnot" (Zhang et al., 2023)
// and "barber" (Su et al., 2024) rebuild the masks after the method. File names: alpha.go,
// obs.go (sparsegpt, mrp), dsnot.go, barber.go.
package sparsify
