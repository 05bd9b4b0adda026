package sparsify

import (
	"fmt"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/safetensors"
)

// Measurement is the sparsity read from a checkpoint's data: per block, over its seven linear
// matrices (what Run prunes), and the nonzero parameters of the whole model.
type Measurement struct {
	Blocks        []BlockSparsity `json:"blocks"`
	NonzeroParams int64           `json:"nonzero_params"`
	Params        int64           `json:"params"`
}

// BlockSparsity is one block's share of zero weights in its linear matrices.
type BlockSparsity struct {
	Block    int     `json:"block"`
	Zeros    int64   `json:"zeros"`
	Weights  int64   `json:"weights"`
	Sparsity float64 `json:"sparsity"`
}

// Measure counts zeros in dir's checkpoint (every tensor is read once).
func Measure(dir string) (*Measurement, error) {
	cfg, err := model.LoadConfig(dir + "/config.json")
	if err != nil {
		return nil, err
	}
	ckpt, err := safetensors.OpenCheckpoint(dir)
	if err != nil {
		return nil, err
	}
	defer ckpt.Close()
	linear := map[string]int{}
	for b := 0; b < cfg.NumHiddenLayers; b++ {
		for _, mod := range blockModules {
			linear[weightName(b, mod.name)] = b
		}
	}
	me := &Measurement{Blocks: make([]BlockSparsity, cfg.NumHiddenLayers)}
	for _, name := range ckpt.Names() {
		info, _ := ckpt.Info(name)
		raw, err := ckpt.ReadRaw(name)
		if err != nil {
			return nil, err
		}
		vals, err := safetensors.DecodeFloat32(raw, info.DType)
		if err != nil {
			return nil, fmt.Errorf("%s: tensor %s: %w", dir, name, err)
		}
		var zeros int64
		for _, v := range vals {
			if v == 0 {
				zeros++
			}
		}
		if name != "lm_head.weight" || !cfg.TieWordEmbeddings { // a tied head is counted once
			me.Params += int64(len(vals))
			me.NonzeroParams += int64(len(vals)) - zeros
		}
		if b, ok := linear[name]; ok {
			bs := &me.Blocks[b]
			bs.Zeros += zeros
			bs.Weights += int64(len(vals))
		}
	}
	for b := range me.Blocks {
		bs := &me.Blocks[b]
		bs.Block = b
		if bs.Weights > 0 {
			bs.Sparsity = float64(bs.Zeros) / float64(bs.Weights)
		}
	}
	return me, nil
}
