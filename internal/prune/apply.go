package prune

import (
	"strconv"
	"strings"

	"github.com/shortllm/shortllm/internal/model"
)

const layerPrefix = "model.layers."

// Apply returns the model without the blocks in remove. Surviving blocks are renumbered
// contiguously and share their tensors with m (nothing is copied); embeddings, final norm and
// head are unchanged. The returned keys are the per-layer config lists that were cut too.
func Apply(m *model.Model, remove []int) (*model.Model, []string, error) {
	keep := Kept(remove, m.Config.NumHiddenLayers)
	cfg := m.Config.Clone()
	cut, err := cfg.KeepLayers(keep)
	if err != nil {
		return nil, nil, err
	}
	newIndex := make(map[int]int, len(keep))
	for i, b := range keep {
		newIndex[b] = i
	}
	out := &model.Model{
		Dir: m.Dir, Config: cfg, StoredLMHead: m.StoredLMHead, Sharded: m.Sharded, ShardSize: m.ShardSize,
		Weights: renumberKeys(m.Weights, newIndex), StoredDTypes: renumberKeys(m.StoredDTypes, newIndex),
	}
	return out, cut, nil
}

func renumberKeys[V any](in map[string]V, newIndex map[int]int) map[string]V {
	out := make(map[string]V, len(in))
	for name, v := range in {
		if n, ok := renumber(name, newIndex); ok {
			out[n] = v
		}
	}
	return out
}

// renumber maps "model.layers.{i}.rest" to the block's new index; ok is false for a removed
// block. Names outside the blocks pass unchanged.
func renumber(name string, newIndex map[int]int) (string, bool) {
	b, rest, ok := blockOf(name)
	if !ok {
		return name, true
	}
	j, kept := newIndex[b]
	if !kept {
		return "", false
	}
	return layerPrefix + strconv.Itoa(j) + rest, true
}

// blockOf splits "model.layers.{i}.rest" into i and ".rest".
func blockOf(name string) (int, string, bool) {
	if !strings.HasPrefix(name, layerPrefix) {
		return 0, "", false
	}
	tail := name[len(layerPrefix):]
	dot := strings.IndexByte(tail, '.')
	if dot <= 0 {
		return 0, "", false
	}
	b, err := strconv.Atoi(tail[:dot])
	if err != nil {
		return 0, "", false
	}
	return b, tail[dot:], true
}
