package stage

import (
	"encoding/json"
	"fmt"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/retrain"
	"github.com/shortllm/shortllm/internal/score"
	"github.com/shortllm/shortllm/internal/width"
)

// WidthScores scores every head unit and FFN channel of o by each width criterion on the
// calibration windows. Progress bars are named "score STAGE".
func (e *Engine) WidthScores(o *Opened, criteria []string, c Calib, batch int) ([]*width.Scores, error) {
	calib, err := LoadCalib(o.Dir, c)
	if err != nil {
		return nil, err
	}
	r, err := e.Runner(o.Model)
	if err != nil {
		return nil, err
	}
	var out []*width.Scores
	for _, cr := range criteria {
		res, err := width.Run(r, width.Options{Criterion: cr, Windows: calib.IDs, BatchSize: batch,
			Progress: func(stage string) func(int, int) { return e.progress("score " + stage) }})
		if err != nil {
			return nil, err
		}
		out = append(out, res.Scores)
	}
	return out, nil
}

// WidthJob plans a width pruning by a criterion at a ratio (Options.Criterion and Ratio),
// or by LoRAPrune when LoRAPrune is set (its Data is read from LoRAData).
type WidthJob struct {
	Options   width.Options
	Calib     Calib
	LoRAData  string
	LoRAPrune *width.LoRAPruneOptions
	LoRARank  int
	LR        float64
}

// WidthPlan scores o and returns the units to remove, with the calibration windows used (as
// JSON, for the record). With LoRAPrune, Result.Trained is the fine-tuned model the units
// are removed from.
func (e *Engine) WidthPlan(o *Opened, j WidthJob) (*width.Result, []byte, error) {
	calib, err := LoadCalib(o.Dir, j.Calib)
	if err != nil {
		return nil, nil, err
	}
	r, err := e.Runner(o.Model)
	if err != nil {
		return nil, nil, err
	}
	opts := j.Options
	opts.Windows = calib.IDs
	if opts.Progress == nil {
		opts.Progress = func(stage string) func(int, int) { return e.progress(stage) }
	}
	var res *width.Result
	if j.LoRAPrune != nil {
		res, err = e.loraPrune(r, o, opts, j)
	} else {
		res, err = width.Run(r, opts)
	}
	if err != nil {
		return nil, nil, err
	}
	cj, err := json.Marshal(calib)
	return res, cj, err
}

// loraPrune runs LoRAPrune with retrain's LoRA defaults (AdamW, constant schedule, batch 16).
func (e *Engine) loraPrune(r *model.Runner, o *Opened, opts width.Options, j WidthJob) (*width.Result, error) {
	if o.Tok == nil {
		return nil, fmt.Errorf("LoRAPrune data %s needs the model's tokenizer", j.LoRAData)
	}
	seqLen := j.Calib.SeqLen
	if seqLen == 0 {
		seqLen = score.DefaultSeqLen
	}
	data, err := retrain.LoadDataset(j.LoRAData, o.Tok, retrain.DataOptions{SeqLen: seqLen})
	if err != nil {
		return nil, err
	}
	lp := *j.LoRAPrune
	lp.Data = data
	lp.LoRA = retrain.NewLoRAConfig(j.LoRARank, 2*float64(j.LoRARank), 0.05, retrain.DefaultTargetModules, false)
	lp.Train = retrain.Options{Optim: retrain.DefaultAdamW(retrain.ModeLoRA, j.LR), Schedule: "constant", BatchSize: 16,
		MicroBatchSize: 4, Seed: j.Calib.Seed, PadID: max(o.Tok.PAD(), 0)}
	res, trained, err := width.LoRAPrune(r, opts, lp)
	if err != nil {
		return nil, err
	}
	res.Trained = trained
	return res, nil
}
