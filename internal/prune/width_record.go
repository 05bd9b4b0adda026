package prune

import (
	"encoding/json"
	"path/filepath"

	"github.com/shortllm/shortllm/internal/model"
)

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

// NewWidthRecord is shortllm_prune.json for a width-pruned model: every block kept, the
// units each lost in Width.
func NewWidthRecord(src, pruned *model.Model, w *WidthRecord, ratio float64, opts WriteOptions) *Record {
	before, after := CountParams(src.Config).Total, CountParams(pruned.Config).Total
	L := src.Config.NumHiddenLayers
	srcDir := src.Dir
	if abs, err := filepath.Abs(srcDir); err == nil {
		srcDir = abs
	}
	rec := &Record{ToolVersion: opts.ToolVersion, SourceModel: srcDir, SourceConfigHash: src.Config.Hash(),
		ConfigHash: pruned.Config.Hash(), NumLayersBefore: L, NumLayersAfter: pruned.Config.NumHiddenLayers,
		RemovedBlocks: []int{}, KeptBlocks: Kept(nil, L), Method: "width", RequestedRatio: ratio, Criterion: w.Criterion,
		ScoresFile: opts.ScoresFile, ScoresSHA256: opts.ScoresSHA256,
		ParamsBefore: before, ParamsAfter: after, RemovedRatio: float64(before-after) / float64(before), DType: "keep", Width: w}
	if opts.DType != "" {
		rec.DType = string(opts.DType)
	}
	return rec
}

// SaveWithRecord saves a pruned model to opts.Out with rec as shortllm_prune.json.
func SaveWithRecord(pruned *model.Model, rec *Record, opts WriteOptions) error {
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	return pruned.Save(opts.Out, model.SaveOptions{DType: opts.DType, MaxShardSize: opts.MaxShardSize,
		Force: opts.Force, Extra: map[string][]byte{RecordFile: append(data, '\n')}})
}
