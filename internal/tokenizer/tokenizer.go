package tokenizer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Kinds reported by Tokenizer.Kind.
const (
	KindSentencePiece = "sentencepiece"
	KindHFBPE         = "hf-bpe"
	KindHFByteLevel   = "hf-bpe-bytelevel"
)

// normalizer rewrites one segment of input text (between added tokens).
type normalizer func(string) string

// preTokenizer splits words further; first is true for the segment at the very start of
// the input (Metaspace's "first" prepend scheme depends on it).
type preTokenizer func(words []string, first bool) []string

// decoderFunc transforms a token list, as a Hugging Face decoder's decode_chain does.
type decoderFunc func([]string) []string

// wordModel turns one pre-tokenized word into ids, appending them to dst.
type wordModel interface {
	encodeWord(word string, dst []int) []int
}

// Tokenizer encodes text to token ids and back. Build one with Load, LoadHF or
// LoadSentencePiece.
type Tokenizer struct {
	kind      string
	tokens    []string // id -> token text; "" for ids without a token
	vocab     map[string]int
	special   []bool // ids dropped by Decode
	added     *addedMatcher
	addedNorm *addedMatcher // added tokens matched after normalisation
	normalize normalizer
	pretok    preTokenizer
	model     wordModel
	decoders  []decoderFunc
	prefix    []int // ids added before the text when addSpecial is true
	suffix    []int
	bos, eos  int
	pad       int
	cache     *wordCache
	// splitAtSpace: no token has "▁" after another character, so no merge crosses the
	// start of a "▁" run and words can be cut there. This turns a whole SentencePiece
	// text into cacheable words.
	splitAtSpace bool
}

// wordCache remembers the ids of short words; text repeats words, so this skips most of
// the BPE work. It is bounded and safe for concurrent use.
type wordCache struct {
	mu sync.RWMutex
	m  map[string][]int
}

const (
	maxCachedWordLen = 64
	maxCacheEntries  = 1 << 16
)

func (c *wordCache) get(w string) ([]int, bool) {
	c.mu.RLock()
	ids, ok := c.m[w]
	c.mu.RUnlock()
	return ids, ok
}

func (c *wordCache) put(w string, ids []int) {
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCacheEntries {
		c.m = make(map[string][]int)
	}
	c.m[w] = ids
	c.mu.Unlock()
}

