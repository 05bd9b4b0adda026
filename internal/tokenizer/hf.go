package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/shortllm/shortllm/internal/inputfile"
)

type hfFile struct {
	AddedTokens   []addedToken    `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	Model         json.RawMessage `json:"model"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
}

type hfPattern struct {
	String *string `json:"String"`
	Regex  *string `json:"Regex"`
}

// hfComponent holds the fields of every normalizer, pre-tokenizer, decoder and
// post-processor type this package supports; Type selects which are meaningful.
type hfComponent struct {
	Type           string            `json:"type"`
	Normalizers    []json.RawMessage `json:"normalizers"`
	Pretokenizers  []json.RawMessage `json:"pretokenizers"`
	Decoders       []json.RawMessage `json:"decoders"`
	Processors     []json.RawMessage `json:"processors"`
	Prepend        string            `json:"prepend"`
	Pattern        hfPattern         `json:"pattern"`
	Content        string            `json:"content"`
	Behavior       string            `json:"behavior"`
	Invert         bool              `json:"invert"`
	AddPrefixSpace *bool             `json:"add_prefix_space"`
	UseRegex       *bool             `json:"use_regex"`
	Replacement    string            `json:"replacement"`
	PrependScheme  string            `json:"prepend_scheme"`
	Split          *bool             `json:"split"`
	Start          int               `json:"start"`
	Stop           int               `json:"stop"`
	StripLeft      bool              `json:"strip_left"`
	StripRight     bool              `json:"strip_right"`
	Single         []hfTemplateItem  `json:"single"`
	SpecialTokens  map[string]struct {
		IDs []int `json:"ids"`
	} `json:"special_tokens"`
}

type hfTemplateItem struct {
	SpecialToken *struct {
		ID string `json:"id"`
	} `json:"SpecialToken"`
	Sequence *struct {
		ID string `json:"id"`
	} `json:"Sequence"`
}

type hfModel struct {
	Type                    string          `json:"type"`
	Vocab                   json.RawMessage `json:"vocab"`
	Merges                  json.RawMessage `json:"merges"`
	UnkToken                *string         `json:"unk_token"`
	ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
	FuseUnk                 bool            `json:"fuse_unk"`
	ByteFallback            bool            `json:"byte_fallback"`
	IgnoreMerges            bool            `json:"ignore_merges"`
}

// LoadHF reads a Hugging Face tokenizer.json with a BPE model. Load also applies a model
// directory's config files.
func LoadHF(path string) (*Tokenizer, error) {
	buf, err := inputfile.Read(path, inputfile.TokenizerLimit)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	t, err := parseHF(buf)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	return t, nil
}

func parseHF(buf []byte) (*Tokenizer, error) {
	var f hfFile
	if err := json.Unmarshal(buf, &f); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if isNull(f.Model) {
		return nil, errors.New("no model")
	}
	t := &Tokenizer{kind: KindHFBPE, cache: &wordCache{}, bos: -1, eos: -1, pad: -1}
	model, err := parseHFModel(t, f.Model)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	t.model = model
	t.splitAtSpace = !model.ignoreMerges && canSplitAtSpace(t.tokens)
	if err := t.addAddedTokens(f.AddedTokens); err != nil {
		return nil, fmt.Errorf("added_tokens: %w", err)
	}
	if err := t.buildPipeline(&f); err != nil {
		return nil, err
	}
	t.guessSpecialIDs(f.AddedTokens)
	return t, nil
}

func isNull(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null"
}

func (t *Tokenizer) buildPipeline(f *hfFile) error {
	var err error
	if t.normalize, err = buildNormalizer(f.Normalizer); err != nil {
		return fmt.Errorf("normalizer: %w", err)
	}
	if t.pretok, err = buildPreTokenizer(f.PreTokenizer); err != nil {
		return fmt.Errorf("pre_tokenizer: %w", err)
	}
	if t.decoders, err = buildDecoders(f.Decoder); err != nil {
		return fmt.Errorf("decoder: %w", err)
	}
	if t.prefix, t.suffix, err = buildPostProcessor(f.PostProcessor, t); err != nil {
		return fmt.Errorf("post_processor: %w", err)
	}
	if strings.Contains(string(f.PreTokenizer), `"ByteLevel"`) || strings.Contains(string(f.Decoder), `"ByteLevel"`) {
		t.kind = KindHFByteLevel
	}
	t.splitNormalizedAdded(f.AddedTokens)
	return nil
}

