package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// TokenizerConfigFile is the file transformers' AutoTokenizer reads first.
const TokenizerConfigFile = "tokenizer_config.json"

// writeTokenizerConfig writes a minimal tokenizer_config.json into dir when dir has a
// tokenizer.json but no tokenizer_config.json, so AutoTokenizer.from_pretrained(dir) loads the
// fast tokenizer with the model's BOS/EOS tokens and length: tokenizer_class
// PreTrainedTokenizerFast (it reads everything else from tokenizer.json). BOS/EOS are the
// added tokens whose ids config.json names.
func writeTokenizerConfig(dir string, cfg *Config) error {
	if _, err := os.Stat(filepath.Join(dir, TokenizerConfigFile)); err == nil {
		return nil
	}
	data, err := os.ReadFile(filepath.Join(dir, "tokenizer.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var tok struct {
		AddedTokens []struct {
			ID      int    `json:"id"`
			Content string `json:"content"`
		} `json:"added_tokens"`
	}
	if err := json.Unmarshal(data, &tok); err != nil {
		return fmt.Errorf("tokenizer.json: %w", err)
	}
	byID := map[int]string{}
	for _, t := range tok.AddedTokens {
		byID[t.ID] = t.Content
	}
	tc := map[string]any{"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": cfg.MaxPositionEmbeddings,
		"clean_up_tokenization_spaces": false}
	for key, ids := range map[string][]int{"bos_token": cfg.BOSTokenID, "eos_token": cfg.EOSTokenID} {
		if len(ids) > 0 && byID[ids[0]] != "" {
			tc[key] = byID[ids[0]]
		}
	}
	js, err := json.MarshalIndent(tc, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, TokenizerConfigFile), append(js, '\n'), 0o644)
}
