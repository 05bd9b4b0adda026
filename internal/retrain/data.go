package retrain

// Training data: instruction records (alpaca-lora), raw text for continued pretraining (HF
// run_clm's group_texts) and pre-tokenised batches. Every loader returns Examples whose
// Labels are aligned with IDs as in Hugging Face (unshifted: the trainer shifts them).

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/shortllm/shortllm/internal/inputfile"
	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/tokenizer"
)

// ErrData marks a training or validation file that cannot be used.
var ErrData = errors.New("invalid training data")

// Example is one training sequence. Labels[t] is the token expected at position t (HF
// convention: the loss compares logits[t-1] with Labels[t]); IgnoreIndex marks no loss.
type Example struct {
	IDs    []int `json:"input_ids"`
	Labels []int `json:"labels,omitempty"`
}

// Instruction is one Alpaca-format record.
type Instruction struct {
	Instruction string `json:"instruction"`
	Input       string `json:"input"`
	Output      string `json:"output"`
}

// Dataset is a loaded data file.
type Dataset struct {
	Path     string
	Kind     string // "instruction", "text" or "pretokenized"
	Examples []Example
	// Ordered is true for pre-tokenised batches, which are taken in file order (no shuffle).
	Ordered bool
	// Skipped counts examples dropped because they have no label token.
	Skipped int
}

// DataOptions control how a file becomes examples.
type DataOptions struct {
	SeqLen        int  // cutoff_len for instructions, block size for packed text
	TrainOnInputs bool // keep the loss on prompt tokens (alpaca-lora's train_on_inputs)
}

// The alpaca-lora templates (templates/alpaca.json), with and without an input.
const (
	promptInput = "Below is an instruction that describes a task, paired with an input that provides further context. " +
		"Write a response that appropriately completes the request.\n\n### Instruction:\n%s\n\n### Input:\n%s\n\n### Response:\n"
	promptNoInput = "Below is an instruction that describes a task. " +
		"Write a response that appropriately completes the request.\n\n### Instruction:\n%s\n\n### Response:\n"
)

// AlpacaPrompt is alpaca-lora's Prompter.generate_prompt(instruction, input): the user part.
func AlpacaPrompt(r Instruction) string {
	if r.Input != "" {
		return fmt.Sprintf(promptInput, r.Instruction, r.Input)
	}
	return fmt.Sprintf(promptNoInput, r.Instruction)
}

// LoadDataset reads path and turns it into examples. The kind follows the extension and the
// fields: .txt is raw text; .jsonl rows with "text" are raw text, rows with "instruction" are
// instructions; .json is an instruction array, or pre-tokenised when it holds input_ids.
// Text and instructions need tok.
func LoadDataset(path string, tok *tokenizer.Tokenizer, o DataOptions) (*Dataset, error) {
	data, err := inputfile.Read(path, inputfile.DataLimit)
	if err != nil {
		return nil, fmt.Errorf("data %s: %w", path, err)
	}
	ds, err := parseDataset(path, data, tok, o)
	if err != nil {
		return nil, fmt.Errorf("data %s: %w", path, err)
	}
	if len(ds.Examples) == 0 {
		return nil, fmt.Errorf("data %s: no training examples (%s data): %w", path, ds.Kind, ErrData)
	}
	n := len(ds.Examples)
	ds.Examples, ds.Skipped = dropUnlabelled(ds.Examples)
	if len(ds.Examples) == 0 {
		return nil, fmt.Errorf("data %s: none of the %d examples has a label token (is every prompt longer than --seq-len %d?): %w",
			path, n, o.SeqLen, ErrData)
	}
	return ds, nil
}

// dropUnlabelled removes examples with no label token: they would add nothing to the loss
// but still count as examples in a batch (an instruction whose prompt fills the cutoff).
func dropUnlabelled(exs []Example) (kept []Example, skipped int) {
	for _, e := range exs {
		if hasLabel(e) {
			kept = append(kept, e)
		} else {
			skipped++
		}
	}
	return kept, skipped
}

