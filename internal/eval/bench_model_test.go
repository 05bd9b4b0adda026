package eval

import "testing"

// BenchmarkPerplexity_Deep16 reports scored tokens/s of the PPL protocol on deep16
// (16 chunks of 128 tokens, BOS every chunk, batches of 4).
func BenchmarkPerplexity_Deep16(b *testing.B) {
	lm, tok := goldenRunner(b, "deep16")
	path := sharedPath(b, "data", "stories", "heldout.jsonl")
	opts := PPLOptions{SeqLen: 128, BOS: BOSEvery, MaxChunks: 16, BatchSize: 4}
	if _, err := EvalPerplexity(lm, tok, path, DatasetText, opts); err != nil { // compile first
		b.Fatal(err)
	}
	b.ResetTimer()
	tokens := 0
	for i := 0; i < b.N; i++ {
		res, err := EvalPerplexity(lm, tok, path, DatasetText, opts)
		if err != nil {
			b.Fatal(err)
		}
		tokens += res.Tokens
	}
	b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tokens/s")
}
