package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/outdir"
	"github.com/shortllm/shortllm/internal/retrain"
)

type mergeOptions struct {
	model, adapter, out string
	force               bool
}

func newMergeCmd(a *app) *cobra.Command {
	o := &mergeOptions{}
	cmd := &cobra.Command{
		Use:     "merge --model DIR --adapter DIR --out DIR",
		Short:   "Merge a PEFT LoRA adapter into the model (W += scale·B·A) and save the checkpoint",
		Example: `  shortllm merge --model pruned --adapter pruned-lora --out pruned-merged`,
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return runMerge(a, cmd, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.model, "model", "", "base model directory or Hugging Face id")
	f.StringVar(&o.adapter, "adapter", "", "PEFT LoRA adapter directory")
	f.StringVar(&o.out, "out", "", "output directory for the merged checkpoint")
	f.BoolVar(&o.force, "force", false, "replace an existing --out")
	return cmd
}

func runMerge(a *app, cmd *cobra.Command, o *mergeOptions) error {
	if o.adapter == "" || o.out == "" {
		return fmt.Errorf("--adapter and --out are required")
	}
	dir, err := a.resolveModel(cmd.Context(), o.model)
	if err != nil {
		return err
	}
	stage, err := outdir.Begin(o.out, outdir.Options{Inputs: []string{dir, o.adapter}, Force: o.force})
	if err != nil {
		return err
	}
	defer stage.Close()
	m, err := model.Load(dir, model.LoadOptions{})
	if err != nil {
		return err
	}
	if err := retrain.MergeAdapter(m, o.adapter); err != nil {
		return err
	}
	if err := m.WriteDir(stage.Path(), model.SaveOptions{}); err != nil {
		return fmt.Errorf("save %s: %w", o.out, err)
	}
	if err := stage.Commit(); err != nil {
		return err
	}
	if a.json {
		return a.printJSON(map[string]string{"out": o.out, "model": dir, "adapter": o.adapter})
	}
	_, err = fmt.Fprintf(a.out, "wrote %s\n", o.out)
	return err
}
