package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shortllm/shortllm/internal/prune"
	"github.com/shortllm/shortllm/internal/retrain"
	"github.com/shortllm/shortllm/internal/sparsify"
)

type inspectOptions struct {
	model string
}

func newInspectCmd(a *app) *cobra.Command {
	o := &inspectOptions{}
	cmd := &cobra.Command{
		Use:   "inspect --model DIR",
		Short: "Describe a model or LoRA adapter directory: layers, parameters, dtypes, tokenizer, pruning record, adapter base",
		Long: `Describe a model directory from config.json and the safetensors headers (no weights are
loaded): what to check before and after pruning. A PEFT adapter directory (adapter_config.json,
no config.json) is described too: rank, alpha, target modules, adapted blocks, and the base
model it was trained for (and whether that base is here and has the recorded config hash).`,
		Example: `  shortllm inspect --model ../shared/models/deep16
  shortllm inspect --model deep16-35 --json | jq .pruned.removed_blocks
  shortllm inspect --model deep16-35-lora`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runInspect(a, cmd, o) },
	}
	cmd.Flags().StringVar(&o.model, "model", "", "model directory or Hugging Face id (org/name[@revision])")
	return cmd
}

func runInspect(a *app, cmd *cobra.Command, o *inspectOptions) error {
	dir, err := a.resolveModel(cmd.Context(), o.model)
	if err != nil {
		return err
	}
	if retrain.IsAdapterDir(dir) {
		ar, err := retrain.InspectAdapter(dir)
		if err != nil {
			return err
		}
		if a.json {
			return a.printJSON(ar)
		}
		printAdapter(a.out, ar)
		return nil
	}
	r, err := prune.Inspect(dir)
	if err != nil {
		return err
	}
	sp, err := inspectSparsity(dir)
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(inspectDoc{Report: r, Sparsity: sp})
	}
	printInspect(a.out, r)
	printSparsity(a.out, sp)
	return nil
}

// inspectDoc is the --json document: the report plus, for a sparsified model, its record
// and the sparsity measured from the weights.
type inspectDoc struct {
	*prune.Report
	Sparsity *sparsityInfo `json:"sparsity,omitempty"`
}

type sparsityInfo struct {
	Record   *sparsify.Record      `json:"record"`
	Measured *sparsify.Measurement `json:"measured"`
}

// inspectSparsity reads shortllm_sparsity.json and, when present, counts the zeros per block
// in the weights themselves (one pass over the data: only for sparsified models).
func inspectSparsity(dir string) (*sparsityInfo, error) {
	rec, ok, err := sparsify.ReadRecord(dir)
	if err != nil || !ok {
		return nil, err
	}
	me, err := sparsify.Measure(dir)
	if err != nil {
		return nil, err
	}
	return &sparsityInfo{Record: rec, Measured: me}, nil
}

func printSparsity(w io.Writer, sp *sparsityInfo) {
	if sp == nil {
		return
	}
	rec := sp.Record
	how := rec.Method + " " + rec.Pattern + ", " + rec.Allocation + " allocation"
	if rec.Refine != "" {
		how += ", " + rec.Refine
	}
	fmt.Fprintf(w, "sparsified %s (asked %s): nonzero params %d of %d\n", how, prune.FormatPercent(rec.Sparsity),
		sp.Measured.NonzeroParams, sp.Measured.Params)
	parts := make([]string, len(sp.Measured.Blocks))
	for i, b := range sp.Measured.Blocks {
		parts[i] = fmt.Sprintf("%d:%s", b.Block, prune.FormatPercent(b.Sparsity))
	}
	fmt.Fprintf(w, "zeros      per block (linear weights, measured) %s\n", strings.Join(parts, " "))
}

