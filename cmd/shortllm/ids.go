package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// parseIDList reads ids written as "1,2,3", "1 2 3" or a JSON list / {"ids": [...]} (what
// tokenize --json prints), and checks them against the vocabulary.
func parseIDList(s string, vocab int) ([]int, error) {
	s = strings.TrimSpace(s)
	var ids []int
	switch {
	case strings.HasPrefix(s, "{"):
		var doc struct{ IDs []int }
		if err := json.Unmarshal([]byte(s), &doc); err != nil {
			return nil, fmt.Errorf("ids: %v", err)
		}
		ids = doc.IDs
	case strings.HasPrefix(s, "["):
		if err := json.Unmarshal([]byte(s), &ids); err != nil {
			return nil, fmt.Errorf("ids: %v", err)
		}
	default:
		for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' }) {
			v, err := strconv.Atoi(f)
			if err != nil {
				return nil, fmt.Errorf("ids: %q is not an integer", f)
			}
			ids = append(ids, v)
		}
	}
	for _, id := range ids {
		if id < 0 || id >= vocab {
			return nil, fmt.Errorf("ids: %d is outside the vocabulary [0, %d)", id, vocab)
		}
	}
	return ids, nil
}