// hasLabel: position 0's label is never predicted (labels shift by one).
func hasLabel(e Example) bool {
	for j := 1; j < len(e.IDs); j++ {
		if e.Labels == nil || (j < len(e.Labels) && e.Labels[j] != model.IgnoreIndex) {
			return true
		}
	}
	return false
}

func parseDataset(path string, data []byte, tok *tokenizer.Tokenizer, o DataOptions) (*Dataset, error) {
	ds := &Dataset{Path: path}
	ext := strings.ToLower(filepath.Ext(path))
	kind, err := sniffKind(ext, data)
	if err != nil {
		return nil, err
	}
	ds.Kind = kind
	if kind == "pretokenized" {
		ds.Ordered = true
		ds.Examples, err = ParsePretokenized(data)
		return ds, err
	}
	if tok == nil {
		return nil, fmt.Errorf("%s data needs the model's tokenizer: %w", kind, ErrData)
	}
	if o.SeqLen <= 0 {
		return nil, fmt.Errorf("seq-len %d must be positive: %w", o.SeqLen, ErrData)
	}
	if kind == "text" {
		texts, err := parseTexts(ext, data)
		if err != nil {
			return nil, err
		}
		ds.Examples = PackTexts(texts, tok, o.SeqLen)
		return ds, nil
	}
	recs, err := ParseInstructions(data, ext == ".jsonl")
	if err != nil {
		return nil, err
	}
	ds.Examples = make([]Example, len(recs))
	for i, r := range recs {
		ds.Examples[i] = TokenizeInstruction(r, tok, o)
	}
	return ds, nil
}

// sniffKind decides the data kind from the extension and the first record's fields.
func sniffKind(ext string, data []byte) (string, error) {
	switch ext {
	case ".txt":
		return "text", nil
	case ".json", ".jsonl":
	default:
		return "", fmt.Errorf("unknown data format %q (want .json, .jsonl or .txt): %w", ext, ErrData)
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return "", fmt.Errorf("empty file: %w", ErrData)
	}
	if ext == ".json" {
		if trimmed[0] == '{' {
			return objectKind(trimmed)
		}
		if bytes.Contains(trimmed[:min(len(trimmed), 4096)], []byte(`"input_ids"`)) {
			return "pretokenized", nil
		}
		return "instruction", nil
	}
	first, _, _ := bytes.Cut(trimmed, []byte("\n"))
	var row map[string]json.RawMessage
	if err := json.Unmarshal(first, &row); err != nil {
		return "", fmt.Errorf("line 1: %v: %w", err, ErrData)
	}
	switch {
	case row["text"] != nil:
		return "text", nil
	case row["input_ids"] != nil:
		return "", fmt.Errorf("pre-tokenised data must be a .json file: %w", ErrData)
	}
	return "instruction", nil
}

// objectKind: a top-level JSON object is pre-tokenised data ({"input_ids": ...}); any other
// object (say one alpaca record without the surrounding array) is named as what it is.
func objectKind(data []byte) (string, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return "", fmt.Errorf("not valid JSON: %v: %w", err, ErrData)
	}
	if obj["input_ids"] != nil {
		return "pretokenized", nil
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return "", fmt.Errorf("a JSON object with keys %v: want an array of instruction records "+
		`([{"instruction", "input", "output"}, ...]) or pre-tokenised {"input_ids": [[...]]}: %w`, keys, ErrData)
}

