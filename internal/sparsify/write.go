package sparsify

import (
	"encoding/json"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/prune"
	"github.com/shortllm/shortllm/internal/safetensors"
)

// WriteOptions control Write.
type WriteOptions struct {
	Out          string
	DType        safetensors.DType // empty keeps each tensor's stored dtype
	MaxShardSize int64             // 0 keeps the source's sharding style
	Force        bool
	ToolVersion  string
}

// Write saves the sparsified model m (a standard checkpoint whose zeros are stored as zeros)
// with rec as shortllm_sparsity.json, through a temporary directory and a rename.
func Write(m *model.Model, rec *Record, o WriteOptions) error {
	if err := prune.CheckOut(m.Dir, o.Out, o.Force); err != nil {
		return err
	}
	rec.ToolVersion, rec.DType = o.ToolVersion, "keep"
	if o.DType != "" {
		rec.DType = string(o.DType)
	}
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	return m.Save(o.Out, model.SaveOptions{DType: o.DType, MaxShardSize: o.MaxShardSize, Force: o.Force,
		Extra: map[string][]byte{RecordFile: append(data, '\n')}})
}