func printInspect(w io.Writer, r *prune.Report) {
	tied := "untied lm_head"
	if r.Tied {
		tied = "tied embeddings"
	}
	fmt.Fprintf(w, "model      %s (%s)\n", r.Dir, r.ModelType)
	fmt.Fprintf(w, "layers     %d   hidden %d   ffn %d   heads %d/%d kv   vocab %d   %s\n",
		r.NumLayers, r.HiddenSize, r.IntermediateSize, r.Heads, r.KVHeads, r.VocabSize, tied)
	if r.LayerWidths != nil {
		var parts []string
		for _, lw := range r.LayerWidths {
			parts = append(parts, fmt.Sprintf("%d/%d/%d", lw.NumAttentionHeads, lw.NumKeyValueHeads, lw.IntermediateSize))
		}
		fmt.Fprintf(w, "widths     per block, heads/kv/ffn: %s\n", strings.Join(parts, " "))
	}
	fmt.Fprintf(w, "params     %d total: %s\n", r.Params.Total, inspectParts(r))
	fmt.Fprintf(w, "dtypes     %s\n", inspectDTypes(r.DTypes))
	fmt.Fprintf(w, "weights    %s\n", inspectFiles(r))
	fmt.Fprintf(w, "tokenizer  %s\n", r.Tokenizer)
	fmt.Fprintf(w, "config     sha256 %s\n", r.ConfigHash)
	if p := r.Pruned; p != nil && p.Width != nil {
		var heads, chans int
		for _, u := range p.Width.Layers {
			heads, chans = heads+len(u.Heads), chans+len(u.Channels)
		}
		fmt.Fprintf(w, "pruned     from %s in width: removed %d heads and %d FFN channels by %s; params %d → %d (%s removed)\n",
			p.SourceModel, heads, chans, inspectHow(p), p.ParamsBefore, p.ParamsAfter, prune.FormatPercent(p.RemovedRatio))
		return
	}
	if p := r.Pruned; p != nil {
		fmt.Fprintf(w, "pruned     from %s (%d blocks): removed %s by %s; params %d → %d (%s removed)\n",
			p.SourceModel, p.NumLayersBefore, blockList(p.RemovedBlocks), inspectHow(p),
			p.ParamsBefore, p.ParamsAfter, prune.FormatPercent(p.RemovedRatio))
	}
}

func printAdapter(w io.Writer, r *retrain.AdapterReport) {
	fmt.Fprintf(w, "adapter    %s (PEFT %s, inference_mode %v)\n", r.Dir, r.PeftType, r.InferenceMode)
	rs := ""
	if r.UseRslora {
		rs = ", rsLoRA"
	}
	fmt.Fprintf(w, "lora       r %d   alpha %g   scale %g%s   dropout %g\n", r.R, r.LoraAlpha, r.Scale, rs, r.LoraDropout)
	fmt.Fprintf(w, "targets    %s: %d layers in blocks %s\n", strings.Join(r.TargetModules, ","), r.Modules, blockList(r.Layers))
	fmt.Fprintf(w, "params     %d (%s), %d bytes\n", r.Params, inspectDTypes(r.DTypes), r.Bytes)
	fmt.Fprintf(w, "base       %s%s\n", r.Base, adapterBaseState(r))
}

func adapterBaseState(r *retrain.AdapterReport) string {
	switch {
	case r.Base == "":
		return "(not recorded)"
	case !r.BaseFound:
		return " (not a local model directory: a hub id, or moved)"
	case r.BaseMatches == nil:
		return " (found)"
	case *r.BaseMatches:
		return fmt.Sprintf(" (found; config sha256 %.12s matches)", r.ConfigHash)
	}
	return fmt.Sprintf(" (found, but its config differs from the one trained on, sha256 %.12s)", r.ConfigHash)
}

// inspectParts lists the parts; blocks of equal size are summarised as N × size.
func inspectParts(r *prune.Report) string {
	p := r.Params
	var blocks string
	switch {
	case len(p.Blocks) > 0 && slices.Min(p.Blocks) == slices.Max(p.Blocks):
		blocks = fmt.Sprintf("blocks %d × %d", len(p.Blocks), p.Blocks[0])
	default:
		blocks = "blocks " + joinInt64s(p.Blocks)
	}
	head := fmt.Sprintf("lm_head %d", p.LMHead)
	if r.Tied {
		head = "lm_head tied to embeddings"
	}
	return fmt.Sprintf("embeddings %d · %s · final norm %d · %s", p.Embeddings, blocks, p.FinalNorm, head)
}

func inspectDTypes(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s ×%d tensors", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func inspectFiles(r *prune.Report) string {
	var total int64
	for _, f := range r.Files {
		total += f.Bytes
	}
	if r.Sharded {
		return fmt.Sprintf("%d shards, %d bytes", len(r.Files), total)
	}
	return fmt.Sprintf("single file, %d bytes", total)
}

func inspectHow(p *prune.Record) string {
	switch {
	case p.Criterion != "" && p.Iterative:
		return p.Criterion + " (iterative)"
	case p.Criterion != "":
		return p.Criterion
	}
	if p.Width != nil {
		return "explicit --heads"
	}
	return "explicit --blocks"
}

func joinInt64s(v []int64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprint(x)
	}
	return strings.Join(parts, " ")
}
