package model

import (
	"encoding/json"
	"fmt"
	"sort"
)

// KeepLayers turns the config into that of the model made of the given original blocks
// (ascending, renumbered 0..len(keep)-1). Unknown keys holding one entry per layer (a JSON
// list of num_hidden_layers elements, e.g. layer_types or a per-layer sliding_window) are
// pruned the same way, so they keep describing the surviving blocks; it returns their names.
// A key whose meaning depends on layer indices in a way a list cut cannot follow (Qwen2's
// max_window_layers with use_sliding_window) is refused rather than silently left wrong.
func (c *Config) KeepLayers(keep []int) (pruned []string, err error) {
	if err := c.checkKeep(keep); err != nil {
		return nil, err
	}
	if err := c.refuseIndexDependentKeys(); err != nil {
		return nil, err
	}
	for _, k := range c.ExtraKeys() {
		var list []json.RawMessage
		if json.Unmarshal(c.extra[k], &list) != nil || len(list) != c.NumHiddenLayers {
			continue
		}
		kept := make([]json.RawMessage, len(keep))
		for i, b := range keep {
			kept[i] = list[b]
		}
		raw, err := json.Marshal(kept)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrConfig, k, err)
		}
		c.extra[k] = raw
		pruned = append(pruned, k)
	}
	widths := c.Widths()
	c.SetNumLayers(len(keep))
	if c.LayerWidths != nil {
		kept := make([]LayerWidth, len(keep))
		for i, b := range keep {
			kept[i] = widths[b]
		}
		if err := c.SetLayerWidths(kept); err != nil {
			return nil, err
		}
	}
	return pruned, nil
}

func (c *Config) checkKeep(keep []int) error {
	if len(keep) == 0 {
		return fmt.Errorf("%w: pruning would remove every block (num_hidden_layers %d)", ErrConfig, c.NumHiddenLayers)
	}
	if !sort.IntsAreSorted(keep) {
		return fmt.Errorf("%w: kept blocks %v are not in ascending order", ErrConfig, keep)
	}
	for i, b := range keep {
		if b < 0 || b >= c.NumHiddenLayers || (i > 0 && keep[i-1] == b) {
			return fmt.Errorf("%w: kept block %d is out of range or repeated (num_hidden_layers %d)", ErrConfig, b, c.NumHiddenLayers)
		}
	}
	return nil
}

// refuseIndexDependentKeys rejects configs where a scalar names a layer boundary: in Qwen2,
// layers at index ≥ max_window_layers use sliding-window attention, and removing blocks moves
// that boundary to different blocks.
func (c *Config) refuseIndexDependentKeys() error {
	var useSW bool
	if raw, ok := c.extra["use_sliding_window"]; ok && json.Unmarshal(raw, &useSW) == nil && useSW {
		if _, ok := c.extra["max_window_layers"]; ok {
			return fmt.Errorf("%w: use_sliding_window with max_window_layers assigns attention kinds by layer index; pruning blocks would change which blocks slide (not supported)", ErrConfig)
		}
	}
	return nil
}
