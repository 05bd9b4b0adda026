package tokenizer

import "strings"

// byteLevelRune is GPT-2's bytes_to_unicode table: printable Latin-1 bytes stand for
// themselves, the rest are shifted to U+0100 onwards so every byte is a visible rune.
func byteLevelRune(b byte) rune {
	switch {
	case b >= '!' && b <= '~', b >= 0xA1 && b <= 0xAC, b >= 0xAE:
		return rune(b)
	}
	n := 0 // rank of b among the non-printable bytes
	switch {
	case b < '!':
		n = int(b)
	case b <= 0xA0: // 0x7F..0xA0
		n = int('!') + int(b-0x7F)
	default: // 0xAD
		n = int('!') + (0xA0 - 0x7F + 1)
	}
	return rune(256 + n)
}

// byteLevelByte inverts byteLevelRune.
func byteLevelByte(r rune) (byte, bool) {
	switch {
	case r >= '!' && r <= '~', r >= 0xA1 && r <= 0xAC, r >= 0xAE && r <= 0xFF:
		return byte(r), true
	case r < 256 || r >= 256+68:
		return 0, false
	}
	n := int(r - 256)
	switch {
	case n < '!':
		return byte(n), true
	case n < '!'+34:
		return byte(0x7F + n - '!'), true
	}
	return 0xAD, true
}

// byteLevelEncode spells every byte of s as its byte-level rune.
func byteLevelEncode(s string) string {
	var sb strings.Builder
	sb.Grow(len(s) * 2)
	for i := 0; i < len(s); i++ {
		sb.WriteRune(byteLevelRune(s[i]))
	}
	return sb.String()
}