// Load reads the tokenizer in a model directory. Like transformers, it prefers
// tokenizer.json over tokenizer.model, then applies tokenizer_config.json,
// special_tokens_map.json and generation_config.json for the special tokens.
func Load(dir string) (*Tokenizer, error) {
	var t *Tokenizer
	var err error
	hf, sp := filepath.Join(dir, "tokenizer.json"), filepath.Join(dir, "tokenizer.model")
	switch {
	case fileExists(hf):
		t, err = LoadHF(hf)
	case fileExists(sp):
		t, err = LoadSentencePiece(sp)
	default:
		return nil, fmt.Errorf("tokenizer %s: no tokenizer.json or tokenizer.model", dir)
	}
	if err != nil {
		return nil, err
	}
	if err := t.applyConfigs(dir); err != nil {
		return nil, err
	}
	return t, nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// Encode returns the token ids of text. With addSpecial, the special tokens of the
// tokenizer's template (such as BOS) are added.
func (t *Tokenizer) Encode(text string, addSpecial bool) []int {
	ids := make([]int, 0, len(text)/3+len(t.prefix)+len(t.suffix)+1)
	if addSpecial {
		ids = append(ids, t.prefix...)
	}
	for _, seg := range t.added.split(text) {
		if seg.id >= 0 {
			ids = append(ids, seg.id)
			continue
		}
		ids = t.encodeSegment(seg.text, seg.start == 0, true, ids)
	}
	if addSpecial {
		ids = append(ids, t.suffix...)
	}
	return ids
}

// EncodePlain encodes text as plain characters: no BOS/EOS and no matching of special or
// added tokens, so "<unk>" in a corpus is five characters, as SentencePiece reads it. Corpus
// perplexity (Penn Treebank is full of "<unk>") follows this rule; prompts use Encode.
func (t *Tokenizer) EncodePlain(text string) []int {
	return t.encodeSegment(text, true, false, make([]int, 0, len(text)/3+1))
}

func (t *Tokenizer) encodeSegment(text string, first, matchAdded bool, ids []int) []int {
	if t.normalize != nil {
		text = t.normalize(text)
	}
	segs := []segment{{text: text, id: -1}}
	if matchAdded {
		segs = t.addedNorm.split(text)
	}
	for _, seg := range segs {
		if seg.id >= 0 {
			ids = append(ids, seg.id)
			continue
		}
		words := []string{seg.text}
		if t.pretok != nil {
			words = t.pretok(words, first && seg.start == 0)
		}
		for _, w := range words {
			if t.splitAtSpace {
				ids = t.encodeSpaceRuns(w, ids)
				continue
			}
			ids = t.encodeWord(w, ids)
		}
	}
	return ids
}

// encodeSpaceRuns encodes w cut before each "▁" that follows another character.
func (t *Tokenizer) encodeSpaceRuns(w string, ids []int) []int {
	start := 0
	for i := 1; i < len(w); i++ {
		if strings.HasPrefix(w[i:], spaceSymbol) && !strings.HasSuffix(w[:i], spaceSymbol) {
			ids = t.encodeWord(w[start:i], ids)
			start = i
		}
	}
	return t.encodeWord(w[start:], ids)
}

// canSplitAtSpace reports whether no token holds "▁" after another character.
func canSplitAtSpace(tokens []string) bool {
	for _, tok := range tokens {
		for i := 1; i < len(tok); i++ {
			if strings.HasPrefix(tok[i:], spaceSymbol) && !strings.HasSuffix(tok[:i], spaceSymbol) {
				return false
			}
		}
	}
	return true
}

func (t *Tokenizer) encodeWord(w string, ids []int) []int {
	if w == "" {
		return ids
	}
	if len(w) > maxCachedWordLen {
		return t.model.encodeWord(w, ids)
	}
	if cached, ok := t.cache.get(w); ok {
		return append(ids, cached...)
	}
	n := len(ids)
	ids = t.model.encodeWord(w, ids)
	t.cache.put(w, append([]int(nil), ids[n:]...))
	return ids
}

// Decode returns the text of ids, dropping special tokens and unknown ids, like Hugging
// Face's decode(ids, skip_special_tokens=True) without clean-up of spaces.
func (t *Tokenizer) Decode(ids []int) string {
	toks := make([]string, 0, len(ids))
	for _, id := range ids {
		if id < 0 || id >= len(t.tokens) || t.special[id] || t.tokens[id] == "" {
			continue
		}
		toks = append(toks, t.tokens[id])
	}
	for _, d := range t.decoders {
		toks = d(toks)
	}
	return strings.Join(toks, "")
}

// TokenToID returns the id of a token's text (as in the vocabulary, e.g. "▁the").
func (t *Tokenizer) TokenToID(tok string) (int, bool) {
	id, ok := t.vocab[tok]
	return id, ok
}

// IDToToken returns the vocabulary text of id.
func (t *Tokenizer) IDToToken(id int) (string, bool) {
	if id < 0 || id >= len(t.tokens) {
		return "", false
	}
	if t.tokens[id] == "" { // a gap in the ids, unless "" really is a token
		if v, ok := t.vocab[""]; !ok || v != id {
			return "", false
		}
	}
	return t.tokens[id], true
}

// BOS returns the beginning-of-sequence id, or -1.
func (t *Tokenizer) BOS() int { return t.bos }

// EOS returns the end-of-sequence id, or -1.
func (t *Tokenizer) EOS() int { return t.eos }

// PAD returns the padding id, or -1.
func (t *Tokenizer) PAD() int { return t.pad }

// VocabSize returns one more than the largest token id.
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// Kind names the tokenizer's format: KindSentencePiece, KindHFBPE or KindHFByteLevel.
func (t *Tokenizer) Kind() string { return t.kind }

// setTokens builds the id <-> text tables from a vocabulary, rejecting negative ids.
func (t *Tokenizer) setTokens(vocab map[string]int) error {
	maxID := -1
	for tok, id := range vocab {
		if id < 0 {
			return fmt.Errorf("token %q has negative id %d", tok, id)
		}
		maxID = max(maxID, id)
	}
	if maxID >= maxTokenID {
		return fmt.Errorf("token id %d is implausibly large", maxID)
	}
	t.vocab = vocab
	t.tokens = make([]string, maxID+1)
	for tok, id := range vocab {
		t.tokens[id] = tok
	}
	t.special = make([]bool, maxID+1)
	return nil
}

var errNoVocab = errors.New("empty vocabulary")

// maxTokenID bounds ids read from files, so a corrupt id cannot make the id tables
// allocate gigabytes; real vocabularies are far below it.
const maxTokenID = 1 << 22
