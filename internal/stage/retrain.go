package stage

import (
	"context"

	"github.com/shortllm/shortllm/internal/retrain"
)

// Retrain opens the model ref in the engine's compute dtype and runs j on it; j.Model,
// j.Backend, j.Tokenizer and (when unset) j.ModelRef and the padding id are filled here.
// In bf16, LoRA trains float32 adapters on the bf16 base and CPT keeps a float32 master
// copy of the weights with float32 AdamW moments (internal/retrain). remat decides whether
// the backward recomputes block activations (auto: memplan.RematDefault per micro-batch).
func (e *Engine) Retrain(ctx context.Context, ref string, j *retrain.Job, remat Remat) (*retrain.Result, error) {
	o, err := e.Open(ctx, ref, OpenOptions{})
	if err != nil {
		return nil, err
	}
	be, err := e.Backend()
	if err != nil {
		return nil, err
	}
	j.Model, j.Backend, j.Tokenizer = o.Model, be, o.Tok
	switch remat {
	case RematOn, RematOff:
		j.Loop.Remat = remat == RematOn
	default:
		j.Loop.Remat = retrain.RematDefault(o.Model, j.Loop.MicroBatchSize, j.DataOptions.SeqLen)
	}
	if j.ModelRef == "" {
		j.ModelRef = ref
	}
	if j.Loop.PadID == 0 && o.Tok != nil && o.Tok.PAD() > 0 {
		// Padding carries no label and sits after the real tokens, so any valid id works.
		j.Loop.PadID = o.Tok.PAD()
	}
	return j.Run()
}
