package model

import (
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph code reads like maths
)

// IgnoreIndex marks label positions that carry no loss (PyTorch's CrossEntropyLoss default).
const IgnoreIndex = -100

// NLLSum returns Σ −log p(label) over positions whose label ≠ IgnoreIndex, and their count,
// for logits [B, T, V] and labels [B, T] aligned with them (already shifted). Callers divide
// the sum by the total count of all micro-batches, so accumulation never changes the mean.
func NLLSum(logits, labels *Node) (sum, count *Node) {
	valid := NotEqual(labels, Scalar(labels.Graph(), labels.DType(), IgnoreIndex))
	safe := Where(valid, labels, ZerosLike(labels))
	lp, _ := TokenLogProbs(logits, safe)
	lp = Where(valid, lp, ZerosLike(lp))
	return Neg(ReduceAllSum(lp)), ReduceAllSum(ConvertDType(valid, lp.DType()))
}
