package model

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/shortllm/shortllm/internal/inputfile"
	"github.com/shortllm/shortllm/internal/outdir"
	"github.com/shortllm/shortllm/internal/safetensors"
)

// AuxFiles are the files besides config and weights that make a model directory usable
// (tokenizer and generation settings); Save copies those present in the source directory.
var AuxFiles = []string{
	"generation_config.json", "tokenizer.json", "tokenizer.model", "tokenizer_config.json",
	"special_tokens_map.json", "added_tokens.json",
}

// ProvenanceFiles are shortllm's records of how a checkpoint was made from another (which
// blocks were removed, which widths cut, which weights zeroed). Save carries those present in
// the source directory into every checkpoint derived from it (retrained, merged, converted),
// so `inspect` of a CPT-after-prune model still names the removed blocks. A record the saving
// stage writes itself (SaveOptions.Extra) replaces the carried one. A new kind of record is
// added here, and only here.
var ProvenanceFiles = []string{"shortllm_prune.json", "shortllm_width.json", "shortllm_sparsity.json"}

// SaveOptions control Save.
type SaveOptions struct {
	// DType forces every tensor's stored dtype (F32, F16, BF16); empty keeps what was loaded.
	DType safetensors.DType
	// MaxShardSize splits the weights into shards of at most this many bytes; 0 keeps the
	// source's style (sharded sources keep their shard size, single files stay single).
	MaxShardSize int64
	// Force replaces an existing output directory that shortllm wrote (see internal/outdir).
	Force bool
	// Inputs are paths the output must not overlap besides the model's own directory (an
	// adapter, data files).
	Inputs []string
	// Extra files to write into the directory (name → contents), e.g. a provenance record.
	Extra map[string][]byte
	// NoProvenance leaves the source's ProvenanceFiles behind: for weights that do not derive
	// from the source directory (init takes only its tokenizer).
	NoProvenance bool
}

// Save writes the model as a Hugging Face directory under shortllm's output rule
// (internal/outdir): dir must not overlap the model's own directory or opts.Inputs, an
// existing dir is replaced only with Force and only if shortllm wrote it, and the files are
// written into a temporary directory beside dir, fsynced and renamed into place.
func (m *Model) Save(dir string, opts SaveOptions) error {
	d, err := outdir.Begin(dir, outdir.Options{Inputs: append([]string{m.Dir}, opts.Inputs...), Force: opts.Force})
	if err != nil {
		return fmt.Errorf("save: %w", err)
	}
	defer d.Close()
	if err := m.WriteDir(d.Path(), opts); err != nil {
		return fmt.Errorf("save %s: %w", dir, err)
	}
	return d.Commit()
}

// WriteDir writes the model's files (config, weights, tokenizer files, opts.Extra) into dir,
// creating it if needed. It is for directories that are already staged, such as an
// outdir.Dir's Path or a subdirectory of one; Save is the complete, safe write.
func (m *Model) WriteDir(dir string, opts SaveOptions) error {
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return err
	}
	return m.writeInto(dir, opts)
}

func (m *Model) writeInto(dir string, opts SaveOptions) error {
	cfg := m.Config.Clone()
	if opts.DType != "" {
		cfg.TorchDtype = torchDtypeName(opts.DType)
		cfg.present["torch_dtype"] = true
	}
	cfgJSON, err := cfg.MarshalJSON()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), append(cfgJSON, '\n'), 0o644); err != nil {
		return err
	}
	tensors, err := m.encodeTensors(opts.DType)
	if err != nil {
		return err
	}
	shard := opts.MaxShardSize
	if shard == 0 && m.Sharded {
		shard = m.ShardSize
	}
	if err := safetensors.WriteCheckpoint(dir, tensors, map[string]string{"format": "pt"}, shard); err != nil {
		return err
	}
	carry := AuxFiles
	if !opts.NoProvenance {
		carry = append(append([]string(nil), AuxFiles...), ProvenanceFiles...)
	}
	if err := copyAux(m.Dir, dir, carry); err != nil {
		return err
	}
	if err := writeTokenizerConfig(dir, cfg); err != nil {
		return err
	}
	for name, data := range opts.Extra {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// encodeTensors converts every weight back to its stored dtype (or the forced one).
func (m *Model) encodeTensors(force safetensors.DType) ([]safetensors.Tensor, error) {
	names := m.Names()
	if m.StoredLMHead && m.Config.TieWordEmbeddings {
		names = append(names, "lm_head.weight")
	}
	out := make([]safetensors.Tensor, 0, len(names))
	for _, name := range names {
		src := name
		if name == "lm_head.weight" && m.Config.TieWordEmbeddings {
			src = "model.embed_tokens.weight"
		}
		w := m.Weights[src]
		dt := force
		if dt == "" {
			dt = m.StoredDTypes[name]
		}
		if dt == "" {
			dt = safetensors.F32
		}
		data, err := encodeTensor(w, dt)
		if err != nil {
			return nil, fmt.Errorf("tensor %s: %w", name, err)
		}
		out = append(out, safetensors.Tensor{Name: name, DType: dt, Shape: w.Shape().Dimensions, Data: data})
	}
	return out, nil
}

func torchDtypeName(dt safetensors.DType) string {
	switch dt {
	case safetensors.BF16:
		return "bfloat16"
	case safetensors.F16:
		return "float16"
	}
	return "float32"
}

// copyAux copies the named files that exist in src (if any) into dst.
func copyAux(src, dst string, names []string) error {
	if src == "" {
		return nil
	}
	for _, name := range names {
		if err := copyFile(filepath.Join(src, name), filepath.Join(dst, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := inputfile.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// encodeTensor returns w's bytes in dtype dt, reading the tensor's storage in place: a copy of
// the bytes where the dtypes agree, one conversion pass otherwise.
func encodeTensor(w *tensors.Tensor, dt safetensors.DType) (data []byte, err error) {
	if (w.DType() == dtypes.BFloat16 && dt == safetensors.BF16) || (w.DType() == dtypes.Float32 && dt == safetensors.F32) {
		if err := w.ConstBytes(func(b []byte) { data = bytes.Clone(b) }); err != nil {
			return nil, err
		}
		return data, nil
	}
	if w.DType() == dtypes.Float32 {
		tensors.MustConstFlatData(w, func(flat []float32) { data, err = safetensors.EncodeFloat32(flat, dt) })
		return data, err
	}
	return safetensors.EncodeFloat32(Float32Values(w), dt)
}
