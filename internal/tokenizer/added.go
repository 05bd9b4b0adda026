package tokenizer

import (
	"sort"
	"unicode"
	"unicode/utf8"
)

type addedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

// segment is a piece of input: either text (id < 0) or one added token.
type segment struct {
	text  string
	start int // byte offset in the string that was split
	id    int
}

// addedMatcher finds added tokens leftmost-longest, as Hugging Face's Aho-Corasick
// matcher does. Candidates are bucketed by first byte and tried longest first.
type addedMatcher struct {
	toks    []addedToken
	byFirst [256][]int
}

func newAddedMatcher(toks []addedToken) *addedMatcher {
	m := &addedMatcher{}
	for _, t := range toks {
		if t.Content != "" {
			m.toks = append(m.toks, t)
		}
	}
	if len(m.toks) == 0 {
		return nil
	}
	sort.SliceStable(m.toks, func(i, j int) bool { return len(m.toks[i].Content) > len(m.toks[j].Content) })
	for i, t := range m.toks {
		c := t.Content[0]
		m.byFirst[c] = append(m.byFirst[c], i)
	}
	return m
}

// split cuts s at added tokens; a nil matcher returns s whole.
func (m *addedMatcher) split(s string) []segment {
	if m == nil {
		return []segment{{text: s, id: -1}}
	}
	var segs []segment
	last := 0 // end of the previous match
	for i := 0; i < len(s); {
		tok, ok := m.matchAt(s, i)
		if !ok {
			i++
			continue
		}
		start, end := i, i+len(tok.Content)
		if tok.LStrip {
			start = last + trimmedLeft(s[last:start])
		}
		if tok.RStrip {
			end += len(s[end:]) - len(trimLeftSpace(s[end:]))
		}
		if start > last {
			segs = append(segs, segment{text: s[last:start], start: last, id: -1})
		}
		segs = append(segs, segment{text: s[start:end], start: start, id: tok.ID})
		last, i = end, end
	}
	if last < len(s) || len(segs) == 0 {
		segs = append(segs, segment{text: s[last:], start: last, id: -1})
	}
	return segs
}

func (m *addedMatcher) matchAt(s string, i int) (addedToken, bool) {
	for _, k := range m.byFirst[s[i]] {
		t := m.toks[k]
		if len(s)-i >= len(t.Content) && s[i:i+len(t.Content)] == t.Content &&
			(!t.SingleWord || isWordBoundary(s, i, i+len(t.Content))) {
			return t, true
		}
	}
	return addedToken{}, false
}

// trimmedLeft is the length of s without its trailing whitespace, which an lstrip token
// absorbs.
func trimmedLeft(s string) int {
	for len(s) > 0 {
		r, n := utf8.DecodeLastRuneInString(s)
		if !unicode.IsSpace(r) {
			break
		}
		s = s[:len(s)-n]
	}
	return len(s)
}

func trimLeftSpace(s string) string {
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		if !unicode.IsSpace(r) {
			break
		}
		s = s[n:]
	}
	return s
}

// isWordBoundary reports whether s[start:end] is not glued to word characters.
func isWordBoundary(s string, start, end int) bool {
	if start > 0 {
		if r, _ := utf8.DecodeLastRuneInString(s[:start]); isWordRune(r) {
			return false
		}
	}
	if end < len(s) {
		if r, _ := utf8.DecodeRuneInString(s[end:]); isWordRune(r) {
			return false
		}
	}
	return true
}

func isWordRune(r rune) bool {
	return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r)
}
