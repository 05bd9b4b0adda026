package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/tokenizer"
)

type generateOptions struct {
	model     string
	adapter   string
	prompt    string
	promptIDs string
	model.GenerateOptions
}

func newGenerateCmd(a *app) *cobra.Command {
	o := &generateOptions{}
	cmd := &cobra.Command{
		Use:   "generate --model DIR [--prompt TEXT | --prompt-ids 1,2,3]",
		Short: "Generate text with a KV cache (greedy by default)",
		Example: `  shortllm generate --model ../shared/models/stories260K --max-new-tokens 200
  shortllm generate --model meta-llama/Llama-3.2-1B --prompt "The Leaning Tower of Pisa is" --temperature 0.8 --top-p 0.9 --seed 1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runGenerate(a, cmd, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.model, "model", "", "model directory or Hugging Face id (org/name[@revision])")
	f.StringVar(&o.adapter, "adapter", "", "PEFT LoRA adapter directory applied to the model")
	f.StringVar(&o.prompt, "prompt", "", "prompt text (encoded with the model's tokenizer, BOS added)")
	f.StringVar(&o.promptIDs, "prompt-ids", "", "prompt as comma-separated token ids (default: BOS)")
	f.IntVar(&o.MaxNewTokens, "max-new-tokens", 128, "tokens to generate")
	f.Float64Var(&o.Temperature, "temperature", 0, "sampling temperature; 0 = greedy")
	f.Float64Var(&o.TopP, "top-p", 1, "nucleus sampling probability mass")
	f.IntVar(&o.TopK, "top-k", 0, "sample among the k most likely tokens (0 = all)")
	f.Uint64Var(&o.Seed, "seed", 0, "random seed for sampling")
	f.BoolVar(&o.IgnoreEOS, "ignore-eos", false, "generate max-new-tokens even after EOS")
	addDTypeFlag(f, a)
	return cmd
}

func runGenerate(a *app, cmd *cobra.Command, o *generateOptions) error {
	if err := o.GenerateOptions.Validate(); err != nil {
		return err
	}
	l, err := a.loadRunner(cmd.Context(), o.model, o.adapter, false)
	if err != nil {
		return err
	}
	m, tok := l.Model, l.Tok
	prompt, err := promptIDs(o, m.Config, tok)
	if err != nil {
		return err
	}
	opts := o.GenerateOptions
	opts.StopIDs = m.Config.EOSTokenID
	if tok != nil && tok.EOS() >= 0 && len(opts.StopIDs) == 0 {
		opts.StopIDs = []int{tok.EOS()}
	}
	stream := tok != nil && !a.json
	if stream {
		opts.OnToken = streamer(a, tok)
	}
	out, err := l.runner.Generate([][]int{prompt}, opts)
	if err != nil {
		return err
	}
	ids := out[0]
	if a.json {
		doc := map[string]any{"prompt_ids": prompt, "ids": ids}
		if tok != nil {
			doc["text"] = tok.Decode(ids)
		}
		return a.printJSON(doc)
	}
	if !stream {
		fmt.Fprintln(a.out, joinInts(ids))
		return nil
	}
	_, err = fmt.Fprintln(a.out)
	return err
}

// streamer prints the text as it grows: decoding the whole sequence each time keeps
// multi-byte characters and SentencePiece's leading-space rule right.
func streamer(a *app, tok *tokenizer.Tokenizer) func(int) {
	var ids []int
	printed := ""
	return func(id int) {
		ids = append(ids, id)
		text := tok.Decode(ids)
		if strings.HasPrefix(text, printed) && !strings.HasSuffix(text, "\uFFFD") {
			fmt.Fprint(a.out, text[len(printed):])
			printed = text
		}
	}
}

func promptIDs(o *generateOptions, cfg *model.Config, tok *tokenizer.Tokenizer) ([]int, error) {
	switch {
	case o.prompt != "" && o.promptIDs != "":
		return nil, fmt.Errorf("use either --prompt or --prompt-ids, not both")
	case o.promptIDs != "":
		return parseInts(o.promptIDs, "--prompt-ids")
	case o.prompt != "":
		if tok == nil {
			return nil, fmt.Errorf("--prompt needs the model's tokenizer files (tokenizer.json or tokenizer.model)")
		}
		return tok.Encode(o.prompt, true), nil
	}
	if len(cfg.BOSTokenID) > 0 {
		return []int{cfg.BOSTokenID[0]}, nil
	}
	if tok != nil && tok.BOS() >= 0 {
		return []int{tok.BOS()}, nil
	}
	return nil, fmt.Errorf("the model has no BOS token: give --prompt or --prompt-ids")
}

func parseInts(s, flag string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not an integer", flag, f)
		}
		out = append(out, v)
	}
	return out, nil
}

func joinInts(v []int) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = strconv.Itoa(x)
	}
	return strings.Join(parts, " ")
}
