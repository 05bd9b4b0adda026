package prune

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/shortllm/shortllm/internal/model"
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
	ToolVersion  string
	ScoresFile   string
	ScoresSHA256 string
	PlanFile     string // the search plan applied (prune --plan)
	PlanSHA256   string
}

// CheckOut refuses output directories that would corrupt the input or an existing directory:
// the out dir is replaced by a rename, so it must neither be, contain, nor sit inside the
// source model.
func CheckOut(src, out string, force bool) error {
	if out == "" {
		return fmt.Errorf("--out is required")
	}
	s, o, err := absPath(src), absPath(out), error(nil)
	switch {
	case s == o:
		err = fmt.Errorf("--out %s is the input model directory", out)
	case within(o, s):
		err = fmt.Errorf("--out %s is inside the input model directory %s", out, src)
	case within(s, o):
		err = fmt.Errorf("--out %s contains the input model %s; replacing it would delete the input", out, src)
	}
	if err != nil {
		return err
	}
	if _, statErr := os.Stat(out); statErr == nil && !force {
		return fmt.Errorf("--out %s exists (use --force to replace it)", out)
	}
	return nil
}

// absPath resolves symlinks where the path exists, so a link cannot hide that out is in src.
func absPath(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return filepath.Clean(p)
	}
	if r, err := filepath.EvalSymlinks(a); err == nil {
		return r
	}
	if r, err := filepath.EvalSymlinks(filepath.Dir(a)); err == nil {
		return filepath.Join(r, filepath.Base(a))
	}
	return a
}

func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// Write saves m without plan.Remove to opts.Out with its provenance record. m is not changed.
func Write(m *model.Model, plan *Plan, opts WriteOptions) (*Record, error) {
	if err := CheckOut(m.Dir, opts.Out, opts.Force); err != nil {
		return nil, err
	}
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
	err = pruned.Save(opts.Out, model.SaveOptions{DType: opts.DType, MaxShardSize: opts.MaxShardSize,
		Force: opts.Force, Extra: map[string][]byte{RecordFile: append(data, '\n')}})
	if err != nil {
		return nil, err
	}
	return rec, nil
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
