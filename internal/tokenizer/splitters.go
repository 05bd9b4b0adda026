package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// Regexes that have a hand-written matcher: Go's regexp lacks the lookahead in
// `\s+(?!\S)`, and a direct scanner is several times faster than a backtracking engine.
const (
	llama3Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	gpt2Pattern   = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
)

// matcher returns the end of the match starting at i, or -1 when none starts there.
type matcher func(s string, i int) int

// findAll lists the [start,end) spans of non-overlapping matches, scanning left to right.
func findAll(s string, m matcher) [][2]int {
	spans := make([][2]int, 0, len(s)/4+1)
	for i := 0; i < len(s); {
		if e := m(s, i); e > i {
			spans = append(spans, [2]int{i, e})
			i = e
			continue
		}
		_, n := utf8.DecodeRuneInString(s[i:])
		i += n
	}
	return spans
}

func runeAt(s string, i int) (rune, int) {
	if i >= len(s) {
		return -1, 0
	}
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRuneInString(s[i:])
}

func isL(r rune) bool {
	return r >= 0 && (r < utf8.RuneSelf && (r|0x20 >= 'a' && r|0x20 <= 'z') || r >= utf8.RuneSelf && unicode.IsLetter(r))
}
func isN(r rune) bool {
	return r >= 0 && (r >= '0' && r <= '9' || r >= utf8.RuneSelf && unicode.IsNumber(r))
}
func isSpace(r rune) bool { return r >= 0 && unicode.IsSpace(r) }
func isCRLF(r rune) bool  { return r == '\r' || r == '\n' }

// spanWhile returns the end of the run of runes from i that satisfy f.
func spanWhile(s string, i int, f func(rune) bool) int {
	for {
		r, n := runeAt(s, i)
		if n == 0 || !f(r) {
			return i
		}
		i += n
	}
}

// contraction matches 's 't 're 've 'm 'll 'd (fold: ASCII case-insensitive).
func contraction(s string, i int, fold bool) int {
	if i+1 >= len(s) || s[i] != '\'' {
		return -1
	}
	lower := func(c byte) byte {
		if fold && c >= 'A' && c <= 'Z' {
			return c + 32
		}
		return c
	}
	switch lower(s[i+1]) {
	case 's', 't', 'm', 'd':
		return i + 2
	case 'r', 'v':
		if i+2 < len(s) && lower(s[i+2]) == 'e' {
			return i + 3
		}
	case 'l':
		if i+2 < len(s) && lower(s[i+2]) == 'l' {
			return i + 3
		}
	}
	return -1
}

// spaceTail matches `\s+(?!\S)|\s+` from i: a whitespace run leaves its last rune to
// the next token when a non-space follows.
func spaceTail(s string, i int) int {
	e := spanWhile(s, i, isSpace)
	if e == i {
		return -1
	}
	if e < len(s) {
		_, last := utf8.DecodeLastRuneInString(s[:e])
		if e-last > i {
			return e - last
		}
	}
	return e
}

func llama3Match(s string, i int) int {
	if e := contraction(s, i, true); e > 0 {
		return e
	}
	r, n := runeAt(s, i)
	// [^\r\n\p{L}\p{N}]?\p{L}+
	if isL(r) {
		return spanWhile(s, i+n, isL)
	}
	if !isCRLF(r) && !isN(r) {
		if r2, n2 := runeAt(s, i+n); isL(r2) {
			return spanWhile(s, i+n+n2, isL)
		}
	}
	// \p{N}{1,3}
	if isN(r) {
		e := i + n
		for k := 0; k < 2; k++ {
			r2, n2 := runeAt(s, e)
			if !isN(r2) {
				break
			}
			e += n2
		}
		return e
	}
	// ` ?[^\s\p{L}\p{N}]+[\r\n]*`
	if e := punctRun(s, i, r, n); e > 0 {
		return spanWhile(s, e, isCRLF)
	}
	// \s*[\r\n]+ : the whitespace run up to and including its last newline
	e := spanWhile(s, i, isSpace)
	for k := e - 1; k >= i; k-- {
		if isCRLF(rune(s[k])) {
			return k + 1
		}
	}
	return spaceTail(s, i)
}

func isPunct(r rune) bool { return r >= 0 && !isSpace(r) && !isL(r) && !isN(r) }

// punctRun matches ` ?[^\s\p{L}\p{N}]+` from i, whose first rune r has n bytes.
func punctRun(s string, i int, r rune, n int) int {
	j := i
	if r == ' ' {
		j += n
	}
	if r2, _ := runeAt(s, j); !isPunct(r2) {
		return -1
	}
	return spanWhile(s, j, isPunct)
}

func gpt2Match(s string, i int) int {
	if e := contraction(s, i, false); e > 0 {
		return e
	}
	r, n := runeAt(s, i)
	j := i
	if r == ' ' {
		j += n
	}
	if r2, _ := runeAt(s, j); isL(r2) {
		return spanWhile(s, j, isL)
	} else if isN(r2) {
		return spanWhile(s, j, isN)
	}
	if e := punctRun(s, i, r, n); e > 0 {
		return e
	}
	return spaceTail(s, i)
}
