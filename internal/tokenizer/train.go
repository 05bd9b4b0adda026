package tokenizer

// A small byte-level BPE trainer. It writes Hugging Face tokenizer.json files (GPT-2 style:
// ByteLevel pre-tokenizer and decoder, 256 byte tokens, learned merges, BOS/EOS as added
// tokens) so the project can build its own demo model without Python; LoadHF reads them.

import (
	"encoding/json"
	"fmt"
	"sort"
)

// TrainOptions configure TrainByteLevel.
type TrainOptions struct {
	// VocabSize counts every id: 256 bytes + merges + BOS + EOS.
	VocabSize int
	// BOS and EOS are the added tokens' texts (default "<s>" and "</s>").
	BOS, EOS string
}

// Trained is a learned byte-level BPE vocabulary.
type Trained struct {
	Merges [][2]string // in rank order
	BOS    string
	EOS    string
}

// Byte ids are the byte values; merge i gets id 256+i; BOS and EOS follow the merges.
const numByteTokens = 256

// TrainByteLevel learns merges on text as byte-level BPE training does: split text with the
// GPT-2 pattern, then repeatedly merge the most frequent adjacent pair (ties broken by the
// pair's text, so a run is deterministic) until the vocabulary is full or no pair repeats.
func TrainByteLevel(text string, o TrainOptions) (*Trained, error) {
	if o.BOS == "" {
		o.BOS = "<s>"
	}
	if o.EOS == "" {
		o.EOS = "</s>"
	}
	numMerges := o.VocabSize - numByteTokens - 2
	if numMerges < 0 {
		return nil, fmt.Errorf("vocab size %d: need at least %d (256 bytes + BOS + EOS)", o.VocabSize, numByteTokens+2)
	}
	words := countWords(text)
	t := &Trained{BOS: o.BOS, EOS: o.EOS}
	tokens := make([]string, numByteTokens, numByteTokens+numMerges)
	for b := range numByteTokens {
		tokens[b] = string(byteLevelRune(byte(b)))
	}
	for len(t.Merges) < numMerges {
		a, b, ok := bestPair(words, tokens)
		if !ok {
			break
		}
		id := len(tokens)
		tokens = append(tokens, tokens[a]+tokens[b])
		t.Merges = append(t.Merges, [2]string{tokens[a], tokens[b]})
		for _, w := range words {
			w.syms = mergePair(w.syms, a, b, id)
		}
	}
	return t, nil
}

// trainWord is one distinct pre-tokenized word: its current symbols and how often it occurs.
type trainWord struct {
	syms  []int
	count int
}

// countWords pre-tokenizes text exactly as the written tokenizer.json will (ByteLevel, no
// prefix space, GPT-2 regex), so every learned merge applies at encoding time.
func countWords(text string) []*trainWord {
	counts := map[string]int{}
	for _, w := range byteLevelPreTokenizer(false, true)([]string{text}, true) {
		counts[w]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys) // map order must not leak into the result
	words := make([]*trainWord, len(keys))
	for i, k := range keys {
		w := &trainWord{count: counts[k]}
		for _, r := range k {
			b, _ := byteLevelByte(r)
			w.syms = append(w.syms, int(b))
		}
		words[i] = w
	}
	return words
}

// bestPair returns the most frequent adjacent pair; among equals, the smallest by text.
func bestPair(words []*trainWord, tokens []string) (a, b int, ok bool) {
	counts := map[[2]int]int{}
	for _, w := range words {
		for i := 0; i+1 < len(w.syms); i++ {
			counts[[2]int{w.syms[i], w.syms[i+1]}] += w.count
		}
	}
	best, bestN := [2]int{}, 1 // a pair seen once saves nothing
	for p, n := range counts {
		if n > bestN || (n == bestN && ok && pairLess(p, best, tokens)) {
			best, bestN, ok = p, n, true
		}
	}
	return best[0], best[1], ok
}

func pairLess(p, q [2]int, tokens []string) bool {
	if tokens[p[0]] != tokens[q[0]] {
		return tokens[p[0]] < tokens[q[0]]
	}
	return tokens[p[1]] < tokens[q[1]]
}

// mergePair replaces every a,b in syms (left to right, as BPE applies a merge) with id.
func mergePair(syms []int, a, b, id int) []int {
	out := syms[:0]
	for i := 0; i < len(syms); i++ {
		if i+1 < len(syms) && syms[i] == a && syms[i+1] == b {
			out = append(out, id)
			i++
			continue
		}
		out = append(out, syms[i])
	}
	return out
}

// BOSID and EOSID are the added tokens' ids.
func (t *Trained) BOSID() int { return numByteTokens + len(t.Merges) }
func (t *Trained) EOSID() int { return t.BOSID() + 1 }

// VocabSize is the number of ids, added tokens included.
func (t *Trained) VocabSize() int { return t.EOSID() + 1 }

// MarshalJSON writes the Hugging Face tokenizer.json. BOS is added before every encoded
// sequence (TemplateProcessing), as LLaMA tokenizers do.
func (t *Trained) MarshalJSON() ([]byte, error) {
	vocab := make(map[string]int, numByteTokens+len(t.Merges))
	for b := range numByteTokens {
		vocab[string(byteLevelRune(byte(b)))] = b
	}
	for i, m := range t.Merges {
		vocab[m[0]+m[1]] = numByteTokens + i
	}
	added := func(id int, s string) map[string]any {
		return map[string]any{"id": id, "content": s, "single_word": false, "lstrip": false,
			"rstrip": false, "normalized": false, "special": true}
	}
	byteLevel := map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}
	doc := map[string]any{
		"version":       "1.0",
		"truncation":    nil,
		"padding":       nil,
		"added_tokens":  []any{added(t.BOSID(), t.BOS), added(t.EOSID(), t.EOS)},
		"normalizer":    nil,
		"pre_tokenizer": byteLevel,
		"post_processor": map[string]any{
			"type":           "TemplateProcessing",
			"single":         []any{map[string]any{"SpecialToken": map[string]any{"id": t.BOS, "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}},
			"pair":           []any{map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "B", "type_id": 1}}},
			"special_tokens": map[string]any{t.BOS: map[string]any{"id": t.BOS, "ids": []int{t.BOSID()}, "tokens": []string{t.BOS}}},
		},
		"decoder": byteLevel,
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
			"vocab": vocab, "merges": t.Merges},
	}
	return json.MarshalIndent(doc, "", " ")
}
