package sparsify

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/shortllm/shortllm/internal/score"
)

// RecordFile is the provenance file written beside a sparsified model.
const RecordFile = "shortllm_sparsity.json"

// Record is shortllm_sparsity.json: what was done to which model, per matrix and per block,
// with the calibration windows, so the run can be checked and repeated.
type Record struct {
	ToolVersion      string             `json:"tool_version"`
	SourceModel      string             `json:"source_model"`
	SourceConfigHash string             `json:"source_config_hash"`
	Method           string             `json:"method"`
	Pattern          string             `json:"pattern"`
	Sparsity         float64            `json:"sparsity"` // requested share of the pruned matrices
	Allocation       string             `json:"allocation"`
	Refine           string             `json:"refine,omitempty"`
	Settings         Settings           `json:"settings"`
	Blocks           []BlockRecord      `json:"blocks"`
	Matrices         []MatrixRecord     `json:"matrices"`
	PrunableParams   int64              `json:"prunable_params"` // weights of the pruned matrices
	ZeroParams       int64              `json:"zero_params"`     // zeros among them after pruning
	MeasuredSparsity float64            `json:"measured_sparsity"`
	ParamsBefore     int64              `json:"params_before"`  // every parameter, a tied head once
	NonzeroParams    int64              `json:"nonzero_params"` // nonzero parameters after pruning
	Calibration      *score.Calibration `json:"calibration,omitempty"`
	DType            string             `json:"dtype"`
}

// Settings are the knobs in force (the released code's defaults unless changed).
type Settings struct {
	Damp            float64 `json:"damp,omitempty"`
	BlockSize       int     `json:"block_size,omitempty"`
	MRPBlock        bool    `json:"mrp_block,omitempty"`
	Epsilon         float64 `json:"alpha_epsilon,omitempty"`
	AlphaXmin       string  `json:"alpha_xmin,omitempty"`
	DSnoTCycles     int     `json:"dsnot_cycles,omitempty"`
	DSnoTThreshold  float64 `json:"dsnot_threshold,omitempty"`
	DSnoTVarPower   float64 `json:"dsnot_var_power,omitempty"`
	DSnoTWithMLP    bool    `json:"dsnot_with_mlp,omitempty"`
	BarberThreshold float64 `json:"barber_threshold,omitempty"`
	Windows         int     `json:"windows,omitempty"`
}

// BlockRecord is one block's allocation: its target sparsity and, with alpha allocation, the
// heavy-tail exponent of each matrix and their mean.
type BlockRecord struct {
	Block       int                `json:"block"`
	Target      float64            `json:"target"`
	Alpha       float64            `json:"alpha,omitempty"`
	MatrixAlpha map[string]float64 `json:"matrix_alpha,omitempty"`
	Sparsity    float64            `json:"sparsity"` // measured over the block's pruned matrices
}

// MatrixRecord is one pruned matrix: target and measured sparsity.
type MatrixRecord struct {
	Name     string  `json:"name"`
	Rows     int     `json:"rows"`
	Cols     int     `json:"cols"`
	Target   float64 `json:"target"`
	Zeros    int64   `json:"zeros"`
	Sparsity float64 `json:"sparsity"`
}

// ReadRecord reads dir/shortllm_sparsity.json; ok is false when the model was not sparsified here.
func ReadRecord(dir string) (rec *Record, ok bool, err error) {
	path := filepath.Join(dir, RecordFile)
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	rec = &Record{}
	if err := json.Unmarshal(data, rec); err != nil {
		return nil, false, fmt.Errorf("%s: %v", path, err)
	}
	return rec, true, nil
}
