package stage

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/shortllm/shortllm/internal/eval"
	"github.com/shortllm/shortllm/internal/model"
)

// PPLFile is one perplexity dataset: a file and its row rule (wikitext2, ptb or text).
type PPLFile struct {
	Name, Path, Dataset string
}

// PPLJob measures perplexity on every file in every BOS mode (both of the paper's when BOS
// is empty: once at the stream start, and at every chunk).
type PPLJob struct {
	Files      []PPLFile
	BOS        []string
	SeqLen     int
	MaxChunks  int
	BatchSize  int
	SkipBlocks []int
}

// PPLTiming is the forward throughput of one perplexity run: input tokens (chunks × seq-len)
// per second. The first batch also compiles the graph (seconds on XLA), so the throughput of
// the batches after it is reported as well.
type PPLTiming struct {
	WallS            float64 `json:"wall_s"`
	Tokens           int     `json:"tokens"`
	TokensPerS       float64 `json:"tokens_per_s"`
	SteadyTokensPerS float64 `json:"steady_tokens_per_s,omitempty"` // after the first batch
	FirstBatchS      float64 `json:"first_batch_s"`
}

// PPLRun is one file × BOS mode.
type PPLRun struct {
	Name   string
	Result *eval.PPLResult
	Timing PPLTiming
}

// PPL runs the job on o (which needs its tokenizer). Progress bars are named
// "ppl NAME bos=MODE".
func (e *Engine) PPL(o *Opened, j PPLJob) ([]PPLRun, error) {
	if o.Tok == nil {
		return nil, fmt.Errorf("perplexity on %s needs the model's tokenizer", o.Dir)
	}
	if err := model.CheckSkipBlocks(o.Model.Config, j.SkipBlocks); err != nil {
		return nil, err
	}
	r, err := e.Runner(o.Model)
	if err != nil {
		return nil, err
	}
	lm := eval.RunnerLM{Runner: r, SkipBlocks: j.SkipBlocks}
	modes := j.BOS
	if len(modes) == 0 {
		modes = []string{eval.BOSOnce, eval.BOSEvery}
	}
	var runs []PPLRun
	for _, f := range j.Files {
		name := f.Name
		if name == "" {
			name = filepath.Base(f.Path)
		}
		for _, bos := range modes {
			run, err := e.pplRun(lm, o, f, bos, j, e.progress(fmt.Sprintf("ppl %s bos=%s", name, bos)))
			if err != nil {
				return nil, err
			}
			run.Name = name
			runs = append(runs, run)
		}
	}
	return runs, nil
}

func (e *Engine) pplRun(lm eval.RunnerLM, o *Opened, f PPLFile, bos string, j PPLJob, progress func(done, total int)) (PPLRun, error) {
	start := time.Now()
	var first time.Time
	firstChunks := 0
	res, err := eval.EvalPerplexity(lm, o.Tok, f.Path, f.Dataset, eval.PPLOptions{
		SeqLen: j.SeqLen, BOS: bos, MaxChunks: j.MaxChunks, BatchSize: j.BatchSize,
		Progress: func(done, total int) {
			if first.IsZero() {
				first, firstChunks = time.Now(), done
			}
			if progress != nil {
				progress(done, total)
			}
		},
	})
	if err != nil {
		return PPLRun{}, err
	}
	wall := time.Since(start).Seconds()
	tm := PPLTiming{WallS: wall, Tokens: res.Chunks * res.SeqLen, FirstBatchS: first.Sub(start).Seconds()}
	tm.TokensPerS = float64(tm.Tokens) / wall
	if rest := time.Since(first).Seconds(); res.Chunks > firstChunks && rest > 0 {
		tm.SteadyTokensPerS = float64((res.Chunks-firstChunks)*res.SeqLen) / rest
	}
	return PPLRun{Result: res, Timing: tm}, nil
}
