package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/shortllm/shortllm/internal/tokenizer"
)

type tokenizeOptions struct {
	model     string
	noSpecial bool
}

func newTokenizeCmd(a *app) *cobra.Command {
	o := &tokenizeOptions{}
	cmd := &cobra.Command{
		Use:   "tokenize --model DIR [--no-special] TEXT|-",
		Short: "Print the token ids of a text (- reads all of stdin as one text)",
		Example: `  shortllm tokenize --model ../shared/models/stories260K "Once upon a time"
  echo -n "Hello" | shortllm tokenize --model ../shared/tokenizers/llama3 --json -`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tok, err := loadTokenizer(a, cmd, o.model)
			if err != nil {
				return err
			}
			text := args[0]
			if text == "-" {
				b, err := io.ReadAll(a.in)
				if err != nil {
					return fmt.Errorf("read stdin: %w", err)
				}
				text = string(b)
			}
			ids := tok.Encode(text, !o.noSpecial)
			if a.json {
				return a.printJSON(map[string]any{"ids": nonNil(ids)})
			}
			_, err = fmt.Fprintln(a.out, joinInts(ids))
			return err
		},
	}
	cmd.Flags().StringVar(&o.model, "model", "", "model or tokenizer directory (or Hugging Face id)")
	cmd.Flags().BoolVar(&o.noSpecial, "no-special", false, "do not add BOS/EOS or template tokens")
	return cmd
}

func newDetokenizeCmd(a *app) *cobra.Command {
	var modelRef string
	cmd := &cobra.Command{
		Use:   "detokenize --model DIR IDS|-",
		Short: "Decode token ids (comma- or space-separated, or - for stdin) to text",
		Example: `  shortllm detokenize --model ../shared/models/stories260K 1,403,407,261
  shortllm tokenize --model DIR "some text" | shortllm detokenize --model DIR -`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tok, err := loadTokenizer(a, cmd, modelRef)
			if err != nil {
				return err
			}
			src := args[0]
			if src == "-" {
				b, err := io.ReadAll(a.in)
				if err != nil {
					return fmt.Errorf("read stdin: %w", err)
				}
				src = string(b)
			}
			ids, err := parseIDList(src, tok.VocabSize())
			if err != nil {
				return err
			}
			text := tok.Decode(ids)
			if a.json {
				return a.printJSON(map[string]any{"ids": nonNil(ids), "text": text})
			}
			_, err = fmt.Fprintln(a.out, text)
			return err
		},
	}
	cmd.Flags().StringVar(&modelRef, "model", "", "model or tokenizer directory (or Hugging Face id)")
	return cmd
}

func loadTokenizer(a *app, cmd *cobra.Command, ref string) (*tokenizer.Tokenizer, error) {
	dir, err := a.resolveModel(cmd.Context(), ref)
	if err != nil {
		return nil, err
	}
	return tokenizer.Load(dir)
}

func nonNil(ids []int) []int {
	if ids == nil {
		return []int{}
	}
	return ids
}
