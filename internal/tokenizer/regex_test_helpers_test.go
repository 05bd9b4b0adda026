package tokenizer

import "github.com/dlclark/regexp2"

func compileRegexWith2(expr string) (func(string) [][2]int, error) {
	re, err := regexp2.Compile(expr, regexp2.Unicode)
	if err != nil {
		return nil, err
	}
	return func(s string) [][2]int { return regexSpans(re, s) }, nil
}
