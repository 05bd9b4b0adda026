package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/shortllm/shortllm/internal/pipeline"
)

type reportOptions struct {
	csv bool
}

func newReportCmd(a *app) *cobra.Command {
	o := &reportOptions{}
	cmd := &cobra.Command{
		Use:   "report RUN_DIR [RUN_DIR_B]",
		Short: "Re-render a pipeline run's report (report.md, report.csv, report.json, plots), or compare two runs",
		Long: `Rebuild RUN_DIR/report.md, report.csv, report.json and plots/*.png from run.json and the stage
outputs a pipeline run stored. Nothing is computed again; stages that have not finished show as
missing. --csv prints the CSV (the paper's columns, one line per model) to stdout.

With two run directories, print a comparison to stdout instead: the settings that differ and,
per model, each perplexity, the zero-shot average and the speed ratio as A → B with the change.`,
		Example: `  shortllm report runs/demo
  shortllm report runs/demo --csv > demo.csv
  shortllm report runs/exp1 runs/exp2
  shortllm report runs/deep16 --json | jq '.rows[] | {name, ppl}'`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 2 {
				return runCompare(a, args[0], args[1])
			}
			return runReport(a, o, args[0])
		},
	}
	cmd.Flags().BoolVar(&o.csv, "csv", false, "print the report as CSV (the paper's columns) to stdout")
	return cmd
}

func runReport(a *app, o *reportOptions, dir string) error {
	rep, err := pipeline.Render(dir)
	if err != nil {
		return err
	}
	switch {
	case a.json:
		return a.printJSON(rep)
	case o.csv:
		data, err := pipeline.CSV(rep)
		if err != nil {
			return err
		}
		_, err = a.out.Write(data)
		return err
	}
	_, err = fmt.Fprintf(a.out, "wrote %s/report.md (%d models, %d plots, %d stages missing)\n",
		dir, len(rep.Rows), len(rep.Plots), len(rep.Missing))
	return err
}

func runCompare(a *app, dirA, dirB string) error {
	repA, err := pipeline.Build(dirA)
	if err != nil {
		return err
	}
	repB, err := pipeline.Build(dirB)
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(map[string]*pipeline.Report{"a": repA, "b": repB})
	}
	_, err = fmt.Fprint(a.out, pipeline.Compare(repA, repB, dirA, dirB))
	return err
}
