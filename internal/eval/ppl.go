package eval

import (
	"errors"
	"fmt"
	"math"
)

// Where Chunks puts the BOS token.
const (
	BOSOnce  = "once"  // BOS prepended to the whole stream, then chunked
	BOSEvery = "every" // every chunk is BOS + seqLen stream tokens
	BOSNone  = "none"  // plain stream chunks
)

// PPLResult is the outcome of one perplexity run. Perplexity fills the
// metric fields; EvalPerplexity also fills the protocol and provenance ones.
type PPLResult struct {
	PPL    float64 `json:"ppl"`    // exp(NLL)
	NLL    float64 `json:"nll"`    // mean negative log-likelihood per scored token (nats)
	Chunks int     `json:"chunks"` // chunks scored
	Tokens int     `json:"tokens"` // tokens predicted (BOS is never a target)

	SeqLen       int    `json:"seq_len"`
	BOS          string `json:"bos"`
	Dataset      string `json:"dataset,omitempty"`
	DataFile     string `json:"data_file,omitempty"`
	DataSHA256   string `json:"data_sha256,omitempty"`
	StreamTokens int    `json:"stream_tokens,omitempty"` // whole stream, before chunking
	MaxChunks    int    `json:"max_chunks"`              // 0 = all
}

// PPLOptions configures EvalPerplexity.
type PPLOptions struct {
	SeqLen    int    // stream tokens per chunk (--seq-len)
	BOS       string // BOSOnce, BOSEvery or BOSNone (--bos)
	MaxChunks int    // keep the first MaxChunks chunks; 0 keeps all (--max-chunks)
	BatchSize int    // chunks per LM.Score call; < 1 means 1
	// Progress, if set, is called after every batch with chunks done so far.
	Progress func(done, total int)
}

// EvalPerplexity runs the Shortened LLaMA perplexity protocol on one data
// file: BuildStream, Chunks, Perplexity.
func EvalPerplexity(lm LM, tok Tokenizer, path, dataset string, opts PPLOptions) (*PPLResult, error) {
	if err := checkChunking(opts.SeqLen, opts.BOS, opts.MaxChunks); err != nil {
		return nil, err
	}
	if opts.SeqLen > lm.MaxLen() {
		return nil, fmt.Errorf("--seq-len %d exceeds the model's max_position_embeddings %d", opts.SeqLen, lm.MaxLen())
	}
	st, err := BuildStream(path, dataset, tok)
	if err != nil {
		return nil, err
	}
	chunks, err := Chunks(st.Tokens, opts.SeqLen, opts.BOS, tok.BOS(), opts.MaxChunks)
	if err != nil {
		return nil, fmt.Errorf("data file %s: %w", path, err)
	}
	res, err := Perplexity(lm, chunks, opts.BatchSize, opts.Progress)
	if err != nil {
		return nil, fmt.Errorf("perplexity on %s: %w", path, err)
	}
	res.SeqLen, res.BOS, res.MaxChunks = opts.SeqLen, opts.BOS, opts.MaxChunks
	res.Dataset, res.DataFile, res.DataSHA256 = dataset, st.Path, st.SHA256
	res.StreamTokens = len(st.Tokens)
	return &res, nil
}

func checkChunking(seqLen int, bos string, maxChunks int) error {
	switch {
	case seqLen < 2:
		return fmt.Errorf("--seq-len %d: need at least 2", seqLen)
	case maxChunks < 0:
		return fmt.Errorf("--max-chunks %d: need 0 (all) or more", maxChunks)
	case bos != BOSOnce && bos != BOSEvery && bos != BOSNone:
		return fmt.Errorf("unknown --bos %q (want %s, %s or %s)", bos, BOSOnce, BOSEvery, BOSNone)
	}
	return nil
}

// Chunks cuts stream into non-overlapping windows of seqLen stream tokens,
// dropping the remainder, and keeps the first maxChunks (0 keeps all).
// bos places bosID: BOSOnce makes the stream BOS+stream before cutting (so
// only the first chunk starts with BOS and every chunk has seqLen tokens);
// BOSEvery prefixes each window with BOS (seqLen+1 tokens, seqLen scored);
// BOSNone adds nothing. The chunks share no memory with stream.
func Chunks(stream []int, seqLen int, bos string, bosID int, maxChunks int) ([][]int, error) {
	if err := checkChunking(seqLen, bos, maxChunks); err != nil {
		return nil, err
	}
	if bos != BOSNone && bosID < 0 {
		return nil, fmt.Errorf("--bos %s: the tokenizer has no BOS token", bos)
	}
	src := stream
	if bos == BOSOnce {
		src = append([]int{bosID}, stream...)
	}
	n := len(src) / seqLen
	if maxChunks > 0 && n > maxChunks {
		n = maxChunks
	}
	if n == 0 {
		return nil, fmt.Errorf("%d stream tokens give no chunk of --seq-len %d", len(stream), seqLen)
	}
	chunks := make([][]int, n)
	for i := range chunks {
		win := src[i*seqLen : (i+1)*seqLen]
		if bos == BOSEvery {
			chunks[i] = append([]int{bosID}, win...)
		} else {
			chunks[i] = append([]int(nil), win...)
		}
	}
	return chunks, nil
}

// Perplexity scores every chunk and returns exp of the mean NLL over all
// predicted tokens (token-weighted, not a mean of per-chunk perplexities).
// Each chunk may have at most lm.MaxLen()+1 tokens (see LM).
func Perplexity(lm LM, chunks [][]int, batchSize int, progress func(done, total int)) (PPLResult, error) {
	if len(chunks) == 0 {
		return PPLResult{}, fmt.Errorf("no chunks to score")
	}
	for i, c := range chunks {
		if len(c) < 2 || len(c) > lm.MaxLen()+1 {
			return PPLResult{}, fmt.Errorf("chunk %d has %d tokens; want 2..%d (max_position_embeddings+1)", i, len(c), lm.MaxLen()+1)
		}
	}
	batchSize = max(batchSize, 1)
	var nll float64
	var tokens int
	for start := 0; start < len(chunks); start += batchSize {
		batch := chunks[start:min(start+batchSize, len(chunks))]
		scored, err := scoreChecked(lm, batch)
		var nf *NotFiniteError
		if errors.As(err, &nf) {
			return PPLResult{}, fmt.Errorf("chunk %d of %d: %w", start+nf.Seq, len(chunks), err)
		}
		if err != nil {
			return PPLResult{}, fmt.Errorf("chunks %d..%d: %w", start, start+len(batch)-1, err)
		}
		for _, s := range scored {
			for _, lp := range s.LogProbs {
				nll -= lp
			}
			tokens += len(s.LogProbs)
		}
		if progress != nil {
			progress(start+len(batch), len(chunks))
		}
	}
	mean := nll / float64(tokens)
	return PPLResult{PPL: math.Exp(mean), NLL: mean, Chunks: len(chunks), Tokens: tokens}, nil
}
