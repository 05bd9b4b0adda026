package prune

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"slices"

	"github.com/shortllm/shortllm/internal/model"
)

// UnitBlock is the unit of depth pruning: one whole Transformer block. It is the only kind a
// plan can remove today; width pruning adds "head" and "channel" units, named by their block
// and an index within it, to the same Unit type.
const UnitBlock = "block"

// Unit is one removable part of the model, as plans and search traces name it.
type Unit struct {
	Kind  string `json:"kind"`
	Block int    `json:"block"`
}

// BlockUnits names whole blocks as units.
func BlockUnits(blocks []int) []Unit {
	out := make([]Unit, len(blocks))
	for i, b := range blocks {
		out[i] = Unit{Kind: UnitBlock, Block: b}
	}
	return out
}

// PlanFile is the part of a `shortllm search` plan that pruning reads; like ScoreFile, it
// keeps pruning independent of the code that wrote it. Calibration is kept verbatim for the
// provenance record.
type PlanFile struct {
	Model       string          `json:"model"`
	ConfigHash  string          `json:"config_hash"`
	NumLayers   int             `json:"num_layers"`
	Unit        string          `json:"unit"`
	Method      string          `json:"method"`
	Ratio       float64         `json:"ratio,omitempty"`
	Policy      *Policy         `json:"policy,omitempty"`
	Remove      []Unit          `json:"remove"`
	Objective   float64         `json:"objective"`
	Calibration json.RawMessage `json:"calibration,omitempty"`
}

// ReadPlanFile reads a search plan and returns it with the file's sha256, which the pruned
// model's record names.
func ReadPlanFile(path string) (*PlanFile, string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("--plan: %w", err)
	}
	var p PlanFile
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, "", fmt.Errorf("--plan %s: %v", path, err)
	}
	if p.Unit == "" || p.Remove == nil {
		return nil, "", fmt.Errorf("--plan %s: not a search plan (want unit and remove, as `shortllm search` writes)", path)
	}
	sum := sha256.Sum256(data)
	return &p, hex.EncodeToString(sum[:]), nil
}

// Check refuses a plan made for another model or one this model cannot apply: block indices
// mean something only for the architecture they were searched on.
func (p *PlanFile) Check(cfg *model.Config, path string) error {
	L := cfg.NumHiddenLayers
	switch {
	case p.Unit != UnitBlock:
		return fmt.Errorf("--plan %s: removes %q units; prune applies block plans only", path, p.Unit)
	case p.NumLayers != L:
		return fmt.Errorf("--plan %s: plan is for a %d-block model (%s), this model has %d blocks", path, p.NumLayers, p.Model, L)
	case p.ConfigHash != cfg.Hash():
		return fmt.Errorf("--plan %s: config_hash %.12s… does not match this model's config (%.12s…); the plan belongs to another model (%s)",
			path, p.ConfigHash, cfg.Hash(), p.Model)
	case len(p.Remove) == 0:
		return fmt.Errorf("--plan %s: removes no block", path)
	}
	seen := map[int]bool{}
	for _, u := range p.Remove {
		switch {
		case u.Kind != UnitBlock:
			return fmt.Errorf("--plan %s: unit %q in a block plan", path, u.Kind)
		case u.Block < 0 || u.Block >= L || seen[u.Block]:
			return fmt.Errorf("--plan %s: block %d is out of range [0, %d) or repeated", path, u.Block, L)
		}
		seen[u.Block] = true
	}
	if len(seen) >= L {
		return fmt.Errorf("--plan %s: would remove all %d blocks", path, L)
	}
	return nil
}

// Plan turns a checked plan file into the blocks to remove. Its method is recorded as the
// criterion, so a pruned model says which search chose it.
func (p *PlanFile) Plan() *Plan {
	blocks := make([]int, len(p.Remove))
	for i, u := range p.Remove {
		blocks[i] = u.Block
	}
	slices.Sort(blocks)
	return &Plan{Remove: blocks, Method: "plan", Ratio: p.Ratio, Policy: p.Policy,
		Ranking: &Ranking{Criterion: "search:" + p.Method, Calibration: p.Calibration}}
}
