package main

// demo-data prepares what the embedded demo model is built from (scripts/demo-model.sh):
// a byte-level BPE tokenizer trained on public-domain text, the model's config.json and the
// small data files the demo pipeline reads. Everything is a pure function of the input text
// and the flags, so `make demo-model` rebuilds the same files.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shortllm/shortllm/internal/atomicfile"
	"github.com/shortllm/shortllm/internal/tokenizer"
)

type demoDataOptions struct {
	text, out, work string
	vocab, layers   int
}

func newDemoDataCmd(a *app) *cobra.Command {
	o := &demoDataOptions{}
	cmd := &cobra.Command{
		Use:   "demo-data --text FILE --out DIR --work DIR",
		Short: "Prepare the demo model's tokenizer, config and data from a text file (used by make demo-model)",
		Long: `Split the text into paragraphs (every 10th held out), train a byte-level BPE tokenizer on
the training paragraphs and write:

  OUT/tokenizer/tokenizer.json   Hugging Face byte-level BPE (BOS/EOS added tokens)
  OUT/config.json                the LLaMA architecture of the demo model
  OUT/data/cpt.jsonl             a small raw-text subset (the demo's CPT data)
  OUT/data/lora.jsonl            another raw-text subset (the demo's LoRA data: an instruction
                                 prompt would not fit the demo's 64-token sequences)
  OUT/data/calib.jsonl           calibration text for scoring
  OUT/data/heldout.jsonl         held-out paragraphs (perplexity)
  OUT/data/zeroshot/<task>.jsonl the seven zero-shot tasks' field layouts, filled with items
                                 built from held-out sentences (which continuation or word
                                 does the book have?): the harness path, not the benchmarks
  WORK/train.jsonl               every training paragraph (pretraining data; not shipped)`,
		Example: `  shortllm demo-data --text $(go env GOROOT)/src/testdata/Isaac.Newton-Opticks.txt --out testdata/demo --work /tmp/demo-work`,
		Hidden:  true,
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return runDemoData(a, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.text, "text", "", "source text (UTF-8)")
	f.StringVar(&o.out, "out", "", "demo directory")
	f.StringVar(&o.work, "work", "", "directory for the full training split")
	f.IntVar(&o.vocab, "vocab-size", 512, "tokenizer vocabulary (256 bytes + merges + BOS + EOS)")
	f.IntVar(&o.layers, "layers", 10, "Transformer blocks of the demo model")
	return cmd
}

func runDemoData(a *app, o *demoDataOptions) error {
	if o.text == "" || o.out == "" || o.work == "" {
		return fmt.Errorf("--text, --out and --work are required")
	}
	raw, err := os.ReadFile(o.text)
	if err != nil {
		return fmt.Errorf("--text: %w", err)
	}
	train, heldout := splitParagraphs(paragraphs(string(raw)))
	tr, err := tokenizer.TrainByteLevel(strings.Join(train, "\n\n"), tokenizer.TrainOptions{VocabSize: o.vocab})
	if err != nil {
		return err
	}
	if err := writeDemoTokenizer(o.out, tr); err != nil {
		return err
	}
	if err := writeDemoConfig(o.out, tr, o.layers); err != nil {
		return err
	}
	if err := writeDemoData(o, train, heldout); err != nil {
		return err
	}
	if err := writeDemoZeroShot(o.out, heldout); err != nil {
		return err
	}
	fmt.Fprintf(a.out, "wrote %s: %d training and %d held-out paragraphs, vocabulary %d\n", o.out, len(train), len(heldout), tr.VocabSize())
	return nil
}

// paragraphs splits text at blank lines and joins each paragraph's wrapped lines.
func paragraphs(text string) []string {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	var out []string
	for _, p := range strings.Split(text, "\n\n") {
		p = strings.Join(strings.Fields(p), " ")
		if len(p) >= 80 { // headings and page furniture teach little
			out = append(out, p)
		}
	}
	return out
}

// splitParagraphs holds out every 10th paragraph: spread over the book, so the held-out
// text has the same topics as the training text.
func splitParagraphs(ps []string) (train, heldout []string) {
	for i, p := range ps {
		if i%10 == 9 {
			heldout = append(heldout, p)
		} else {
			train = append(train, p)
		}
	}
	return train, heldout
}

func writeDemoTokenizer(out string, tr *tokenizer.Trained) error {
	doc, err := tr.MarshalJSON()
	if err != nil {
		return err
	}
	dir := filepath.Join(out, "tokenizer")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, "tokenizer.json"), append(doc, '\n'))
}

