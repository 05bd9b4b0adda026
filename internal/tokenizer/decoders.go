package tokenizer

import (
	"strings"
	"unicode/utf8"
)

func replaceDecoder(pattern, content string) decoderFunc {
	return func(toks []string) []string {
		for i, t := range toks {
			toks[i] = strings.ReplaceAll(t, pattern, content)
		}
		return toks
	}
}

// byteFallbackDecoder turns runs of "<0xNN>" tokens back into text; a run that is not
// valid UTF-8 becomes one U+FFFD per byte, as in Hugging Face.
func byteFallbackDecoder(toks []string) []string {
	out := toks[:0:0]
	var run []byte
	flush := func() {
		if len(run) == 0 {
			return
		}
		if utf8.Valid(run) {
			out = append(out, string(run))
		} else {
			for range run {
				out = append(out, "\uFFFD")
			}
		}
		run = run[:0]
	}
	for _, t := range toks {
		if b, ok := parseByteToken(t); ok {
			run = append(run, b)
			continue
		}
		flush()
		out = append(out, t)
	}
	flush()
	return out
}

// parseByteToken recognises "<0xNN>" with upper-case hex digits.
func parseByteToken(t string) (byte, bool) {
	if len(t) != 6 || t[:3] != "<0x" || t[5] != '>' {
		return 0, false
	}
	hi, ok1 := hexDigit(t[3])
	lo, ok2 := hexDigit(t[4])
	return hi<<4 | lo, ok1 && ok2
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func fuseDecoder(toks []string) []string {
	return []string{strings.Join(toks, "")}
}

// stripDecoder removes up to start leading and stop trailing content runes per token.
func stripDecoder(content rune, start, stop int) decoderFunc {
	return func(toks []string) []string {
		for i, t := range toks {
			rs := []rune(t)
			a := 0
			for a < start && a < len(rs) && rs[a] == content {
				a++
			}
			b := len(rs)
			for k := 0; k < stop && b > a && rs[b-1] == content; k++ {
				b--
			}
			toks[i] = string(rs[a:b])
		}
		return toks
	}
}

// byteLevelDecoder maps GPT-2's byte characters back to bytes. A token with a character
// outside the table keeps its own UTF-8 bytes, and invalid UTF-8 is replaced the way
// Rust's String::from_utf8_lossy does, matching Hugging Face.
func byteLevelDecoder(toks []string) []string {
	var buf []byte
	for _, t := range toks {
		buf = appendByteLevelDecoded(buf, t)
	}
	return []string{lossyUTF8(buf)}
}

func appendByteLevelDecoded(buf []byte, t string) []byte {
	n := len(buf)
	for _, r := range t {
		b, ok := byteLevelByte(r)
		if !ok {
			return append(buf[:n], t...)
		}
		buf = append(buf, b)
	}
	return buf
}

// metaspaceDecoder turns the replacement character back into spaces and drops the space
// that the pre-tokenizer prepended to the first token.
func metaspaceDecoder(replacement string, stripFirst bool) decoderFunc {
	return func(toks []string) []string {
		for i, t := range toks {
			t = strings.ReplaceAll(t, replacement, " ")
			if i == 0 && stripFirst {
				t = strings.TrimPrefix(t, " ")
			}
			toks[i] = t
		}
		return toks
	}
}

// lossyUTF8 replaces each maximal invalid subpart with one U+FFFD (Unicode's
// recommended practice, which Rust follows; Go's decoder would emit one per byte).
func lossyUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r != utf8.RuneError || n > 1 {
			sb.Write(b[:n])
			b = b[n:]
			continue
		}
		sb.WriteString("\uFFFD")
		b = b[invalidPrefixLen(b):]
	}
	return sb.String()
}

// invalidPrefixLen is the length of the maximal prefix of b that starts a well-formed
// UTF-8 sequence (at least 1).
func invalidPrefixLen(b []byte) int {
	lo, hi := byte(0x80), byte(0xBF)
	var need int
	switch c := b[0]; {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c == 0xED:
		need, hi = 2, 0x9F
	case c >= 0xE1 && c <= 0xEF:
		need = 2
	case c == 0xF0:
		need, lo = 3, 0x90
	case c == 0xF4:
		need, hi = 3, 0x8F
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	default:
		return 1
	}
	i := 1
	for ; i <= need && i < len(b); i++ {
		if b[i] < lo || b[i] > hi {
			break
		}
		lo, hi = 0x80, 0xBF
	}
	return i
}