func parseHFModel(t *Tokenizer, raw json.RawMessage) (*hfBPE, error) {
	var hm hfModel
	if err := json.Unmarshal(raw, &hm); err != nil {
		return nil, err
	}
	if hm.Type != "BPE" && (hm.Type != "" || isNull(hm.Merges)) {
		return nil, fmt.Errorf("unsupported model type %q (only BPE is implemented)", hm.Type)
	}
	var vocab map[string]int
	if err := json.Unmarshal(hm.Vocab, &vocab); err != nil {
		return nil, fmt.Errorf("vocab: %w", err)
	}
	if len(vocab) == 0 {
		return nil, errNoVocab
	}
	if err := t.setTokens(vocab); err != nil {
		return nil, fmt.Errorf("vocab: %w", err)
	}
	return newHFBPE(&hm, vocab)
}

func newHFBPE(hm *hfModel, vocab map[string]int) (*hfBPE, error) {
	m := &hfBPE{vocab: vocab, unk: -1, fuseUnk: hm.FuseUnk, byteFallback: hm.ByteFallback, ignoreMerges: hm.IgnoreMerges}
	if hm.ContinuingSubwordPrefix != nil {
		m.prefix = *hm.ContinuingSubwordPrefix
	}
	if hm.EndOfWordSuffix != nil {
		m.suffix = *hm.EndOfWordSuffix
	}
	if hm.UnkToken != nil {
		id, ok := vocab[*hm.UnkToken]
		if !ok {
			return nil, fmt.Errorf("unk_token %q is not in the vocab", *hm.UnkToken)
		}
		m.unk = id
	}
	m.initByteIDs()
	pairs, err := parseMerges(hm.Merges)
	if err != nil {
		return nil, err
	}
	return m, m.addMerges(pairs)
}

// parseMerges accepts both layouts: "a b" strings (older files) and [a, b] pairs.
func parseMerges(raw json.RawMessage) ([][2]string, error) {
	if isNull(raw) {
		return nil, nil
	}
	var strs []string
	if err := json.Unmarshal(raw, &strs); err == nil {
		pairs := make([][2]string, len(strs))
		for i, s := range strs {
			a, b, ok := strings.Cut(s, " ")
			if !ok || strings.Contains(b, " ") {
				return nil, fmt.Errorf("merge %d %q is not two tokens separated by one space", i, s)
			}
			pairs[i] = [2]string{a, b}
		}
		return pairs, nil
	}
	var pairs [][2]string
	if err := json.Unmarshal(raw, &pairs); err != nil {
		return nil, fmt.Errorf("merges: neither \"a b\" strings nor [a, b] pairs: %w", err)
	}
	return pairs, nil
}

// addAddedTokens adds the added tokens to the id tables (Llama-3's live above the BPE
// vocab) and prepares the raw-text matcher for those not normalised.
func (t *Tokenizer) addAddedTokens(toks []addedToken) error {
	var raw []addedToken
	for _, a := range toks {
		if a.ID < 0 || a.ID >= maxTokenID {
			return fmt.Errorf("token %q has invalid id %d", a.Content, a.ID)
		}
		for a.ID >= len(t.tokens) {
			t.tokens = append(t.tokens, "")
			t.special = append(t.special, false)
		}
		t.tokens[a.ID] = a.Content
		t.vocab[a.Content] = a.ID
		t.special[a.ID] = a.Special
		if !a.Normalized {
			raw = append(raw, a)
		}
	}
	t.added = newAddedMatcher(raw)
	return nil
}

