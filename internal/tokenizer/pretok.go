package tokenizer

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

// compilePattern returns a matcher for a Hugging Face pattern: a literal string, or a
// regex (hand-written for the common ones, regexp2 otherwise).
func compilePattern(p hfPattern) (func(string) [][2]int, error) {
	switch {
	case p.String != nil:
		lit := *p.String
		if lit == "" {
			return nil, fmt.Errorf("empty string pattern")
		}
		return func(s string) [][2]int { return literalSpans(s, lit) }, nil
	case p.Regex != nil:
		return compileRegex(*p.Regex)
	}
	return nil, fmt.Errorf("pattern has neither String nor Regex")
}

func literalSpans(s, lit string) [][2]int {
	var spans [][2]int
	for off := 0; ; {
		k := strings.Index(s[off:], lit)
		if k < 0 {
			return spans
		}
		spans = append(spans, [2]int{off + k, off + k + len(lit)})
		off += k + len(lit)
	}
}

func compileRegex(expr string) (func(string) [][2]int, error) {
	switch expr {
	case llama3Pattern:
		return func(s string) [][2]int { return findAll(s, llama3Match) }, nil
	case gpt2Pattern:
		return func(s string) [][2]int { return findAll(s, gpt2Match) }, nil
	}
	re, err := regexp2.Compile(expr, regexp2.Unicode)
	if err != nil {
		return nil, fmt.Errorf("regex %q: %w", expr, err)
	}
	return func(s string) [][2]int { return regexSpans(re, s) }, nil
}

// regexSpans runs a regexp2 expression, whose offsets count runes, and converts them to
// byte offsets.
func regexSpans(re *regexp2.Regexp, s string) [][2]int {
	runes := []rune(s)
	byteAt := make([]int, len(runes)+1)
	for i, off := 0, 0; i < len(runes); i++ {
		byteAt[i] = off
		off += utf8.RuneLen(runes[i])
		byteAt[i+1] = off
	}
	var spans [][2]int
	m, err := re.FindRunesMatch(runes)
	for err == nil && m != nil {
		if m.Length > 0 {
			spans = append(spans, [2]int{byteAt[m.Index], byteAt[m.Index+m.Length]})
		}
		m, err = re.FindNextMatch(m)
	}
	return spans
}

// Split behaviours of Hugging Face's SplitDelimiterBehavior.
const (
	behaviorRemoved            = "Removed"
	behaviorIsolated           = "Isolated"
	behaviorMergedWithPrevious = "MergedWithPrevious"
	behaviorMergedWithNext     = "MergedWithNext"
	behaviorContiguous         = "Contiguous"
)

func validBehavior(b string) bool {
	switch b {
	case behaviorRemoved, behaviorIsolated, behaviorMergedWithPrevious, behaviorMergedWithNext, behaviorContiguous:
		return true
	}
	return false
}

// piece is a span of a word and whether the pattern matched it.
type piece struct {
	s     string
	match bool
}

// splitPieces alternates gaps and matches over the whole of s.
func splitPieces(s string, spans [][2]int, invert bool) []piece {
	ps := make([]piece, 0, 2*len(spans)+1)
	last := 0
	for _, sp := range spans {
		if sp[0] > last {
			ps = append(ps, piece{s[last:sp[0]], invert})
		}
		ps = append(ps, piece{s[sp[0]:sp[1]], !invert})
		last = sp[1]
	}
	if last < len(s) {
		ps = append(ps, piece{s[last:], invert})
	}
	return ps
}

// applyBehavior decides what happens to the matched pieces (the delimiters).
func applyBehavior(ps []piece, behavior string, out []string) []string {
	switch behavior {
	case behaviorIsolated:
		for _, p := range ps {
			out = append(out, p.s)
		}
	case behaviorRemoved:
		for _, p := range ps {
			if !p.match {
				out = append(out, p.s)
			}
		}
	case behaviorMergedWithPrevious:
		out = mergeWithPrevious(ps, out)
	case behaviorMergedWithNext:
		out = mergeWithNext(ps, out)
	case behaviorContiguous:
		out = mergeContiguous(ps, out)
	}
	return out
}

func mergeWithPrevious(ps []piece, out []string) []string {
	prevGap := false
	for _, p := range ps {
		if p.match && prevGap {
			out[len(out)-1] += p.s
		} else {
			out = append(out, p.s)
		}
		prevGap = !p.match
	}
	return out
}

func mergeWithNext(ps []piece, out []string) []string {
	pending := ""
	for _, p := range ps {
		if p.match {
			if pending != "" {
				out = append(out, pending)
			}
			pending = p.s
			continue
		}
		out = append(out, pending+p.s)
		pending = ""
	}
	if pending != "" {
		out = append(out, pending)
	}
	return out
}

func mergeContiguous(ps []piece, out []string) []string {
	prevMatch := false
	for i, p := range ps {
		if i > 0 && p.match && prevMatch {
			out[len(out)-1] += p.s
		} else {
			out = append(out, p.s)
		}
		prevMatch = p.match
	}
	return out
}

func splitPreTokenizer(find func(string) [][2]int, behavior string, invert bool) preTokenizer {
	return func(words []string, _ bool) []string {
		out := make([]string, 0, len(words))
		for _, w := range words {
			out = applyBehavior(splitPieces(w, find(w), invert), behavior, out)
		}
		return out
	}
}

// byteLevelPreTokenizer optionally prepends a space, optionally splits with GPT-2's
// regex, then spells each word's bytes as byte-level runes.
func byteLevelPreTokenizer(addPrefixSpace, useRegex bool) preTokenizer {
	return func(words []string, _ bool) []string {
		out := make([]string, 0, len(words))
		for _, w := range words {
			if addPrefixSpace && !strings.HasPrefix(w, " ") {
				w = " " + w
			}
			if !useRegex {
				out = append(out, byteLevelEncode(w))
				continue
			}
			for _, p := range splitPieces(w, findAll(w, gpt2Match), false) {
				out = append(out, byteLevelEncode(p.s))
			}
		}
		return out
	}
}

// metaspacePreTokenizer replaces spaces with the replacement rune, prepends one per the
// scheme, and optionally splits so each word starts with the replacement.
func metaspacePreTokenizer(repl, scheme string, split bool) preTokenizer {
	return func(words []string, first bool) []string {
		var out []string
		for i, w := range words {
			w = strings.ReplaceAll(w, " ", repl)
			prepend := scheme == "always" || (scheme == "first" && first && i == 0)
			if prepend && !strings.HasPrefix(w, repl) {
				w = repl + w
			}
			if !split {
				out = append(out, w)
				continue
			}
			out = applyBehavior(splitPieces(w, literalSpans(w, repl), false), behaviorMergedWithNext, out)
		}
		return out
	}
}

func sequencePreTokenizer(ps []preTokenizer) preTokenizer {
	return func(words []string, first bool) []string {
		for _, p := range ps {
			words = p(words, first)
		}
		return words
	}
}
