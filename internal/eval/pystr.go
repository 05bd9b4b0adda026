package eval

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// lm-eval's prompt code is Python; these helpers reproduce the Python str
// methods it calls, because Go's nearest equivalents differ at the edges.

// pyIsSpace reports whether r is whitespace for Python's str.isspace.
// Python also counts the information separators U+001C..U+001F, which Go's
// unicode.IsSpace does not.
func pyIsSpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// pyStrip is Python's s.strip().
func pyStrip(s string) string { return strings.TrimFunc(s, pyIsSpace) }

// pyRStrip is Python's s.rstrip().
func pyRStrip(s string) string { return strings.TrimRightFunc(s, pyIsSpace) }

// pyCapitalize is Python 3's s.capitalize(): the first character in title
// case and ALL the rest lower-cased (unlike strings.Title or a plain upper of
// the first letter). Go's case tables use simple case mappings; Python's full
// mappings differ only for a few characters (ß, ligatures, İ, final sigma),
// none of which occur where lm-eval capitalises (HellaSwag ctx_b).
func pyCapitalize(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	if r == utf8.RuneError && n == 1 {
		b.WriteString(s[:1])
	} else {
		b.WriteRune(unicode.ToTitle(r))
	}
	b.WriteString(strings.ToLower(s[n:]))
	return b.String()
}

// pyLen is Python's len(s): a count of code points, not bytes. lm-eval's
// acc_norm divides by it.
func pyLen(s string) int { return utf8.RuneCountInString(s) }