// splitNormalizedAdded prepares the matcher for added tokens flagged normalized; like
// Hugging Face, their content is normalised before it is matched in normalised text.
func (t *Tokenizer) splitNormalizedAdded(toks []addedToken) {
	var norm []addedToken
	for _, a := range toks {
		if a.Normalized {
			if t.normalize != nil {
				a.Content = t.normalize(a.Content)
			}
			norm = append(norm, a)
		}
	}
	t.addedNorm = newAddedMatcher(norm)
}

// guessSpecialIDs sets BOS from the template and EOS from a conventional token; Load
// replaces both from the config files when a model directory has them.
func (t *Tokenizer) guessSpecialIDs(toks []addedToken) {
	if len(t.prefix) > 0 {
		t.bos = t.prefix[0]
	}
	for _, name := range []string{"</s>", "<|end_of_text|>", "<|endoftext|>"} {
		if id, ok := t.vocab[name]; ok {
			t.eos = id
			return
		}
	}
}

func parseComponent(raw json.RawMessage) (*hfComponent, error) {
	var c hfComponent
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

func buildNormalizer(raw json.RawMessage) (normalizer, error) {
	if isNull(raw) {
		return nil, nil
	}
	c, err := parseComponent(raw)
	if err != nil {
		return nil, err
	}
	switch c.Type {
	case "Sequence":
		var ns []normalizer
		for i, r := range c.Normalizers {
			n, err := buildNormalizer(r)
			if err != nil {
				return nil, fmt.Errorf("%d: %w", i, err)
			}
			if n != nil {
				ns = append(ns, n)
			}
		}
		return sequenceNormalizer(ns), nil
	case "Prepend":
		return prependNormalizer(c.Prepend), nil
	case "Replace":
		return replaceNormalizer(c.Pattern, c.Content)
	}
	return simpleNormalizer(c)
}

func buildPreTokenizer(raw json.RawMessage) (preTokenizer, error) {
	if isNull(raw) {
		return nil, nil
	}
	c, err := parseComponent(raw)
	if err != nil {
		return nil, err
	}
	switch c.Type {
	case "Sequence":
		var ps []preTokenizer
		for i, r := range c.Pretokenizers {
			p, err := buildPreTokenizer(r)
			if err != nil {
				return nil, fmt.Errorf("%d: %w", i, err)
			}
			if p != nil {
				ps = append(ps, p)
			}
		}
		return sequencePreTokenizer(ps), nil
	case "Split":
		return buildSplit(c)
	case "ByteLevel":
		return byteLevelPreTokenizer(boolOr(c.AddPrefixSpace, true), boolOr(c.UseRegex, true)), nil
	case "Metaspace":
		return buildMetaspace(c)
	}
	return nil, fmt.Errorf("unsupported pre-tokenizer type %q", c.Type)
}

func boolOr(p *bool, def bool) bool {
	if p == nil {
		return def
	}
	return *p
}

func buildSplit(c *hfComponent) (preTokenizer, error) {
	if !validBehavior(c.Behavior) {
		return nil, fmt.Errorf("Split: unknown behavior %q", c.Behavior)
	}
	find, err := compilePattern(c.Pattern)
	if err != nil {
		return nil, fmt.Errorf("Split: %w", err)
	}
	return splitPreTokenizer(find, c.Behavior, c.Invert), nil
}

func metaspaceScheme(c *hfComponent) (repl, scheme string, err error) {
	repl = c.Replacement
	if utf8.RuneCountInString(repl) != 1 {
		return "", "", fmt.Errorf("Metaspace: replacement %q is not one character", repl)
	}
	scheme = c.PrependScheme
	if scheme == "" { // files older than prepend_scheme used add_prefix_space
		scheme = "never"
		if boolOr(c.AddPrefixSpace, true) {
			scheme = "always"
		}
	}
	switch scheme {
	case "first", "always", "never":
		return repl, scheme, nil
	}
	return "", "", fmt.Errorf("Metaspace: unknown prepend_scheme %q", scheme)
}

func buildMetaspace(c *hfComponent) (preTokenizer, error) {
	repl, scheme, err := metaspaceScheme(c)
	if err != nil {
		return nil, err
	}
	return metaspacePreTokenizer(repl, scheme, boolOr(c.Split, true)), nil
}

func buildDecoders(raw json.RawMessage) ([]decoderFunc, error) {
	if isNull(raw) {
		return nil, nil
	}
	c, err := parseComponent(raw)
	if err != nil {
		return nil, err
	}
	switch c.Type {
	case "Sequence":
		var ds []decoderFunc
		for i, r := range c.Decoders {
			d, err := buildDecoders(r)
			if err != nil {
				return nil, fmt.Errorf("%d: %w", i, err)
			}
			ds = append(ds, d...)
		}
		return ds, nil
	case "Replace":
		if c.Pattern.String == nil {
			return nil, errors.New("Replace: only String patterns are supported in decoders")
		}
		return []decoderFunc{replaceDecoder(*c.Pattern.String, c.Content)}, nil
	case "ByteFallback":
		return []decoderFunc{byteFallbackDecoder}, nil
	case "Fuse":
		return []decoderFunc{fuseDecoder}, nil
	case "Strip":
		return buildStripDecoder(c)
	case "ByteLevel":
		return []decoderFunc{byteLevelDecoder}, nil
	case "Metaspace":
		repl, scheme, err := metaspaceScheme(c)
		if err != nil {
			return nil, err
		}
		return []decoderFunc{metaspaceDecoder(repl, scheme != "never")}, nil
	}
	return nil, fmt.Errorf("unsupported decoder type %q", c.Type)
}

func buildStripDecoder(c *hfComponent) ([]decoderFunc, error) {
	r, n := utf8.DecodeRuneInString(c.Content)
	if n == 0 || n != len(c.Content) || c.Start < 0 || c.Stop < 0 {
		return nil, fmt.Errorf("Strip: invalid content %q or counts %d/%d", c.Content, c.Start, c.Stop)
	}
	return []decoderFunc{stripDecoder(r, c.Start, c.Stop)}, nil
}

// buildPostProcessor returns the ids a single sequence gets before and after it.
func buildPostProcessor(raw json.RawMessage, t *Tokenizer) (prefix, suffix []int, err error) {
	if isNull(raw) {
		return nil, nil, nil
	}
	c, err := parseComponent(raw)
	if err != nil {
		return nil, nil, err
	}
	switch c.Type {
	case "Sequence":
		for i, r := range c.Processors {
			p, s, err := buildPostProcessor(r, t)
			if err != nil {
				return nil, nil, fmt.Errorf("%d: %w", i, err)
			}
			prefix, suffix = append(prefix, p...), append(s, suffix...)
		}
		return prefix, suffix, nil
	case "ByteLevel": // only adjusts offsets
		return nil, nil, nil
	case "TemplateProcessing":
		return templateIDs(c, t)
	}
	return nil, nil, fmt.Errorf("unsupported post-processor type %q", c.Type)
}

func templateIDs(c *hfComponent, t *Tokenizer) (prefix, suffix []int, err error) {
	seen := false
	for _, item := range c.Single {
		switch {
		case item.Sequence != nil:
			seen = true
		case item.SpecialToken != nil:
			st, ok := c.SpecialTokens[item.SpecialToken.ID]
			if !ok {
				return nil, nil, fmt.Errorf("template token %q is not in special_tokens", item.SpecialToken.ID)
			}
			for _, id := range st.IDs {
				if id < 0 || id >= len(t.tokens) {
					return nil, nil, fmt.Errorf("template token %q has id %d outside the vocab", item.SpecialToken.ID, id)
				}
			}
			if seen {
				suffix = append(suffix, st.IDs...)
			} else {
				prefix = append(prefix, st.IDs...)
			}
		}
	}
	return prefix, suffix, nil
}
