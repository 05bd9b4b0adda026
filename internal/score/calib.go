package score

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"

	"github.com/shortllm/shortllm/internal/inputfile"
)

// ErrCalibration marks a calibration file that cannot give the windows asked for.
var ErrCalibration = errors.New("invalid calibration data")

// Tokenizer is what text-mode calibration needs from a tokenizer (tokenizer.Tokenizer has it).
type Tokenizer interface {
	// Encode returns the ids of text; addSpecial adds the template's BOS.
	Encode(text string, addSpecial bool) []int
}

// Calibration is the set of token windows a data-driven criterion scores with. It is written
// into every result, so a run can be repeated exactly from the result file alone.
type Calibration struct {
	Source string  `json:"source"`
	SHA256 string  `json:"sha256"`
	SeqLen int     `json:"seq_len"`
	BOS    bool    `json:"bos"`
	Seed   uint64  `json:"seed"`
	IDs    [][]int `json:"ids"`
}

// Defaults of the Shortened LLaMA scripts (anal_block_sensitivity_*.py).
const (
	DefaultSamples = 10
	DefaultSeqLen  = 128
	DefaultSeed    = 1234
)

// CalibOptions choose windows from text. For pre-tokenised files a non-zero Samples or SeqLen
// must match the file (a mismatch is an error, not a silent truncation); zero accepts it.
type CalibOptions struct {
	Samples int    // windows to draw from text; 0 → DefaultSamples
	SeqLen  int    // tokens per window; 0 → DefaultSeqLen
	Seed    uint64 // text-mode sampling seed
	NoBOS   bool   // tokenise rows without the BOS token
}

// LoadCalibration reads windows from path: .json holds pre-tokenised windows ({"ids": [[…]]}
// or a result this package wrote), .txt (one row per line) and .jsonl (a "text" field per
// line) are tokenised with tok and sampled as Shortened LLaMA's get_examples does.
func LoadCalibration(path string, tok Tokenizer, opts CalibOptions) (*Calibration, error) {
	data, err := inputfile.Read(path, inputfile.DataLimit)
	if err != nil {
		return nil, fmt.Errorf("calib %s: %w", path, err)
	}
	c, err := parseCalibration(path, data, tok, opts)
	if err != nil {
		return nil, fmt.Errorf("calib %s: %w", path, err)
	}
	return c, nil
}

func parseCalibration(path string, data []byte, tok Tokenizer, opts CalibOptions) (*Calibration, error) {
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:])
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".json":
		return parseIDs(path, digest, data, opts)
	case ".txt", ".jsonl":
		if tok == nil {
			return nil, fmt.Errorf("text calibration needs the model's tokenizer")
		}
		rows, err := textRows(ext, data)
		if err != nil {
			return nil, err
		}
		return sampleWindows(path, digest, rows, tok, opts)
	default:
		return nil, fmt.Errorf("unknown calibration format %q (want .txt, .jsonl or .json): %w", ext, ErrCalibration)
	}
}

// textRows splits a text file into rows: lines for .txt, the "text" field of each line for .jsonl.
func textRows(ext string, data []byte) ([]string, error) {
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if ext == ".txt" {
		for i, l := range lines {
			lines[i] = strings.TrimSuffix(l, "\r")
		}
		return lines, nil
	}
	rows := make([]string, 0, len(lines))
	for i, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		var rec struct {
			Text *string `json:"text"`
		}
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			return nil, fmt.Errorf("line %d: %v: %w", i+1, err, ErrCalibration)
		}
		if rec.Text == nil {
			return nil, fmt.Errorf("line %d: no \"text\" field: %w", i+1, ErrCalibration)
		}
		rows = append(rows, *rec.Text)
	}
	return rows, nil
}

