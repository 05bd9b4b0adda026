package eval

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math"
	"os"
	"testing"

	"github.com/shortllm/shortllm/internal/backend"
	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/tokenizer"
)

// These tests run the real forward pass (internal/model on the go backend) against the
// float64 reference goldens.

func goldenRunner(tb testing.TB, name string) (RunnerLM, *tokenizer.Tokenizer) {
	tb.Helper()
	dir := sharedPath(tb, "models", name)
	m, err := model.Load(dir, model.LoadOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		tb.Fatal(err)
	}
	be, err := backend.New("go", os.Stderr)
	if err != nil {
		tb.Fatal(err)
	}
	return RunnerLM{Runner: model.NewRunner(be, m)}, tok
}

type pplGolden struct {
	SeqLen  int `json:"seq_len"`
	Results []struct {
		Name, Dataset, Path, BOS string
		MaxChunks                int     `json:"max_chunks"`
		ScoredTokens             int     `json:"scored_tokens"`
		PPL                      float64 `json:"ppl"`
	} `json:"results"`
}

// TestPerplexity_ModelGoldens: every dataset × BOS mode of the ppl64 goldens within 1e-4.
func TestPerplexity_ModelGoldens(t *testing.T) {
	for _, name := range goldenModels {
		t.Run(name, func(t *testing.T) {
			var g pplGolden
			if err := json.Unmarshal(readShared(t, "goldens", name+".ppl64.json"), &g); err != nil {
				t.Fatal(err)
			}
			lm, tok := goldenRunner(t, name)
			for _, r := range g.Results {
				res, err := EvalPerplexity(lm, tok, sharedPath(t, r.Path), r.Dataset,
					PPLOptions{SeqLen: g.SeqLen, BOS: r.BOS, MaxChunks: r.MaxChunks, BatchSize: 16})
				if err != nil {
					t.Fatal(err)
				}
				rel := math.Abs(res.PPL-r.PPL) / r.PPL
				t.Logf("%s bos=%s: ppl %.6f golden %.6f (rel %.1e)", r.Name, r.BOS, res.PPL, r.PPL, rel)
				if rel > 1e-4 || res.Tokens != r.ScoredTokens {
					t.Errorf("%s bos=%s: ppl %.6f over %d tokens, golden %.6f over %d", r.Name, r.BOS, res.PPL, res.Tokens, r.PPL, r.ScoredTokens)
				}
			}
		})
	}
}

// TestZeroShot_ModelGoldens: per-choice summed loglik within 1e-3 of the float64 reference
// and identical acc/acc_norm wherever the golden margin exceeds 2e-3, over the first items
// of every task: all 40 golden items for stories260K, 10 for the 3× deeper deep16 (CI time),
// 4 with -short.
func TestZeroShot_ModelGoldens(t *testing.T) {
	for _, name := range goldenModels {
		itemsPerTask := map[string]int{"stories260K": 40, "deep16": 10}[name]
		if testing.Short() {
			itemsPerTask = 4
		}
		t.Run(name, func(t *testing.T) {
			lm, tok := goldenRunner(t, name)
			tasks := goldenTasks(t, itemsPerTask)
			var list []*Task
			for _, n := range TaskNames() {
				list = append(list, tasks[n])
			}
			var samples bytes.Buffer
			if _, err := RunZeroShot(lm, tok, list, ZeroShotOptions{Samples: &samples, BatchSize: 4}); err != nil {
				t.Fatal(err)
			}
			golden := map[[2]any]SampleRecord{}
			for _, it := range goldenItems(t, name) {
				golden[[2]any{it.Task, it.DocIndex}] = it
			}
			var maxErr float64
			var compared, accChecked int
			sc := bufio.NewScanner(&samples)
			sc.Buffer(nil, 1<<24)
			for sc.Scan() {
				var got SampleRecord
				if err := json.Unmarshal(sc.Bytes(), &got); err != nil {
					t.Fatal(err)
				}
				want := golden[[2]any{got.Task, got.DocIndex}]
				for c := range want.Choices {
					e := math.Abs(got.Choices[c].Loglik - want.Choices[c].Loglik)
					maxErr = math.Max(maxErr, e)
					if e > 1e-3 {
						t.Errorf("%s/%d choice %d: loglik %.6f, golden %.6f", got.Task, got.DocIndex, c, got.Choices[c].Loglik, want.Choices[c].Loglik)
					}
					compared++
				}
				if want.Margin > 2e-3 && got.Acc != want.Acc {
					t.Errorf("%s/%d: acc %v, golden %v (margin %.4f)", got.Task, got.DocIndex, got.Acc, want.Acc, want.Margin)
				}
				if want.MarginNorm > 2e-3 && got.AccNorm != want.AccNorm {
					t.Errorf("%s/%d: acc_norm %v, golden %v (margin %.4f)", got.Task, got.DocIndex, got.AccNorm, want.AccNorm, want.MarginNorm)
				}
				accChecked++
			}
			t.Logf("%d items, %d choices: max |Δ loglik| %.2e", accChecked, compared, maxErr)
			if accChecked != 7*itemsPerTask {
				t.Errorf("compared %d items, want %d", accChecked, 7*itemsPerTask)
			}
		})
	}
}
