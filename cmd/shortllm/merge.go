package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/stage"
)

type mergeOptions struct {
	model, adapter, out string
	saveDType           string
	force               bool
}

func newMergeCmd(a *app) *cobra.Command {
	o := &mergeOptions{}
	cmd := &cobra.Command{
		Use:   "merge --model DIR --adapter DIR --out DIR",
		Short: "Merge a PEFT LoRA adapter into the model (W += scale·B·A) and save the checkpoint",
		Long: `Merge a PEFT LoRA adapter into the base weights: W += scale·B·A, accumulated in float64 and
rounded once to each tensor's stored dtype. BF16 tensors are held as bfloat16 (half the memory;
the result is bit-identical to merging in float32 and saving BF16).`,
		Example: `  shortllm merge --model pruned --adapter pruned-lora --out pruned-merged
  shortllm merge --model pruned --adapter pruned-lora --out pruned-merged-bf16 --save-dtype bf16`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runMerge(a, cmd, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.model, "model", "", "base model directory or Hugging Face id")
	f.StringVar(&o.adapter, "adapter", "", "PEFT LoRA adapter directory")
	f.StringVar(&o.out, "out", "", "output directory for the merged checkpoint")
	f.BoolVar(&o.force, "force", false, "replace an existing --out")
	f.StringVar(&o.saveDType, "save-dtype", "keep", "stored dtype of the merged checkpoint: keep, bf16, f16 or f32")
	return cmd
}

func runMerge(a *app, cmd *cobra.Command, o *mergeOptions) error {
	if o.adapter == "" || o.out == "" {
		return fmt.Errorf("--adapter and --out are required")
	}
	if o.model == "" {
		return errModelRequired
	}
	save, err := model.ParseSaveDType(o.saveDType, "--save-dtype")
	if err != nil {
		return err
	}
	e, err := a.engine()
	if err != nil {
		return err
	}
	dir, err := e.Merge(cmd.Context(), stage.MergeJob{Model: o.model, Adapter: o.adapter, Out: o.out, Force: o.force, SaveDType: save})
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(map[string]string{"out": o.out, "model": dir, "adapter": o.adapter})
	}
	_, err = fmt.Fprintf(a.out, "wrote %s\n", o.out)
	return err
}