// ParseInstructions decodes a JSON array (or JSON lines) of instruction/input/output records.
// instruction and output must be present; input may be missing or empty.
func ParseInstructions(data []byte, jsonl bool) ([]Instruction, error) {
	var raws []map[string]json.RawMessage
	if jsonl {
		var err error
		if raws, err = jsonLines(data); err != nil {
			return nil, err
		}
	} else if err := json.Unmarshal(data, &raws); err != nil {
		return nil, fmt.Errorf("want a JSON array of instruction records: %v: %w", err, ErrData)
	}
	out := make([]Instruction, len(raws))
	for i, raw := range raws {
		r, err := instructionRecord(raw)
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		out[i] = r
	}
	return out, nil
}

func instructionRecord(raw map[string]json.RawMessage) (Instruction, error) {
	var r Instruction
	for _, f := range []struct {
		name     string
		dst      *string
		required bool
	}{{"instruction", &r.Instruction, true}, {"input", &r.Input, false}, {"output", &r.Output, true}} {
		v, ok := raw[f.name]
		if !ok || string(v) == "null" {
			if f.required {
				return r, fmt.Errorf("missing field %q: %w", f.name, ErrData)
			}
			continue
		}
		if err := json.Unmarshal(v, f.dst); err != nil {
			return r, fmt.Errorf("field %q is not a string: %w", f.name, ErrData)
		}
	}
	return r, nil
}

// jsonLines decodes one JSON object per non-blank line.
func jsonLines(data []byte) ([]map[string]json.RawMessage, error) {
	var rows []map[string]json.RawMessage
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<30)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var row map[string]json.RawMessage
		if err := json.Unmarshal(line, &row); err != nil || row == nil {
			return nil, fmt.Errorf("line %d: not a JSON object: %w", n, ErrData)
		}
		rows = append(rows, row)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%v: %w", err, ErrData)
	}
	return rows, nil
}

// TokenizeInstruction is alpaca-lora's generate_and_tokenize_prompt: BOS + full prompt,
// truncated at SeqLen, EOS appended when it fits (and the text did not already end in it).
// Unless TrainOnInputs, the first len(tokenize(user_prompt)) labels are IgnoreIndex, where the
// user prompt is tokenised the same way but without EOS (add_eos_token=False).
func TokenizeInstruction(r Instruction, tok *tokenizer.Tokenizer, o DataOptions) Example {
	user := AlpacaPrompt(r)
	ids := cutoff(tok.Encode(user+r.Output, true), tok.EOS(), o.SeqLen, true)
	labels := append([]int(nil), ids...)
	if !o.TrainOnInputs {
		n := len(cutoff(tok.Encode(user, true), tok.EOS(), o.SeqLen, false))
		for i := 0; i < n && i < len(labels); i++ {
			labels[i] = model.IgnoreIndex
		}
	}
	return Example{IDs: ids, Labels: labels}
}

// cutoff is alpaca-lora's tokenize(): truncation=True, max_length=cutoff_len, then EOS when
// the last id is not EOS and there is room.
func cutoff(ids []int, eos, seqLen int, addEOS bool) []int {
	if len(ids) > seqLen {
		ids = ids[:seqLen]
	}
	if addEOS && eos >= 0 && len(ids) > 0 && ids[len(ids)-1] != eos && len(ids) < seqLen {
		ids = append(ids, eos)
	}
	return ids
}

// parseTexts returns the documents of a .txt file (one per non-blank line, as `datasets`'
// text loader yields rows) or of a .jsonl file's "text" fields.
func parseTexts(ext string, data []byte) ([]string, error) {
	if ext == ".txt" {
		var docs []string
		for _, line := range strings.Split(string(data), "\n") {
			if strings.TrimSpace(line) != "" {
				docs = append(docs, line)
			}
		}
		return docs, nil
	}
	rows, err := jsonLines(data)
	if err != nil {
		return nil, err
	}
	docs := make([]string, len(rows))
	for i, row := range rows {
		v, ok := row["text"]
		if !ok {
			return nil, fmt.Errorf("line %d: missing field \"text\": %w", i+1, ErrData)
		}
		if err := json.Unmarshal(v, &docs[i]); err != nil {
			return nil, fmt.Errorf("line %d: field \"text\" is not a string: %w", i+1, ErrData)
		}
	}
	return docs, nil
}

