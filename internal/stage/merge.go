package stage

import (
	"context"
	"fmt"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/outdir"
	"github.com/shortllm/shortllm/internal/safetensors"
)

// MergeJob adds a PEFT LoRA adapter into a model (W += scale·B·A) and writes the checkpoint.
type MergeJob struct {
	Model, Adapter, Out string
	Force               bool
	// SaveDType is the stored dtype ("" keeps the model's). The merge itself is computed in
	// the engine's compute dtype: f32 (exact) unless bf16 was asked for.
	SaveDType safetensors.DType
}

// Merge runs the job; it returns the model's local directory.
func (e *Engine) Merge(ctx context.Context, j MergeJob) (string, error) {
	dir, err := e.Resolve(ctx, j.Model)
	if err != nil {
		return "", err
	}
	out, err := outdir.Begin(j.Out, outdir.Options{Inputs: []string{dir, j.Adapter}, Force: j.Force})
	if err != nil {
		return "", err
	}
	defer out.Close()
	o, err := e.Open(ctx, dir, OpenOptions{Dir: true, Adapter: j.Adapter})
	if err != nil {
		return "", err
	}
	if err := o.Model.WriteDir(out.Path(), model.SaveOptions{DType: j.SaveDType}); err != nil {
		return "", fmt.Errorf("save %s: %w", j.Out, err)
	}
	return dir, out.Commit()
}