// writeDemoConfig writes a LLaMA config sized for SimpleGo on two cores: hidden 64 like
// stories260K, deep enough for the paper's "+" policy to leave blocks to prune.
func writeDemoConfig(out string, tr *tokenizer.Trained, layers int) error {
	cfg := map[string]any{
		"architectures": []string{"LlamaForCausalLM"}, "model_type": "llama",
		"hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": layers,
		"num_attention_heads": 8, "num_key_value_heads": 4, "vocab_size": tr.VocabSize(),
		"max_position_embeddings": 256, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
		"hidden_act": "silu", "tie_word_embeddings": true, "initializer_range": 0.02,
		"bos_token_id": tr.BOSID(), "eos_token_id": tr.EOSID(), "torch_dtype": "float32",
		"attention_bias": false, "mlp_bias": false,
	}
	doc, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(out, "config.json"), append(doc, '\n'))
}

// Sizes of the shipped data files: enough for a demo run of a few dozen steps, small
// enough to keep the repository light.
const (
	demoCPTBytes     = 48_000
	demoLoRABytes    = 48_000
	demoCalibRows    = 16
	demoHeldoutBytes = 24_000
)

func writeDemoData(o *demoDataOptions, train, heldout []string) error {
	dir := filepath.Join(o.out, "data")
	for _, d := range []string{dir, o.work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	files := []struct {
		path string
		rows []map[string]string
	}{
		{filepath.Join(o.work, "train.jsonl"), textRows(train, 0)},
		{filepath.Join(dir, "cpt.jsonl"), textRows(every(train, 7), demoCPTBytes)},
		{filepath.Join(dir, "calib.jsonl"), firstRows(textRows(every(train, 25), 0), demoCalibRows)},
		{filepath.Join(dir, "heldout.jsonl"), textRows(heldout, demoHeldoutBytes)},
		{filepath.Join(dir, "lora.jsonl"), textRows(every(train[3:], 7), demoLoRABytes)},
	}
	for _, f := range files {
		if err := writeJSONL(f.path, f.rows); err != nil {
			return err
		}
	}
	return nil
}

// every keeps every n-th paragraph, starting at the first.
func every(ps []string, n int) []string {
	var out []string
	for i := 0; i < len(ps); i += n {
		out = append(out, ps[i])
	}
	return out
}

func firstRows(rows []map[string]string, n int) []map[string]string { return rows[:min(n, len(rows))] }

// textRows are {"text": p} rows, up to limit bytes of text (0 = all).
func textRows(ps []string, limit int) []map[string]string {
	var rows []map[string]string
	total := 0
	for _, p := range ps {
		if limit > 0 && total+len(p) > limit {
			break
		}
		total += len(p)
		rows = append(rows, map[string]string{"text": p})
	}
	return rows
}

func writeJSONL(path string, rows []map[string]string) error {
	var sb strings.Builder
	enc := json.NewEncoder(&sb)
	enc.SetEscapeHTML(false)
	for _, r := range rows {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return writeFileAtomic(path, []byte(sb.String()))
}

// writeFileAtomic writes via a temp file + rename so an interrupted run leaves no half file.
func writeFileAtomic(path string, data []byte) error { return atomicfile.Write(path, data) }
