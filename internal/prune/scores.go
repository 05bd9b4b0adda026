package prune

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/shortllm/shortllm/internal/inputfile"
	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/score"
)

// ScoreFile is one result as `shortllm score` writes it. Pruning needs only this JSON, so the
// reader does not depend on the scoring code; Calibration and Options are kept verbatim for
// the provenance record.
type ScoreFile struct {
	Model       string          `json:"model"`
	ConfigHash  string          `json:"config_hash"`
	Weights     string          `json:"weights_digest,omitempty"`
	NumLayers   int             `json:"num_layers"`
	Criterion   string          `json:"criterion"`
	Scores      []*float64      `json:"scores"`
	Order       []int           `json:"order"`
	Calibration json.RawMessage `json:"calibration,omitempty"`
	Options     json.RawMessage `json:"options,omitempty"`
}

// ReadScores reads a score file: one result object or a list of them (several criteria).
// It also returns the file's sha256, recorded so a pruned model names the exact scores used.
func ReadScores(path string) ([]ScoreFile, string, error) {
	data, err := inputfile.Read(path, inputfile.ResultLimit)
	if err != nil {
		return nil, "", fmt.Errorf("--scores: %w", err)
	}
	sum := sha256.Sum256(data)
	var list []ScoreFile
	if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && trimmed[0] == '[' {
		err = json.Unmarshal(trimmed, &list)
	} else {
		var one ScoreFile
		err = json.Unmarshal(data, &one)
		list = []ScoreFile{one}
	}
	if err != nil {
		return nil, "", fmt.Errorf("--scores %s: %v", path, err)
	}
	if len(list) == 0 {
		return nil, "", fmt.Errorf("--scores %s: no results", path)
	}
	return list, hex.EncodeToString(sum[:]), nil
}

// PickScores selects the result for criterion ("" accepts a file with a single result).
func PickScores(list []ScoreFile, criterion, path string) (*ScoreFile, error) {
	var names []string
	for i := range list {
		// "+" names carry the same scores as their base criterion (the + is a pruning policy).
		same := score.BaseCriterion(list[i].Criterion) == score.BaseCriterion(criterion)
		if (criterion != "" && same) || (criterion == "" && len(list) == 1) {
			return &list[i], nil
		}
		names = append(names, list[i].Criterion)
	}
	if criterion == "" {
		return nil, fmt.Errorf("--scores %s holds several criteria (%s): choose one with --criterion", path, strings.Join(names, ", "))
	}
	return nil, fmt.Errorf("--scores %s has no %q scores (it has %s)", path, criterion, strings.Join(names, ", "))
}

// Check refuses scores computed on another model: block indices only mean something for the
// architecture they were measured on (a pruned copy has a different layer count and hash).
func (s *ScoreFile) Check(cfg *model.Config, path string) error {
	L := cfg.NumHiddenLayers
	switch {
	case s.NumLayers != L:
		return fmt.Errorf("--scores %s: scores are for a %d-block model (%s), this model has %d blocks", path, s.NumLayers, s.Model, L)
	case s.ConfigHash != "" && s.ConfigHash != cfg.Hash():
		return fmt.Errorf("--scores %s: config_hash %.12s… does not match this model's config (%.12s…); the scores belong to another model (%s)",
			path, s.ConfigHash, cfg.Hash(), s.Model)
	case len(s.Scores) != L:
		return fmt.Errorf("--scores %s: %d scores for %d blocks", path, len(s.Scores), L)
	case len(s.Order) == 0:
		return fmt.Errorf("--scores %s: empty order", path)
	}
	if err := checkOrder(s.Order, L); err != nil {
		return fmt.Errorf("--scores %s: %w", path, err)
	}
	if span := s.span(); span > 1 {
		return fmt.Errorf("--scores %s: %s scores with span %d rank runs of %d blocks, not single blocks; remove a run with --blocks", path, s.Criterion, span, span)
	}
	return nil
}

// CheckWeights refuses scores computed for other weights than the ones in dir (same config,
// other training). Files written before the digest existed carry none and pass.
func (s *ScoreFile) CheckWeights(dir, path string) error {
	if s.Weights == "" || dir == "" {
		return nil
	}
	d, err := model.WeightsDigest(dir)
	if err != nil {
		return err
	}
	if d != s.Weights {
		return fmt.Errorf("--scores %s: computed for other weights (weights_digest %.12s…, this model %.12s…): the config matches but the checkpoint differs (%s)",
			path, s.Weights, d, s.Model)
	}
	return nil
}

// span is the angular criterion's run length (1 when absent).
func (s *ScoreFile) span() int {
	var o struct {
		Span int `json:"span"`
	}
	if len(s.Options) > 0 && json.Unmarshal(s.Options, &o) == nil && o.Span > 0 {
		return o.Span
	}
	return 1
}
