package tokenizer

import (
	"fmt"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

func sequenceNormalizer(ns []normalizer) normalizer {
	return func(s string) string {
		for _, n := range ns {
			s = n(s)
		}
		return s
	}
}

// prependNormalizer leaves empty text alone, as Hugging Face's Prepend does.
func prependNormalizer(p string) normalizer {
	return func(s string) string {
		if s == "" {
			return s
		}
		return p + s
	}
}

func replaceNormalizer(p hfPattern, content string) (normalizer, error) {
	if p.String != nil && *p.String != "" {
		lit := *p.String
		return func(s string) string { return strings.ReplaceAll(s, lit, content) }, nil
	}
	find, err := compilePattern(p)
	if err != nil {
		return nil, fmt.Errorf("Replace: %w", err)
	}
	return func(s string) string { return replaceSpans(s, find(s), content) }, nil
}

func replaceSpans(s string, spans [][2]int, content string) string {
	if len(spans) == 0 {
		return s
	}
	var sb strings.Builder
	last := 0
	for _, sp := range spans {
		sb.WriteString(s[last:sp[0]])
		sb.WriteString(content)
		last = sp[1]
	}
	sb.WriteString(s[last:])
	return sb.String()
}

func simpleNormalizer(c *hfComponent) (normalizer, error) {
	switch c.Type {
	case "NFC":
		return norm.NFC.String, nil
	case "NFD":
		return norm.NFD.String, nil
	case "NFKC":
		return norm.NFKC.String, nil
	case "NFKD":
		return norm.NFKD.String, nil
	case "Lowercase":
		return strings.ToLower, nil
	case "Strip":
		left, right := c.StripLeft, c.StripRight
		return func(s string) string {
			if left {
				s = strings.TrimLeftFunc(s, unicode.IsSpace)
			}
			if right {
				s = strings.TrimRightFunc(s, unicode.IsSpace)
			}
			return s
		}, nil
	case "ByteLevel":
		return byteLevelEncode, nil
	}
	return nil, fmt.Errorf("unsupported normalizer type %q", c.Type)
}
