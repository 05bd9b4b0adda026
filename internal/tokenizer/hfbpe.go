package tokenizer

import (
	"fmt"
	"unicode/utf8"
)

type mergeInfo struct {
	rank int32
	id   int32
}

// hfBPE is Hugging Face's BPE model: merges apply by rank (lowest first) on token ids.
type hfBPE struct {
	vocab        map[string]int
	merges       map[uint64]mergeInfo
	unk          int // -1 when the model has no unknown token
	fuseUnk      bool
	byteFallback bool
	ignoreMerges bool
	prefix       string // continuing_subword_prefix
	suffix       string // end_of_word_suffix
	byteIDs      [256]int
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// addMerges resolves merge pairs to ids; a pair naming an unknown token is an error, as
// in Hugging Face.
func (m *hfBPE) addMerges(pairs [][2]string) error {
	m.merges = make(map[uint64]mergeInfo, len(pairs))
	for rank, p := range pairs {
		a, okA := m.vocab[p[0]]
		b, okB := m.vocab[p[1]]
		if !okA || !okB {
			return fmt.Errorf("merge %d (%q %q) references a token missing from the vocab", rank, p[0], p[1])
		}
		right := p[1]
		if m.prefix != "" && len(right) >= len(m.prefix) && right[:len(m.prefix)] == m.prefix {
			right = right[len(m.prefix):]
		}
		id, ok := m.vocab[p[0]+right]
		if !ok {
			return fmt.Errorf("merge %d (%q %q): merged token %q is missing from the vocab", rank, p[0], p[1], p[0]+right)
		}
		m.merges[pairKey(int32(a), int32(b))] = mergeInfo{rank: int32(rank), id: int32(id)}
	}
	return nil
}

func (m *hfBPE) initByteIDs() {
	for b := range m.byteIDs {
		id, ok := m.vocab[fmt.Sprintf("<0x%02X>", b)]
		if !ok {
			id = -1
		}
		m.byteIDs[b] = id
	}
}

func (m *hfBPE) encodeWord(w string, dst []int) []int {
	if m.ignoreMerges {
		if id, ok := m.vocab[w]; ok {
			return append(dst, id)
		}
	}
	syms := m.initialSymbols(w)
	if len(syms) == 0 {
		return dst
	}
	syms = mergeSymbols(syms, func(l, r *symbol) (int32, float64, bool) {
		mi, ok := m.merges[pairKey(l.id, r.id)]
		return mi.id, float64(mi.rank), ok
	})
	for i := int32(0); i >= 0; i = syms[i].next {
		dst = append(dst, int(syms[i].id))
	}
	return dst
}

func (m *hfBPE) initialSymbols(w string) []symbol {
	syms := make([]symbol, 0, len(w))
	for i := 0; i < len(w); {
		_, n := utf8.DecodeRuneInString(w[i:])
		syms = m.addChar(syms, w, i, n)
		i += n
	}
	linkSymbols(syms)
	return syms
}

// addChar appends the symbol(s) for the character w[i:i+n]: its token, its byte tokens
// under byte fallback, or the unknown token (fused with a preceding one if asked).
func (m *hfBPE) addChar(syms []symbol, w string, i, n int) []symbol {
	s := w[i : i+n]
	if m.prefix != "" && i > 0 {
		s = m.prefix + s
	}
	if m.suffix != "" && i+n == len(w) {
		s += m.suffix
	}
	if id, ok := m.vocab[s]; ok {
		return append(syms, symbol{start: int32(i), end: int32(i + n), id: int32(id)})
	}
	if m.byteFallback && m.hasBytes(w[i:i+n]) {
		for k := i; k < i+n; k++ {
			syms = append(syms, symbol{start: int32(k), end: int32(k + 1), id: int32(m.byteIDs[w[k]])})
		}
		return syms
	}
	if m.unk < 0 {
		return syms
	}
	if last := len(syms) - 1; m.fuseUnk && last >= 0 && syms[last].id == int32(m.unk) {
		syms[last].end = int32(i + n)
		return syms
	}
	return append(syms, symbol{start: int32(i), end: int32(i + n), id: int32(m.unk)})
}

func (m *hfBPE) hasBytes(s string) bool {
	for i := 0; i < len(s); i++ {
		if m.byteIDs[s[i]] < 0 {
			return false
		}
	}
	return true
}
