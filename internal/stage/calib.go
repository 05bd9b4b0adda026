package stage

import (
	"github.com/shortllm/shortllm/internal/score"
	"github.com/shortllm/shortllm/internal/tokenizer"
)

// Calib names calibration data and how windows are drawn from text: what score, prune
// --criterion, search, width pruning and sparsify all read.
type Calib struct {
	Path string
	score.CalibOptions
}

// LoadCalib reads c with the tokenizer of the model in modelDir (needed for text files only;
// LoadCalibration says so when it is missing).
func LoadCalib(modelDir string, c Calib) (*score.Calibration, error) {
	var tok score.Tokenizer
	if t, err := tokenizer.Load(modelDir); err == nil { // a nil *Tokenizer must not reach the interface
		tok = t
	}
	return score.LoadCalibration(c.Path, tok, c.CalibOptions)
}
