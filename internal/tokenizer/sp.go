package tokenizer

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

const spaceSymbol = "▁" // U+2581, SentencePiece's visible whitespace

// spEncoder implements SentencePiece's BPE: adjacent symbols merge when their
// concatenation is a piece, highest score first.
type spEncoder struct {
	pieces      map[string]int // normal, user-defined and unused pieces: those merges may form
	scores      []float32
	userDefined map[string]int
	maxUserLen  int
	byteIDs     [256]int // -1 where the model has no byte piece
	byteFallbk  bool
	unk         int
}

func newSPTokenizer(m *spModel) *Tokenizer {
	t := &Tokenizer{kind: KindSentencePiece, cache: &wordCache{}, bos: m.bosID, eos: m.eosID, pad: m.padID}
	vocab := make(map[string]int, len(m.pieces))
	enc := &spEncoder{pieces: make(map[string]int, len(m.pieces)), scores: make([]float32, len(m.pieces)),
		userDefined: map[string]int{}, byteFallbk: m.byteFallback, unk: m.unkID}
	for i := range enc.byteIDs {
		enc.byteIDs[i] = -1
	}
	for id, p := range m.pieces {
		if _, dup := vocab[p.piece]; !dup {
			vocab[p.piece] = id
		}
		enc.scores[id] = p.score
		enc.addPiece(id, p)
	}
	t.vocab = vocab
	t.tokens = make([]string, len(m.pieces))
	t.special = make([]bool, len(m.pieces))
	for id, p := range m.pieces {
		t.tokens[id] = p.piece
		t.special[id] = p.typ == spControl || p.typ == spUnknown
	}
	t.model = enc
	t.splitAtSpace = canSplitAtSpace(t.tokens)
	t.normalize = spNormalizer(m)
	t.decoders = []decoderFunc{replaceDecoder(spaceSymbol, " "), byteFallbackDecoder, fuseDecoder}
	if m.addDummy {
		t.decoders = append(t.decoders, stripDecoder(' ', 1, 0))
	}
	if t.bos >= 0 {
		t.prefix = []int{t.bos}
	}
	return t
}

func (e *spEncoder) addPiece(id int, p spPiece) {
	switch p.typ {
	case spNormal, spUnused:
		if _, dup := e.pieces[p.piece]; !dup {
			e.pieces[p.piece] = id
		}
	case spUserDefined:
		e.pieces[p.piece] = id
		e.userDefined[p.piece] = id
		e.maxUserLen = max(e.maxUserLen, len(p.piece))
	case spByte:
		var b int
		if n, err := fmt.Sscanf(p.piece, "<0x%02X>", &b); err == nil && n == 1 && b >= 0 && b < 256 {
			e.byteIDs[b] = id
		}
	}
}

// spNormalizer reproduces SentencePiece's identity normalisation: optional removal of
// extra whitespace, the dummy prefix, and spaces shown as "▁".
func spNormalizer(m *spModel) normalizer {
	return func(s string) string {
		if m.removeExtra {
			s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == ' ' }), " ")
		}
		if s == "" {
			return s
		}
		if m.addDummy {
			s = " " + s
		}
		if m.escapeSpaces {
			s = strings.ReplaceAll(s, " ", spaceSymbol)
		}
		return s
	}
}

func (e *spEncoder) encodeWord(w string, dst []int) []int {
	syms := e.initialSymbols(w)
	syms = mergeSymbols(syms, func(l, r *symbol) (int32, float64, bool) {
		id, ok := e.pieces[w[l.start:r.end]]
		if !ok {
			return 0, 0, false
		}
		return int32(id), -float64(e.scores[id]), true
	})
	for i := int32(0); i >= 0 && len(syms) > 0; i = syms[i].next {
		dst = e.emit(w[syms[i].start:syms[i].end], dst)
	}
	return dst
}

// initialSymbols splits w into characters, keeping user-defined pieces whole as
// SentencePiece's prefix matcher does.
func (e *spEncoder) initialSymbols(w string) []symbol {
	syms := make([]symbol, 0, len(w))
	for i := 0; i < len(w); {
		n := e.userPieceLen(w[i:])
		if n == 0 {
			_, n = utf8.DecodeRuneInString(w[i:])
		}
		syms = append(syms, symbol{start: int32(i), end: int32(i + n), id: -1})
		i += n
	}
	linkSymbols(syms)
	return syms
}

func (e *spEncoder) userPieceLen(s string) int {
	if e.maxUserLen == 0 {
		return 0
	}
	for n := min(len(s), e.maxUserLen); n > 0; n-- {
		if _, ok := e.userDefined[s[:n]]; ok {
			return n
		}
	}
	return 0
}

func (e *spEncoder) emit(piece string, dst []int) []int {
	if id, ok := e.pieces[piece]; ok {
		return append(dst, id)
	}
	if e.byteFallbk && e.hasBytes(piece) {
		for i := 0; i < len(piece); i++ {
			dst = append(dst, e.byteIDs[piece[i]])
		}
		return dst
	}
	return append(dst, e.unk)
}

func (e *spEncoder) hasBytes(piece string) bool {
	for i := 0; i < len(piece); i++ {
		if e.byteIDs[piece[i]] < 0 {
			return false
		}
	}
	return true
}
