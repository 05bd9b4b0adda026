package retrain

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/testutil"
	"github.com/shortllm/shortllm/internal/tokenizer"
)

// TestRetrainAlpacaTokenize_Golden checks prompts, ids and labels of the first 40 Alpaca
// records against alpaca-lora's generate_and_tokenize_prompt run with HF tokenizers.
func TestRetrainAlpacaTokenize_Golden(t *testing.T) {
	tok, err := tokenizer.Load(testutil.SharedDir(t, "models", "stories260K"))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(testutil.SharedDir(t, "data", "alpaca", "alpaca_en_demo.json"))
	if err != nil {
		t.Fatal(err)
	}
	recs, err := ParseInstructions(data, false)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(testutil.SharedDir(t, "goldens", "stories260K.alpaca40.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	n := 0
	for ; sc.Scan(); n++ {
		var g struct {
			Index          int
			Prompt, Output string
			InputIDs       []int `json:"input_ids"`
			Labels         []int
		}
		if err := json.Unmarshal(sc.Bytes(), &g); err != nil {
			t.Fatal(err)
		}
		r := recs[g.Index]
		if p := AlpacaPrompt(r); p != g.Prompt {
			t.Errorf("record %d: prompt %q, want %q", g.Index, p, g.Prompt)
		}
		ex := TokenizeInstruction(r, tok, DataOptions{SeqLen: 256})
		if !slices.Equal(ex.IDs, g.InputIDs) {
			t.Errorf("record %d: ids differ:\n got %v\nwant %v", g.Index, ex.IDs, g.InputIDs)
		}
		if !slices.Equal(ex.Labels, g.Labels) {
			t.Errorf("record %d: labels differ:\n got %v\nwant %v", g.Index, ex.Labels, g.Labels)
		}
	}
	if n != 40 {
		t.Fatalf("golden has %d records, want 40", n)
	}
}

// TestTokenizeInstruction_TrainOnInputs keeps every label.
func TestTokenizeInstruction_TrainOnInputs(t *testing.T) {
	tok, err := tokenizer.Load(testutil.SharedDir(t, "models", "stories260K"))
	if err != nil {
		t.Fatal(err)
	}
	ex := TokenizeInstruction(Instruction{Instruction: "Say hi.", Output: "Hi."}, tok, DataOptions{SeqLen: 256, TrainOnInputs: true})
	if !slices.Equal(ex.IDs, ex.Labels) || ex.IDs[0] != tok.BOS() || ex.IDs[len(ex.IDs)-1] != tok.EOS() {
		t.Fatalf("ids %v labels %v", ex.IDs, ex.Labels)
	}
}

// TestPackTexts_GroupTexts checks run_clm's packing: BOS doc EOS BOS doc EOS …, cut into
// blocks, remainder dropped.
func TestPackTexts_GroupTexts(t *testing.T) {
	tok, err := tokenizer.Load(testutil.SharedDir(t, "models", "stories260K"))
	if err != nil {
		t.Fatal(err)
	}
	docs := []string{"Once upon a time.", "The end.", "A cat sat."}
	var stream []int
	for _, d := range docs {
		stream = append(append(stream, tok.Encode(d, true)...), tok.EOS())
	}
	exs := PackTexts(docs, tok, 8)
	if len(exs) != len(stream)/8 {
		t.Fatalf("%d blocks from %d tokens, want %d", len(exs), len(stream), len(stream)/8)
	}
	for i, e := range exs {
		if !slices.Equal(e.IDs, stream[i*8:(i+1)*8]) || !slices.Equal(e.Labels, e.IDs) {
			t.Fatalf("block %d = %v, want %v", i, e.IDs, stream[i*8:(i+1)*8])
		}
	}
}

// TestLoadDataset_Errors: bad files give one-line errors that name the file.
func TestLoadDataset_Errors(t *testing.T) {
	tok, err := tokenizer.Load(testutil.SharedDir(t, "models", "stories260K"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, content, want string }{
		{"empty.json", "", "empty file"},
		{"empty.jsonl", "\n\n", "empty file"},
		{"none.json", "[]", "no training examples"},
		{"noout.json", `[{"instruction": "x"}]`, `missing field "output"`},
		{"noinstr.jsonl", `{"input": "a", "output": "b"}`, `missing field "instruction"`},
		{"badtype.json", `[{"instruction": 3, "output": "b"}]`, `"instruction" is not a string`},
		{"notext.jsonl", "{\"text\": \"a\"}\n{\"body\": \"b\"}", `missing field "text"`},
		{"short.txt", "hi", "no training examples"},
		{"ragged.json", `{"input_ids": [[1, 2]], "labels": [[1]]}`, "1 labels for 2 input_ids"},
		{"rows.json", `{"input_ids": [[1, 2]], "labels": []}`, "1 input_ids rows but 0 labels rows"},
		{"data.csv", "a,b", "unknown data format"},
		{"broken.jsonl", "{\"instruction\": ", "line 1"},
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, c.name)
			if err := os.WriteFile(p, []byte(c.content), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadDataset(p, tok, DataOptions{SeqLen: 16})
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.Contains(msg, c.want) || !strings.Contains(msg, p) || strings.Contains(msg, "\n") {
				t.Fatalf("error %q: want one line naming %s and saying %q", msg, p, c.want)
			}
			if !errors.Is(err, ErrData) && !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("error %q does not wrap ErrData", msg)
			}
		})
	}
}

// TestCheckFits_Errors rejects sequences beyond the context and ids outside the vocabulary.
func TestCheckFits_Errors(t *testing.T) {
	cfg := &model.Config{MaxPositionEmbeddings: 4, VocabSize: 10}
	for _, ex := range []Example{{IDs: []int{1, 2, 3, 4, 5}}, {IDs: []int{1, 12}}, {IDs: []int{1, 2}, Labels: []int{1, 11}}} {
		if ex.Labels == nil {
			ex.Labels = ex.IDs
		}
		d := &Dataset{Path: "x.json", Examples: []Example{ex}}
		if err := d.CheckFits(cfg); !errors.Is(err, ErrData) {
			t.Errorf("%v: got %v", ex, err)
		}
	}
}
