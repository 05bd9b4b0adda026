package stage

import (
	"context"
	"fmt"

	"github.com/shortllm/shortllm/internal/retrain"
)

// Retrain opens the model ref in the engine's compute dtype and runs j on it; j.Model,
// j.Backend, j.Tokenizer and (when unset) j.ModelRef and the padding id are filled here.
func (e *Engine) Retrain(ctx context.Context, ref string, j *retrain.Job) (*retrain.Result, error) {
	if e.IsBF16() && j.Mode != retrain.ModeLoRA {
		return nil, fmt.Errorf("retrain mode %s in bf16: only lora trains on a bf16 base (cpt updates float32 weights)", j.Mode)
	}
	o, err := e.Open(ctx, ref, OpenOptions{})
	if err != nil {
		return nil, err
	}
	be, err := e.Backend()
	if err != nil {
		return nil, err
	}
	j.Model, j.Backend, j.Tokenizer = o.Model, be, o.Tok
	if j.ModelRef == "" {
		j.ModelRef = ref
	}
	if j.Loop.PadID == 0 && o.Tok != nil && o.Tok.PAD() > 0 {
		// Padding carries no label and sits after the real tokens, so any valid id works.
		j.Loop.PadID = o.Tok.PAD()
	}
	return j.Run()
}
