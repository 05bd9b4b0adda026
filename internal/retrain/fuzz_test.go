package retrain

import (
	"testing"
)

// FuzzLoadInstructions: the instruction parser never panics, and what it accepts has the
// required fields decoded.
func FuzzLoadInstructions(f *testing.F) {
	f.Add([]byte(`[{"instruction": "a", "input": "", "output": "b"}]`), false)
	f.Add([]byte("{\"instruction\": \"a\", \"output\": \"b\"}\n\n{\"instruction\": \"c\", \"input\": null, \"output\": \"\"}"), true)
	f.Add([]byte(`[{"instruction": 1}]`), false)
	f.Add([]byte(`[null]`), false)
	f.Add([]byte("{\"instruction\""), true)
	f.Fuzz(func(t *testing.T, data []byte, jsonl bool) {
		recs, err := ParseInstructions(data, jsonl)
		if err == nil {
			for _, r := range recs {
				_ = AlpacaPrompt(r)
			}
		}
	})
}

// FuzzLoadPretokenized: the pre-tokenised parser never panics, and accepted rows have labels
// as long as their ids.
func FuzzLoadPretokenized(f *testing.F) {
	f.Add([]byte(`{"input_ids": [[1, 2, 3]], "labels": [[-100, 2, 3]]}`))
	f.Add([]byte(`[{"input_ids": [1, 2]}, {"input_ids": [3], "labels": [3]}]`))
	f.Add([]byte(`{"input_ids": [[1]], "labels": [[1, 2]]}`))
	f.Add([]byte(`{"input_ids": [[]]}`))
	f.Add([]byte(`[1e99]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		exs, err := ParsePretokenized(data)
		if err != nil {
			return
		}
		for i, e := range exs {
			if len(e.IDs) == 0 || len(e.Labels) != len(e.IDs) {
				t.Fatalf("row %d accepted with %d ids and %d labels", i, len(e.IDs), len(e.Labels))
			}
		}
	})
}
