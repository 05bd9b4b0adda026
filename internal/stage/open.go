package stage

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/dtypes"

	"github.com/shortllm/shortllm/internal/hub"
	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/retrain"
	"github.com/shortllm/shortllm/internal/tokenizer"
)

// Resolve turns a model reference — a directory or a Hugging Face id org/name[@revision] —
// into a local directory, downloading into the hub cache when needed.
func (e *Engine) Resolve(ctx context.Context, ref string) (string, error) {
	if ref == "" {
		return "", fmt.Errorf("no model given")
	}
	if st, err := os.Stat(ref); err == nil {
		if !st.IsDir() {
			return "", fmt.Errorf("model %s: not a directory", ref)
		}
		return ref, nil
	}
	if _, err := os.Lstat(ref); err == nil {
		return "", fmt.Errorf("model %s: not a directory (a broken link?)", ref)
	}
	if err := hub.CheckID(ref); err != nil {
		if !strings.Contains(ref, "/") || strings.HasPrefix(ref, ".") || strings.HasPrefix(ref, "/") {
			return "", fmt.Errorf("model %s: no such directory", ref)
		}
		return "", fmt.Errorf("model %s: no such directory, and not a Hugging Face id: %v", ref, err)
	}
	return hub.Resolve(ctx, ref, e.Hub)
}

// OpenOptions say how to load a model.
type OpenOptions struct {
	Adapter       string // a PEFT LoRA adapter directory merged into the weights in memory
	NeedTokenizer bool   // a missing tokenizer is an error (otherwise Tok is nil)
	// CopyOnly loads for writing tensors back unchanged: BF16 checkpoints stay BF16 whatever
	// the compute dtype (prune from a scores file, merge).
	CopyOnly bool
	// Dir skips Resolve: the reference is already a local directory.
	Dir bool
}

// Opened is a loaded model with its tokenizer.
type Opened struct {
	Ref, Dir, Adapter string
	Model             *model.Model
	Tok               *tokenizer.Tokenizer // nil when the directory has none
	// AdapterMergeRelErr is how far the merged weights are from holding the adapter's update
	// (retrain.MergeStats): ~1e-7 in float32, larger when bf16 rounding swallows it.
	AdapterMergeRelErr float64
}

// Open resolves ref and loads the checkpoint in the engine's compute dtype.
func (e *Engine) Open(ctx context.Context, ref string, o OpenOptions) (*Opened, error) {
	dir := ref
	if !o.Dir {
		var err error
		if dir, err = e.Resolve(ctx, ref); err != nil {
			return nil, err
		}
	}
	dt := e.Compute
	if o.CopyOnly {
		dt = dtypes.Float32 // F32 tensors stay exact; BF16 ones stay bfloat16 (KeepBF16)
	}
	m, err := model.Load(dir, model.LoadOptions{DType: dt, KeepBF16: o.CopyOnly})
	if err != nil {
		return nil, err
	}
	var mergeErr float64
	if o.Adapter != "" {
		st, err := retrain.MergeAdapterStats(m, o.Adapter)
		if err != nil {
			return nil, err
		}
		mergeErr = st.RelErr
		e.noticeMerge(o.Adapter, model.DTypeName(m.ComputeDType()), mergeErr)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		if o.NeedTokenizer {
			return nil, fmt.Errorf("tokenizer: %w", err)
		}
		tok = nil
	}
	return &Opened{Ref: ref, Dir: dir, Adapter: o.Adapter, Model: m, Tok: tok, AdapterMergeRelErr: mergeErr}, nil
}

// MergeLossNotice is the relative error of a merged adapter's update above which a notice
// says the weights do not hold the update (bf16 rounding of small LoRA deltas).
const MergeLossNotice = 0.1

func (e *Engine) noticeMerge(adapter, dtype string, relErr float64) {
	if relErr > MergeLossNotice {
		fmt.Fprintf(e.Notices, "notice: adapter %s merged into %s weights keeps its update only to a relative error of %.2g (rounding); use --dtype f32 to evaluate it exactly\n",
			adapter, dtype, relErr)
	}
}

// Provenance is recorded in every evaluation result so runs can be compared later.
type Provenance struct {
	Model   string `json:"model"`
	Adapter string `json:"adapter,omitempty"`
	// AdapterMergeRelErr: see Opened (reported so a bf16 number is never silently off).
	AdapterMergeRelErr float64 `json:"adapter_merge_rel_err,omitempty"`
	ConfigHash         string  `json:"config_hash"`
	NumLayers          int     `json:"num_layers"`
	Params             int64   `json:"params"`
	Tokenizer          string  `json:"tokenizer,omitempty"`
	Backend            string  `json:"backend"`
	DType              string  `json:"dtype"`
	Version            string  `json:"tool_version"`
}

// Provenance describes o as run by e.
func (e *Engine) Provenance(o *Opened) Provenance {
	p := Provenance{Model: o.Dir, Adapter: o.Adapter, AdapterMergeRelErr: o.AdapterMergeRelErr, ConfigHash: o.Model.Config.Hash(), NumLayers: o.Model.Config.NumHiddenLayers,
		Params: o.Model.NumParams(), Backend: e.BackendName(), DType: model.DTypeName(o.Model.ComputeDType()), Version: e.Version}
	if o.Tok != nil {
		p.Tokenizer = o.Tok.Kind()
	}
	return p
}
