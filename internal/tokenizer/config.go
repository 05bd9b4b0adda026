package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/shortllm/shortllm/internal/inputfile"
)

// tokenSpec is a special token in a config file: a string, an object with "content",
// or null.
type tokenSpec struct {
	set     bool // the key was present
	content string
	null    bool
}

func (s *tokenSpec) UnmarshalJSON(b []byte) error {
	s.set = true
	if strings.TrimSpace(string(b)) == "null" {
		s.null = true
		return nil
	}
	if err := json.Unmarshal(b, &s.content); err == nil {
		return nil
	}
	var obj struct {
		Content string `json:"content"`
	}
	if err := json.Unmarshal(b, &obj); err != nil {
		return fmt.Errorf("special token is neither a string nor an object with content: %w", err)
	}
	s.content = obj.Content
	return nil
}

type tokenConfig struct {
	BOS            tokenSpec `json:"bos_token"`
	EOS            tokenSpec `json:"eos_token"`
	PAD            tokenSpec `json:"pad_token"`
	AddBOS         *bool     `json:"add_bos_token"`
	AddEOS         *bool     `json:"add_eos_token"`
	TokenizerClass string    `json:"tokenizer_class"`
}

// idSpec is a token id in generation_config.json: an int, a list (first wins) or null.
type idSpec struct {
	set bool
	id  int
}

func (s *idSpec) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch x := v.(type) {
	case float64:
		s.set, s.id = true, int(x)
	case []any:
		if len(x) > 0 {
			f, ok := x[0].(float64)
			if !ok {
				return errors.New("token id list holds a non-number")
			}
			s.set, s.id = true, int(f)
		}
	case nil:
	default:
		return errors.New("token id is neither a number, a list nor null")
	}
	return nil
}

type generationConfig struct {
	BOS idSpec `json:"bos_token_id"`
	EOS idSpec `json:"eos_token_id"`
	PAD idSpec `json:"pad_token_id"`
}

// readJSON decodes an optional file; a missing file leaves v unchanged.
func readJSON(path string, v any) (bool, error) {
	buf, err := inputfile.Read(path, inputfile.ConfigLimit)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	if err := json.Unmarshal(buf, v); err != nil {
		return false, fmt.Errorf("tokenizer %s: invalid JSON: %w", path, err)
	}
	return true, nil
}

// applyConfigs sets the special tokens the way transformers resolves them:
// tokenizer_config.json, then special_tokens_map.json, then generation_config.json.
func (t *Tokenizer) applyConfigs(dir string) error {
	var tc, sm tokenConfig
	var gc generationConfig
	for _, f := range []struct {
		name string
		v    any
	}{{"tokenizer_config.json", &tc}, {"special_tokens_map.json", &sm}, {"generation_config.json", &gc}} {
		if _, err := readJSON(filepath.Join(dir, f.name), f.v); err != nil {
			return err
		}
	}
	t.bos = t.resolve(t.bos, tc.BOS, sm.BOS, gc.BOS)
	t.eos = t.resolve(t.eos, tc.EOS, sm.EOS, gc.EOS)
	t.pad = t.resolve(t.pad, tc.PAD, sm.PAD, gc.PAD)
	t.applyAddFlags(&tc)
	return nil
}

func (t *Tokenizer) resolve(cur int, specs ...any) int {
	for _, s := range specs {
		switch s := s.(type) {
		case tokenSpec:
			if s.null {
				return -1
			}
			if id, ok := t.vocab[s.content]; s.set && ok {
				return id
			}
		case idSpec:
			if s.set && s.id >= 0 && s.id < len(t.tokens) {
				return s.id
			}
		}
	}
	return cur
}

// applyAddFlags honours add_bos_token/add_eos_token where transformers does: for
// SentencePiece and Llama tokenizers, whose fast version rebuilds its template from them.
func (t *Tokenizer) applyAddFlags(tc *tokenConfig) {
	llama := strings.Contains(tc.TokenizerClass, "Llama")
	if t.kind != KindSentencePiece && !llama {
		return
	}
	if tc.AddBOS == nil && tc.AddEOS == nil && t.kind != KindSentencePiece {
		return
	}
	t.prefix, t.suffix = nil, nil
	if boolOr(tc.AddBOS, true) && t.bos >= 0 {
		t.prefix = []int{t.bos}
	}
	if boolOr(tc.AddEOS, false) && t.eos >= 0 {
		t.suffix = []int{t.eos}
	}
}