// sampleWindows follows get_examples: draw random rows until Samples of them tokenise to at
// least SeqLen tokens, taking a random SeqLen window of each. Rows are drawn without
// replacement (get_examples rejects repeats), here as a seeded permutation, so a file with too
// few qualifying rows is an error instead of an endless loop. Python's random stream is not
// reproduced: windows are recorded in the result for exact reruns instead.
func sampleWindows(path, digest string, rows []string, tok Tokenizer, opts CalibOptions) (*Calibration, error) {
	n, L := orDefault(opts.Samples, DefaultSamples), orDefault(opts.SeqLen, DefaultSeqLen)
	if n < 1 || L < 2 {
		return nil, fmt.Errorf("need at least 1 sample of at least 2 tokens, got %d × %d: %w", n, L, ErrCalibration)
	}
	rng := rand.New(rand.NewPCG(opts.Seed, 0))
	c := &Calibration{Source: path, SHA256: digest, SeqLen: L, BOS: !opts.NoBOS, Seed: opts.Seed}
	for _, r := range rng.Perm(len(rows)) {
		ids := tok.Encode(rows[r], !opts.NoBOS)
		if len(ids) < L {
			continue
		}
		j := rng.IntN(len(ids) - L + 1)
		c.IDs = append(c.IDs, append([]int(nil), ids[j:j+L]...))
		if len(c.IDs) == n {
			return c, nil
		}
	}
	return nil, fmt.Errorf("only %d of %d rows have at least %d tokens, %d samples asked: %w",
		len(c.IDs), len(rows), L, n, ErrCalibration)
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// idsDoc is a pre-tokenised file: bare windows, or a result (or list of results) whose
// calibration record is kept verbatim so a rerun's output matches the original.
type idsDoc struct {
	IDs         [][]int      `json:"ids"`
	Calibration *Calibration `json:"calibration"`
}

func parseIDs(path, digest string, data []byte, opts CalibOptions) (*Calibration, error) {
	c, err := decodeIDs(data)
	if err != nil {
		return nil, err
	}
	if c == nil {
		c = &Calibration{}
	}
	if c.Source == "" {
		c.Source, c.SHA256 = path, digest
	}
	if err := checkWindows(c.IDs); err != nil {
		return nil, err
	}
	c.SeqLen = len(c.IDs[0])
	if opts.SeqLen != 0 && opts.SeqLen != c.SeqLen {
		return nil, fmt.Errorf("windows have %d tokens, %d asked: %w", c.SeqLen, opts.SeqLen, ErrCalibration)
	}
	if opts.Samples != 0 && opts.Samples != len(c.IDs) {
		return nil, fmt.Errorf("%d windows, %d samples asked: %w", len(c.IDs), opts.Samples, ErrCalibration)
	}
	return c, nil
}

// decodeIDs accepts {"ids": …}, a result object and a list of results; it returns nil when
// the document holds no windows, and checkWindows reports that.
func decodeIDs(data []byte) (*Calibration, error) {
	data = bytes.TrimSpace(data)
	var docs []idsDoc
	if len(data) > 0 && data[0] == '[' {
		if err := json.Unmarshal(data, &docs); err != nil {
			return nil, fmt.Errorf("%v: %w", err, ErrCalibration)
		}
	} else {
		var d idsDoc
		if err := json.Unmarshal(data, &d); err != nil {
			return nil, fmt.Errorf("%v: %w", err, ErrCalibration)
		}
		docs = []idsDoc{d}
	}
	for _, d := range docs {
		switch {
		case d.IDs != nil:
			return &Calibration{IDs: d.IDs}, nil
		case d.Calibration != nil && d.Calibration.IDs != nil:
			return d.Calibration, nil
		}
	}
	return nil, nil
}

// checkWindows rejects what no model could score: no windows, ragged or too short windows,
// negative ids. Vocabulary and context limits are the model's, checked by Compute.
func checkWindows(ids [][]int) error {
	if len(ids) == 0 {
		return fmt.Errorf("no windows (want {\"ids\": [[…], …]}): %w", ErrCalibration)
	}
	for i, w := range ids {
		if len(w) != len(ids[0]) {
			return fmt.Errorf("window %d has %d tokens, window 0 has %d: %w", i, len(w), len(ids[0]), ErrCalibration)
		}
		for _, id := range w {
			if id < 0 {
				return fmt.Errorf("window %d: negative token id %d: %w", i, id, ErrCalibration)
			}
		}
	}
	if len(ids[0]) < 2 {
		return fmt.Errorf("windows have %d tokens; next-token scoring needs at least 2: %w", len(ids[0]), ErrCalibration)
	}
	return nil
}
