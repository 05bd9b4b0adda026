package prune

import "github.com/shortllm/shortllm/internal/model"

// LayerUnits are the width units removed from one block, as original indices within it:
// query heads, key/value heads (with GQA, a KV head goes with all of its query heads) and FFN
// channels (rows of gate_proj/up_proj, columns of down_proj).
type LayerUnits struct {
	Heads    []int `json:"heads"`
	KVHeads  []int `json:"kv_heads"`
	Channels []int `json:"channels"`
}

// WidthRecord is the width-pruning part of shortllm_prune.json (Record.Width): which units
// each block lost, how they were chosen, and the widths before and after.
type WidthRecord struct {
	Criterion  string `json:"criterion"`
	Allocation string `json:"allocation"` // "uniform" (same share per pruned block) or "global"
	// PrunedBlocks are the blocks whose units were candidates (LLM-Pruner keeps the first and
	// last few unpruned).
	PrunedBlocks []int `json:"pruned_blocks"`
	// HeadUnit is "kv_group" (a KV head with all its query heads) or "query_head".
	HeadUnit string `json:"head_unit"`
	// BiasCompensation: the removed units' mean contribution was added to o_proj/down_proj
	// biases (FLAP); the model then has attention_bias/mlp_bias with zero q/k/v/gate/up biases.
	BiasCompensation bool               `json:"bias_compensation"`
	Layers           []LayerUnits       `json:"layers"`
	WidthsBefore     []model.LayerWidth `json:"widths_before"`
	WidthsAfter      []model.LayerWidth `json:"widths_after"`
}
