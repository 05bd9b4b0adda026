package prune

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/safetensors"
	"github.com/shortllm/shortllm/internal/tokenizer"
)

// Report describes a model directory: what people check before and after pruning.
type Report struct {
	Dir              string `json:"dir"`
	ModelType        string `json:"model_type"`
	NumLayers        int    `json:"num_layers"`
	HiddenSize       int    `json:"hidden_size"`
	IntermediateSize int    `json:"intermediate_size"`
	Heads            int    `json:"num_attention_heads"`
	KVHeads          int    `json:"num_key_value_heads"`
	// LayerWidths are per-block widths of a width-pruned model (absent when uniform).
	LayerWidths []model.LayerWidth `json:"layer_widths,omitempty"`
	VocabSize   int                `json:"vocab_size"`
	Tied        bool               `json:"tie_word_embeddings"`
	ConfigHash  string             `json:"config_hash"`
	Params      PartCounts         `json:"params"`
	DTypes      map[string]int     `json:"dtypes"`
	Sharded     bool               `json:"sharded"`
	Files       []FileSize         `json:"files"`
	Tokenizer   string             `json:"tokenizer"`
	Pruned      *Record            `json:"pruned,omitempty"`
}

// PartCounts are parameter counts read from the checkpoint's headers, per part.
type PartCounts struct {
	Embeddings int64   `json:"embeddings"`
	Blocks     []int64 `json:"blocks"`
	FinalNorm  int64   `json:"final_norm"`
	LMHead     int64   `json:"lm_head"`
	// TiedHeadCopy counts an lm_head stored in a tied model: it duplicates the embeddings, so
	// it is not part of Total (as Hugging Face counts).
	TiedHeadCopy int64 `json:"tied_head_copy,omitempty"`
	// Buffers counts non-parameter tensors (old rotary inv_freq buffers).
	Buffers int64 `json:"buffers,omitempty"`
	Total   int64 `json:"total"`
}

// FileSize is one weight file and its size in bytes.
type FileSize struct {
	Name  string `json:"name"`
	Bytes int64  `json:"bytes"`
}

// Inspect reads config.json, the safetensors headers (no tensor data), the tokenizer and the
// prune record of dir.
func Inspect(dir string) (*Report, error) {
	cfg, err := model.LoadConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	ckpt, err := safetensors.OpenCheckpoint(dir)
	if err != nil {
		return nil, err
	}
	defer ckpt.Close()
	r := &Report{Dir: dir, ModelType: cfg.ModelType, NumLayers: cfg.NumHiddenLayers, HiddenSize: cfg.HiddenSize,
		IntermediateSize: cfg.IntermediateSize, Heads: cfg.NumAttentionHeads, KVHeads: cfg.NumKeyValueHeads,
		LayerWidths: cfg.LayerWidths, VocabSize: cfg.VocabSize, Tied: cfg.TieWordEmbeddings, ConfigHash: cfg.Hash(),
		DTypes: map[string]int{}, Sharded: ckpt.Sharded()}
	if err := r.countParts(ckpt, cfg); err != nil {
		return nil, fmt.Errorf("inspect %s: %w", dir, err)
	}
	if r.Files, err = weightFiles(dir); err != nil {
		return nil, err
	}
	r.Tokenizer = tokenizerKind(dir)
	rec, ok, err := ReadRecord(dir)
	if err != nil {
		return nil, err
	}
	if ok {
		r.Pruned = rec
	}
	return r, nil
}

func (r *Report) countParts(ckpt *safetensors.Checkpoint, cfg *model.Config) error {
	p := &r.Params
	p.Blocks = make([]int64, cfg.NumHiddenLayers)
	for _, name := range ckpt.Names() {
		info, _ := ckpt.Info(name)
		n := info.NumElements()
		r.DTypes[string(info.DType)]++
		b, _, isBlock := blockOf(name)
		switch {
		case name == "model.embed_tokens.weight":
			p.Embeddings += n
		case name == "model.norm.weight":
			p.FinalNorm += n
		case name == "lm_head.weight" && cfg.TieWordEmbeddings:
			p.TiedHeadCopy += n
		case name == "lm_head.weight":
			p.LMHead += n
		case filepath.Ext(name) == ".inv_freq":
			p.Buffers += n
		case isBlock && b >= 0 && b < cfg.NumHiddenLayers:
			p.Blocks[b] += n
		default:
			return fmt.Errorf("tensor %q does not belong to a %d-block %s model", name, cfg.NumHiddenLayers, cfg.ModelType)
		}
	}
	p.Total = p.Embeddings + p.FinalNorm + p.LMHead
	for _, n := range p.Blocks {
		p.Total += n
	}
	return nil
}

func weightFiles(dir string) ([]FileSize, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.safetensors"))
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	var out []FileSize
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		out = append(out, FileSize{Name: filepath.Base(p), Bytes: st.Size()})
	}
	return out, nil
}

// tokenizerKind names the tokenizer, or says why there is none usable (inspect still works).
func tokenizerKind(dir string) string {
	tok, err := tokenizer.Load(dir)
	if err != nil {
		return "none (" + err.Error() + ")"
	}
	return tok.Kind()
}
