package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shortllm/shortllm/internal/hub"
	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/stage"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// app carries the global flags and the I/O streams every verb writes to: results to out,
// progress and notices to errOut.
type app struct {
	in          io.Reader
	out, errOut io.Writer

	backendSpec string
	json        bool
	quiet       bool

	// dtype is the compute dtype flag of the verbs that run a model (see addDTypeFlag).
	dtype string
	eng   *stage.Engine
}

func execute(args []string, in io.Reader, out, errOut io.Writer) int {
	a := &app{in: in, out: out, errOut: errOut}
	root := newRootCmd(a)
	root.SetArgs(args)
	root.SetIn(in)
	root.SetOut(out)
	root.SetErr(errOut)
	if err := root.Execute(); err != nil {
		fmt.Fprintf(errOut, "shortllm: %s\n", oneLine(err.Error()))
		return 1
	}
	return 0
}

// oneLine joins a multi-line message into one line. Cobra's "unknown command" carries its
// suggestions on indented lines after "Did you mean this?"; they become "did you mean X?".
func oneLine(s string) string {
	var parts []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	for i, p := range parts {
		if p == "Did you mean this?" && i+1 < len(parts) {
			return strings.Join(parts[:i], "; ") + "; did you mean " + strings.Join(parts[i+1:], " or ") + "?"
		}
	}
	return strings.Join(parts, "; ")
}

// unknownSubcommand makes a group command (eval) fail on an unknown verb instead of
// printing its help with exit status 0.
func unknownSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmd.Help()
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return errors.New(msg)
}

func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:           "shortllm",
		Short:         "Depth-prune LLaMA-family models, retrain them and measure what is lost",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.backendSpec, "backend", "", "compute backend: go, xla, xla:/abs/plugin.so (default $GOMLX_BACKEND, else go)")
	pf.BoolVar(&a.json, "json", false, "print one JSON document instead of text")
	pf.BoolVar(&a.quiet, "quiet", false, "no progress bars or notices")
	root.AddCommand(
		newVersionCmd(a),
		newBackendsCmd(a),
		newGenerateCmd(a),
		newTokenizeCmd(a),
		newDetokenizeCmd(a),
		newScoreCmd(a),
		newSearchCmd(a),
		newEvalCmd(a),
		newInitCmd(a),
		newPruneCmd(a),
		newSparsifyCmd(a),
		newInspectCmd(a),
		newRetrainCmd(a),
		newMergeCmd(a),
		newPlanCmd(a),
		newDemoDataCmd(a),
		newPipelineCmd(a),
		newReportCmd(a),
		newCheckGoldenCmd(a),
	)
	return root
}

// notices is where one-line notices go (nowhere with --quiet).
func (a *app) notices() io.Writer {
	if a.quiet {
		return io.Discard
	}
	return a.errOut
}

var errModelRequired = errors.New("--model is required")

// engine resolves the settings every stage runs with, once per command: the backend (created
// on first use), --dtype, the execution settings and the hub options.
func (a *app) engine() (*stage.Engine, error) {
	if a.eng != nil {
		return a.eng, nil
	}
	hubOpts := hub.OptionsFromEnv()
	if !a.quiet {
		hubOpts.Progress = a.errOut
	}
	if _, err := model.ParseDType(a.dtype, "--dtype"); err != nil {
		return nil, err
	}
	e, err := stage.NewEngine(stage.Settings{Backend: a.backendSpec, DType: a.dtype, Notices: a.notices(), Version: version,
		Hub: hubOpts, Progress: func(desc string) func(done, total int) { return barProgress(a, desc) }})
	if err != nil {
		return nil, err
	}
	a.eng = e
	return e, nil
}

// resolveModel turns --model (a directory or an HF id org/name[@rev]) into a local directory.
func (a *app) resolveModel(ctx context.Context, ref string) (string, error) {
	if ref == "" {
		return "", errModelRequired
	}
	e, err := a.engine()
	if err != nil {
		return "", err
	}
	return e.Resolve(ctx, ref)
}

// printJSON writes v as one line of JSON to out (easy to pipe into jq or to parse line-wise).
func (a *app) printJSON(v any) error {
	return json.NewEncoder(a.out).Encode(v)
}

func newVersionCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the shortllm version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if a.json {
				return a.printJSON(map[string]string{"version": version})
			}
			_, err := fmt.Fprintf(a.out, "shortllm %s\n", version)
			return err
		},
	}
}
