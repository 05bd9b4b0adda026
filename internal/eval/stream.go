package eval

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/shortllm/shortllm/internal/inputfile"
)

// Dataset layouts understood by BuildStream. They reproduce how the Shortened
// LLaMA code gets rows out of Hugging Face datasets before joining them with
// "\n\n".
const (
	// DatasetWikitext2: rows are the file's lines with their newline kept,
	// whitespace-only lines becoming "" (the HF wikitext-2-raw-v1 rows).
	DatasetWikitext2 = "wikitext2"
	// DatasetPTB: rows are the file's lines stripped (HF ptb_text_only).
	DatasetPTB = "ptb"
	// DatasetText: the file as it is, or for .jsonl the "text" rows.
	DatasetText = "text"
)

// rowSeparator joins dataset rows into one document, as in
// "\n\n".join(testdata["text"]) of the Shortened LLaMA PPL code.
const rowSeparator = "\n\n"

// ErrEmptyData is returned (wrapped) for a data file that yields no text.
var ErrEmptyData = errors.New("no text in data file")

// Stream is a data file turned into one token stream, with its provenance.
type Stream struct {
	Path    string // as given
	Dataset string
	SHA256  string // of the file's bytes
	Tokens  []int  // encoded without special tokens
}

// PlainEncoder is implemented by a Tokenizer that can also encode text
// without recognising special-token strings in it, as SentencePiece does.
// The perplexity goldens were computed that way: PTB's "<unk>" is five
// characters of text there, whereas a Hugging Face tokenizer.json turns it
// into token 0 (which changes PTB perplexity by about 30%).
type PlainEncoder interface {
	EncodePlain(text string) []int
}

// BuildStream reads the data file at path, joins its rows as dataset says and
// encodes the result without special tokens, preferring tok's EncodePlain
// when it has one (see PlainEncoder).
// A ".jsonl" file is read as one object per line whose "text" field is a row,
// whatever the dataset: a JSONL export of an HF split already holds its rows.
func BuildStream(path, dataset string, tok Tokenizer) (*Stream, error) {
	if err := checkDataset(dataset); err != nil {
		return nil, err
	}
	data, err := inputfile.Read(path, inputfile.DataLimit)
	if err != nil {
		return nil, fmt.Errorf("read data file: %w", err)
	}
	text, err := StreamText(data, dataset, strings.EqualFold(filepath.Ext(path), ".jsonl"))
	if err != nil {
		return nil, fmt.Errorf("data file %s: %w", path, err)
	}
	sum := sha256.Sum256(data)
	return &Stream{
		Path:    path,
		Dataset: dataset,
		SHA256:  hex.EncodeToString(sum[:]),
		Tokens:  encodePlain(tok, text),
	}, nil
}

func encodePlain(tok Tokenizer, text string) []int {
	if p, ok := tok.(PlainEncoder); ok {
		return p.EncodePlain(text)
	}
	return tok.Encode(text, false)
}

// StreamText turns a data file's bytes into the single document that gets
// tokenised. jsonl says the bytes are JSON lines with a "text" field.
func StreamText(data []byte, dataset string, jsonl bool) (string, error) {
	var rows []string
	var err error
	if err := checkDataset(dataset); err != nil {
		return "", err
	}
	switch {
	case jsonl:
		rows, err = jsonlTextRows(data)
	case dataset == DatasetWikitext2:
		rows = wikitextRows(string(data))
	case dataset == DatasetPTB:
		rows = ptbRows(string(data))
	default:
		rows = []string{string(data)}
	}
	if err != nil {
		return "", err
	}
	text := strings.Join(rows, rowSeparator)
	if pyStrip(text) == "" {
		return "", ErrEmptyData
	}
	return text, nil
}

func checkDataset(dataset string) error {
	switch dataset {
	case DatasetWikitext2, DatasetPTB, DatasetText:
		return nil
	}
	return fmt.Errorf("unknown dataset %q (--dataset wants %s, %s or %s)", dataset, DatasetWikitext2, DatasetPTB, DatasetText)
}

// splitLinesKeepEnds splits like Python's file iteration: every line keeps
// its "\n", and a final line without one is kept as is.
func splitLinesKeepEnds(s string) []string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

func wikitextRows(s string) []string {
	rows := splitLinesKeepEnds(s)
	for i, l := range rows {
		if pyStrip(l) == "" {
			rows[i] = ""
		}
	}
	return rows
}

func ptbRows(s string) []string {
	rows := splitLinesKeepEnds(s)
	for i, l := range rows {
		rows[i] = pyStrip(l)
	}
	return rows
}

// jsonlTextRows returns the "text" field of every non-blank line.
func jsonlTextRows(data []byte) ([]string, error) {
	var rows []string
	for n, line := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var obj struct {
			Text *string `json:"text"`
		}
		if err := json.Unmarshal(line, &obj); err != nil {
			return nil, fmt.Errorf("line %d: %w", n+1, err)
		}
		if obj.Text == nil {
			return nil, fmt.Errorf("line %d: missing string field \"text\"", n+1)
		}
		rows = append(rows, *obj.Text)
	}
	return rows, nil
}

// DatasetFor picks the row rule for a data file from its name, as the commands do when no
// dataset is given: wiki* → wikitext2, ptb* → ptb, anything else → text.
func DatasetFor(path string) string {
	base := strings.ToLower(filepath.Base(path))
	switch {
	case strings.HasPrefix(base, "wiki"):
		return DatasetWikitext2
	case strings.HasPrefix(base, "ptb"):
		return DatasetPTB
	}
	return DatasetText
}