// PackTexts is run_clm's tokenize + group_texts: each document is encoded with BOS and
// followed by EOS, everything is concatenated and cut into blocks of seqLen; the remainder
// shorter than a block is dropped. Labels equal the ids.
func PackTexts(docs []string, tok *tokenizer.Tokenizer, seqLen int) []Example {
	var stream []int
	for _, d := range docs {
		stream = append(stream, tok.Encode(d, true)...)
		if tok.EOS() >= 0 {
			stream = append(stream, tok.EOS())
		}
	}
	var out []Example
	for i := 0; i+seqLen <= len(stream); i += seqLen {
		block := stream[i : i+seqLen : i+seqLen]
		out = append(out, Example{IDs: block, Labels: block})
	}
	return out
}

// ParsePretokenized decodes pre-tokenised sequences: either {"input_ids": [[...]],
// "labels": [[...]]} (labels optional; other keys ignored) or an array of such rows.
// Missing labels mean "labels = input_ids".
func ParsePretokenized(data []byte) ([]Example, error) {
	trimmed := bytes.TrimSpace(data)
	var exs []Example
	if len(trimmed) > 0 && trimmed[0] == '[' {
		if err := json.Unmarshal(trimmed, &exs); err != nil {
			return nil, fmt.Errorf("want an array of {input_ids, labels} rows: %v: %w", err, ErrData)
		}
	} else {
		var cols struct {
			IDs    [][]int `json:"input_ids"`
			Labels [][]int `json:"labels"`
		}
		if err := json.Unmarshal(trimmed, &cols); err != nil {
			return nil, fmt.Errorf("want {\"input_ids\": [[...]], \"labels\": [[...]]}: %v: %w", err, ErrData)
		}
		if cols.Labels != nil && len(cols.Labels) != len(cols.IDs) {
			return nil, fmt.Errorf("%d input_ids rows but %d labels rows: %w", len(cols.IDs), len(cols.Labels), ErrData)
		}
		exs = make([]Example, len(cols.IDs))
		for i := range cols.IDs {
			exs[i].IDs = cols.IDs[i]
			if cols.Labels != nil {
				exs[i].Labels = cols.Labels[i]
			}
		}
	}
	return exs, checkExamples(exs)
}

func checkExamples(exs []Example) error {
	for i := range exs {
		e := &exs[i]
		if len(e.IDs) == 0 {
			return fmt.Errorf("row %d: empty input_ids: %w", i, ErrData)
		}
		if e.Labels == nil {
			e.Labels = e.IDs
		}
		if len(e.Labels) != len(e.IDs) {
			return fmt.Errorf("row %d: %d labels for %d input_ids: %w", i, len(e.Labels), len(e.IDs), ErrData)
		}
	}
	return nil
}

// CheckFits rejects ids outside the vocabulary and sequences beyond the context window.
func (d *Dataset) CheckFits(cfg *model.Config) error {
	for i, e := range d.Examples {
		if len(e.IDs) > cfg.MaxPositionEmbeddings {
			return fmt.Errorf("data %s: example %d has %d tokens, more than max_position_embeddings (%d): %w",
				d.Path, i, len(e.IDs), cfg.MaxPositionEmbeddings, ErrData)
		}
		for j, id := range e.IDs {
			if id < 0 || id >= cfg.VocabSize {
				return fmt.Errorf("data %s: example %d: token id %d outside the vocabulary [0, %d): %w", d.Path, i, id, cfg.VocabSize, ErrData)
			}
			if l := e.Labels[j]; l != model.IgnoreIndex && (l < 0 || l >= cfg.VocabSize) {
				return fmt.Errorf("data %s: example %d: label %d outside the vocabulary: %w", d.Path, i, l, ErrData)
			}
		}
	}
	return nil
}
