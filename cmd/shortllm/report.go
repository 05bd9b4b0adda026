package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/shortllm/shortllm/internal/pipeline"
)

func newReportCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "report RUN_DIR",
		Short: "Re-render a pipeline run's report.md, report.json and plots from its stored results",
		Long: `Rebuild RUN_DIR/report.md, report.json and plots/*.png from run.json and the stage outputs a
pipeline run stored. Nothing is computed again; stages that have not finished show as missing.`,
		Example: `  shortllm report runs/demo
  shortllm report runs/deep16 --json | jq '.rows[] | {name, ppl}'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rep, err := pipeline.Render(args[0])
			if err != nil {
				return err
			}
			if a.json {
				return a.printJSON(rep)
			}
			_, err = fmt.Fprintf(a.out, "wrote %s/report.md (%d models, %d plots, %d stages missing)\n",
				args[0], len(rep.Rows), len(rep.Plots), len(rep.Missing))
			return err
		},
	}
}
