// Package eval implements the model-independent half of shortllm's evaluation:
// the perplexity protocol of "Shortened LLaMA" (Kim et al. 2024) and the
// zero-shot multiple-choice protocol of lm-evaluation-harness v0.4.
//
// The package never sees a model. It turns data files into token sequences,
// hands them to an [LM] (implemented by internal/model) and turns the returned
// per-token log-probabilities into metrics. Text becomes tokens through the
// small [Tokenizer] interface, so internal/tokenizer stays replaceable and the
// tests can run against fakes.
//
// Perplexity: [BuildStream] reads a data file into one token stream,
// [Chunks] cuts it into fixed windows (BOS "once", "every" or "none"), and
// [Perplexity] returns exp(mean NLL) over every predicted token.
// [EvalPerplexity] does all three and records provenance. The perplexity
// goldens treat special-token text such as PTB's "<unk>" as plain characters
// (SentencePiece semantics); a tokenizer that implements [PlainEncoder] gets
// them encoded that way.
//
// Zero-shot: [LoadTask] parses one task's JSONL file (Hugging Face dataset
// layout) into lm-eval's contexts and continuations, [BuildRequests] applies
// lm-eval's whitespace moving, tokenisation and left truncation, and
// [RunZeroShot] scores every request, applies acc/acc_norm and returns a report
// shaped like the harness's results JSON.
package eval
