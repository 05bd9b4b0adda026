package prune

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/outdir"
	"github.com/shortllm/shortllm/internal/safetensors"
)

// RecordFile is the provenance file written beside a pruned model.
const RecordFile = "shortllm_prune.json"

// Record is shortllm_prune.json: enough to tell later what a pruned model is and redo it.
type Record struct {
	ToolVersion      string          `json:"tool_version"`
	SourceModel      string          `json:"source_model"`
	SourceConfigHash string          `json:"source_config_hash"`
	ConfigHash       string          `json:"config_hash"`
	NumLayersBefore  int             `json:"num_layers_before"`
	NumLayersAfter   int             `json:"num_layers_after"`
	RemovedBlocks    []int           `json:"removed_blocks"`
	KeptBlocks       []int           `json:"kept_blocks"`
	Method           string          `json:"method"`
	RequestedRatio   float64         `json:"requested_ratio,omitempty"`
	Policy           *Policy         `json:"policy,omitempty"`
	Criterion        string          `json:"criterion,omitempty"`
	Iterative        bool            `json:"iterative,omitempty"`
	Scores           []*float64      `json:"scores,omitempty"`
	Order            []int           `json:"order,omitempty"`
	Steps            []Step          `json:"steps,omitempty"`
	ScoresFile       string          `json:"scores_file,omitempty"`
	ScoresSHA256     string          `json:"scores_sha256,omitempty"`
	PlanFile         string          `json:"plan_file,omitempty"`
	PlanSHA256       string          `json:"plan_sha256,omitempty"`
	Calibration      json.RawMessage `json:"calibration,omitempty"`
	ParamsBefore     int64           `json:"params_before"`
	ParamsAfter      int64           `json:"params_after"`
	RemovedRatio     float64         `json:"removed_ratio"`
	PrunedConfigKeys []string        `json:"pruned_config_keys,omitempty"`
	DType            string          `json:"dtype"`
	// Width is set for width pruning (heads and channels; Method "width"): no block is
	// removed then.
	Width *WidthRecord `json:"width,omitempty"`
}

// WriteOptions control Write.
type WriteOptions struct {
	Out          string
	DType        safetensors.DType // empty keeps each tensor's stored dtype
	MaxShardSize int64             // 0 keeps the source's sharding style
	Force        bool
	// Stage, if set, is the output already begun with outdir.Begin (Out must be its path).
	Stage        *outdir.Dir
	ToolVersion  string
	ScoresFile   string
	ScoresSHA256 string
	PlanFile     string // the search plan applied (prune --plan)
	PlanSHA256   string
}

// CheckOut applies shortllm's output rule (internal/outdir) to a pruned model's --out: it
// must neither be, contain, nor sit inside the source model, and an existing out is replaced
// only with force and only when shortllm wrote it.
func CheckOut(src, out string, force bool) error {
	return outdir.Check(out, outdir.Options{Inputs: []string{src}, Force: force})
}

// Write saves m without plan.Remove to opts.Out with its provenance record. m is not changed.
// With opts.Stage (begun by the caller before its long work, so that a bad or busy --out
// fails first) the model is written into it and committed; otherwise Write begins the output
// itself.
func Write(m *model.Model, plan *Plan, opts WriteOptions) (*Record, error) {
	d := opts.Stage
	if d == nil {
		var err error
		if d, err = outdir.Begin(opts.Out, outdir.Options{Inputs: []string{m.Dir}, Force: opts.Force}); err != nil {
			return nil, err
		}
	}
	defer d.Close()
	pruned, cut, err := Apply(m, plan.Remove)
	if err != nil {
		return nil, err
	}
	rec := newRecord(m, pruned, plan, opts)
	rec.PrunedConfigKeys = cut
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return nil, err
	}
	err = pruned.WriteDir(d.Path(), model.SaveOptions{DType: opts.DType, MaxShardSize: opts.MaxShardSize,
		Extra: map[string][]byte{RecordFile: append(data, '\n')}})
	if err != nil {
		return nil, fmt.Errorf("save %s: %w", opts.Out, err)
	}
	return rec, d.Commit()
}

func newRecord(src, pruned *model.Model, plan *Plan, opts WriteOptions) *Record {
	before, after := CountParams(src.Config).Total, CountParams(pruned.Config).Total
	srcDir := src.Dir
	if abs, err := filepath.Abs(srcDir); err == nil {
		srcDir = abs // a relative path means nothing once the record is read elsewhere
	}
	rec := &Record{
		ToolVersion: opts.ToolVersion, SourceModel: srcDir, SourceConfigHash: src.Config.Hash(),
		ConfigHash: pruned.Config.Hash(), NumLayersBefore: src.Config.NumHiddenLayers,
		NumLayersAfter: pruned.Config.NumHiddenLayers, RemovedBlocks: plan.Remove,
		KeptBlocks: Kept(plan.Remove, src.Config.NumHiddenLayers), Method: plan.Method,
		RequestedRatio: plan.Ratio, Policy: plan.Policy, Iterative: len(plan.Steps) > 0, Steps: plan.Steps,
		ScoresFile: opts.ScoresFile, ScoresSHA256: opts.ScoresSHA256, PlanFile: opts.PlanFile, PlanSHA256: opts.PlanSHA256,
		ParamsBefore: before, ParamsAfter: after, RemovedRatio: float64(before-after) / float64(before),
		DType: "keep",
	}
	if opts.DType != "" {
		rec.DType = string(opts.DType)
	}
	if rk := plan.Ranking; rk != nil {
		rec.Criterion, rec.Calibration = rk.Criterion, rk.Calibration
		if len(plan.Steps) == 0 {
			rec.Scores, rec.Order = rk.Scores, rk.Order
		}
	}
	return rec
}

// ReadRecord reads dir/shortllm_prune.json; ok is false when the model was not pruned here.
func ReadRecord(dir string) (rec *Record, ok bool, err error) {
	data, err := os.ReadFile(filepath.Join(dir, RecordFile))
	if os.IsNotExist(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	rec = &Record{}
	if err := json.Unmarshal(data, rec); err != nil {
		return nil, false, fmt.Errorf("%s: %v", filepath.Join(dir, RecordFile), err)
	}
	return rec, true, nil
}
