package main

// GPU-readiness verbs and flags: `backends` (what is compiled in, which PJRT plugins and
// devices are there), the --dtype compute flag, and the hidden `check-golden` verb the device
// check uses in place of `go test` (the GPU machine has no Go toolchain).

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/shortllm/shortllm/internal/backend"
	"github.com/shortllm/shortllm/internal/model"
)

func newBackendsCmd(a *app) *cobra.Command {
	var probe bool
	cmd := &cobra.Command{
		Use:   "backends [--probe]",
		Short: "List compiled backends, the PJRT plugins found and (with --probe) their devices",
		Example: `  shortllm backends
  GOMLX_BACKEND=xla:/abs/path/xla_cuda_plugin.so shortllm backends --probe --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Probing creates clients (initialises GPUs); only when asked.
			spec := a.backendSpec
			if spec == "" {
				spec = os.Getenv(backend.EnvVar)
			}
			info := backend.Describe(probe, spec)
			if a.json {
				return a.printJSON(info)
			}
			fmt.Fprintf(a.out, "compiled backends: %s\n", strings.Join(info.Compiled, ", "))
			if info.XLA {
				fmt.Fprintln(a.out, "xla compiled in:   true")
			} else {
				fmt.Fprintln(a.out, "xla compiled in:   false (built with -tags noxla: XLA is not compiled into this binary)")
			}
			if len(info.Plugins) == 0 {
				fmt.Fprintln(a.out, "PJRT plugins:      none found (set PJRT_PLUGIN_LIBRARY_PATH or GOMLX_BACKEND=xla:/abs/plugin.so)")
			} else {
				fmt.Fprintf(a.out, "PJRT plugins:      %s\n", strings.Join(info.Plugins, ", "))
			}
			for _, p := range info.Probes {
				if !p.OK {
					fmt.Fprintf(a.out, "probe %s: unavailable: %s\n", p.Spec, p.Error)
					continue
				}
				fmt.Fprintf(a.out, "probe %s: %s, %d device(s)\n", p.Spec, p.Name, len(p.Devices))
				for i, d := range p.Devices {
					fmt.Fprintf(a.out, "  device %d: %s\n", i, d)
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&probe, "probe", false, "create each backend (go, every plugin found, $GOMLX_BACKEND) and list its devices")
	return cmd
}

// addDTypeFlag registers --dtype (the compute dtype) on a verb that runs a model.
func addDTypeFlag(f *pflag.FlagSet, a *app) {
	f.StringVar(&a.dtype, "dtype", "f32", "compute dtype: f32 or bf16 (weights and activations; norms, softmax and losses stay float32)")
}

type checkGoldenOptions struct {
	model, golden, text string
	tol                 float64
	textTokens          int
}

// goldenFile is the `<model>.forward.json` layout of ../shared/goldens.
type goldenFile struct {
	ProbeIDs        []int       `json:"probe_ids"`
	LogitsPositions []int       `json:"logits_positions"`
	Logits          [][]float64 `json:"logits"`
	MeanNLL         float64     `json:"mean_nll"`
	GreedyIDs       []int       `json:"greedy_ids"`
	GreedySafeSteps int         `json:"greedy_safe_steps"`
}

type checkGoldenReport struct {
	provenance
	KVUpdate       string  `json:"kv_update"`
	Golden         string  `json:"golden"`
	Tol            float64 `json:"tol"`
	LogitsRelErr   float64 `json:"logits_max_rel_err"`
	MeanNLL        float64 `json:"mean_nll"`
	MeanNLLRelErr  float64 `json:"mean_nll_rel_err"`
	GreedySteps    int     `json:"greedy_steps"`
	GreedyMatched  int     `json:"greedy_matched"`
	TextFile       string  `json:"text_file,omitempty"`
	TextMatch      *bool   `json:"text_match,omitempty"`
	TextFirstDiff  int     `json:"text_first_diff,omitempty"`
	WallS          float64 `json:"wall_s"`
	Pass           bool    `json:"pass"`
	FailureSummary string  `json:"failure,omitempty"`
}

func newCheckGoldenCmd(a *app) *cobra.Command {
	o := &checkGoldenOptions{}
	cmd := &cobra.Command{
		Use:    "check-golden --model DIR --golden FILE [--text FILE]",
		Short:  "Check a model against a <model>.forward.json golden (maintenance: conformance on a device without Go)",
		Hidden: true,
		Example: `  shortllm check-golden --model ../shared/models/stories260K --golden ../shared/goldens/stories260K.forward.json \
      --text ../shared/goldens/stories260K.greedy200.txt --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runCheckGolden(a, cmd, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.model, "model", "", "model directory")
	f.StringVar(&o.golden, "golden", "", "<model>.forward.json golden")
	f.StringVar(&o.text, "text", "", "expected greedy text from BOS (e.g. stories260K.greedy200.txt)")
	f.IntVar(&o.textTokens, "text-tokens", 200, "tokens generated for --text")
	f.Float64Var(&o.tol, "tol", 0, "max relative error for logits and mean NLL (default 1e-4 for f32, 1e-1 for bf16)")
	addDTypeFlag(f, a)
	return cmd
}

func runCheckGolden(a *app, cmd *cobra.Command, o *checkGoldenOptions) error {
	if o.golden == "" {
		return fmt.Errorf("--golden is required")
	}
	data, err := os.ReadFile(o.golden)
	if err != nil {
		return fmt.Errorf("--golden: %w", err)
	}
	var g goldenFile
	if err := json.Unmarshal(data, &g); err != nil {
		return fmt.Errorf("--golden %s: %w", o.golden, err)
	}
	if len(g.ProbeIDs) < 2 || len(g.Logits) != len(g.LogitsPositions) || len(g.GreedyIDs) < 1 {
		return fmt.Errorf("--golden %s: want probe_ids, logits_positions, logits and greedy_ids", o.golden)
	}
	start := time.Now()
	l, err := a.loadRunner(cmd.Context(), o.model, "", o.text != "")
	if err != nil {
		return err
	}
	rep := checkGoldenReport{provenance: a.provenance(l), Golden: o.golden, Tol: o.tol}
	if rep.Tol == 0 {
		rep.Tol = 1e-4
		if rep.DType == "bf16" {
			rep.Tol = 1e-1
		}
	}
	rep.KVUpdate = l.runner.Engine.KVUpdate
	var fails []string
	V := l.Model.Config.VocabSize
	logits, err := l.runner.Logits([][]int{g.ProbeIDs}, nil)
	if err != nil {
		return err
	}
	for k, pos := range g.LogitsPositions {
		if pos < 0 || (pos+1)*V > len(logits) || len(g.Logits[k]) != V {
			return fmt.Errorf("--golden %s: logits row %d (position %d) does not fit the model (vocab %d)", o.golden, k, pos, V)
		}
		rep.LogitsRelErr = math.Max(rep.LogitsRelErr, relErr64(logits[pos*V:(pos+1)*V], g.Logits[k]))
	}
	if rep.LogitsRelErr > rep.Tol {
		fails = append(fails, fmt.Sprintf("logits relative error %.3g > %.3g", rep.LogitsRelErr, rep.Tol))
	}
	sc, err := l.runner.Score([][]int{g.ProbeIDs}, nil)
	if err != nil {
		return err
	}
	for _, lp := range sc[0].LogProbs {
		rep.MeanNLL -= lp
	}
	rep.MeanNLL /= float64(len(sc[0].LogProbs))
	rep.MeanNLLRelErr = math.Abs(rep.MeanNLL-g.MeanNLL) / math.Abs(g.MeanNLL)
	if rep.MeanNLLRelErr > rep.Tol {
		fails = append(fails, fmt.Sprintf("mean NLL relative error %.3g > %.3g", rep.MeanNLLRelErr, rep.Tol))
	}
	// Greedy ids are compared only over the steps the golden marks safe (no near-ties); in
	// bf16 they are reported, not required.
	rep.GreedySteps = min(g.GreedySafeSteps, len(g.GreedyIDs)-1)
	if rep.GreedySteps > 0 {
		out, err := l.runner.Generate([][]int{g.GreedyIDs[:1]}, model.GenerateOptions{MaxNewTokens: rep.GreedySteps, IgnoreEOS: true})
		if err != nil {
			return err
		}
		for i, id := range out[0] {
			if id != g.GreedyIDs[1+i] {
				break
			}
			rep.GreedyMatched++
		}
		if rep.GreedyMatched < rep.GreedySteps && rep.DType != "bf16" {
			fails = append(fails, fmt.Sprintf("greedy ids differ at step %d of %d", rep.GreedyMatched, rep.GreedySteps))
		}
	}
	if o.text != "" {
		if err := checkGreedyText(l, o, &rep); err != nil {
			return err
		}
		if !*rep.TextMatch && rep.DType != "bf16" {
			fails = append(fails, fmt.Sprintf("greedy text differs from %s at byte %d", o.text, rep.TextFirstDiff))
		}
	}
	rep.WallS = time.Since(start).Seconds()
	rep.Pass = len(fails) == 0
	rep.FailureSummary = strings.Join(fails, "; ")
	if a.json {
		if err := a.printJSON(rep); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(a.out, "%s on %s (%s, kv %s): logits max rel err %.2e, mean NLL %.6f (rel err %.2e), greedy %d/%d",
			o.golden, rep.Backend, rep.DType, rep.KVUpdate, rep.LogitsRelErr, rep.MeanNLL, rep.MeanNLLRelErr, rep.GreedyMatched, rep.GreedySteps)
		if rep.TextMatch != nil {
			fmt.Fprintf(a.out, ", text match %v", *rep.TextMatch)
		}
		fmt.Fprintln(a.out)
	}
	if !rep.Pass {
		return fmt.Errorf("check-golden %s: %s", o.golden, rep.FailureSummary)
	}
	return nil
}

// checkGreedyText generates from BOS as `shortllm generate` does and compares the decoded text.
func checkGreedyText(l *loaded, o *checkGoldenOptions, rep *checkGoldenReport) error {
	want, err := os.ReadFile(o.text)
	if err != nil {
		return fmt.Errorf("--text: %w", err)
	}
	bos := firstOr(l.Model.Config.BOSTokenID, l.Tok.BOS())
	if bos < 0 {
		return fmt.Errorf("--text: the model has no BOS token to start from")
	}
	out, err := l.runner.Generate([][]int{{bos}}, model.GenerateOptions{MaxNewTokens: o.textTokens, StopIDs: l.Model.Config.EOSTokenID})
	if err != nil {
		return err
	}
	got := l.Tok.Decode(out[0])
	match := got == string(want)
	rep.TextFile, rep.TextMatch = o.text, &match
	if !match {
		n := 0
		for n < len(got) && n < len(want) && got[n] == want[n] {
			n++
		}
		rep.TextFirstDiff = n
	}
	return nil
}

// relErr64 is max|got−want| / max|want|, the goldens' tolerance measure.
func relErr64(got []float32, want []float64) float64 {
	var maxErr, maxAbs float64
	for i, w := range want {
		maxErr = math.Max(maxErr, math.Abs(float64(got[i])-w))
		maxAbs = math.Max(maxAbs, math.Abs(w))
	}
	return maxErr / maxAbs
}
