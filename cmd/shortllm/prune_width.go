package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/prune"
	"github.com/shortllm/shortllm/internal/stage"
	"github.com/shortllm/shortllm/internal/width"
)

// pruneWidth holds prune's width-pruning flags.
type pruneWidth struct {
	on           bool
	withinGroups bool
	headUnit     string
	noBiasComp   bool
	heads        string
	// LoRAPrune (--criterion loraprune): training data and schedule.
	loraData          string
	rounds, roundStep int
	loraR             int
	lr                float64
}

func (w *pruneWidth) bind(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&w.on, "width", false, "width pruning: remove attention heads and FFN channels (criteria "+strings.Join(width.Criteria(), ", ")+")")
	f.StringVar(&w.headUnit, "head-unit", width.UnitKVGroup, "--width: head unit, kv_group or query_head")
	f.BoolVar(&w.withinGroups, "within-groups", false, "--width: allow removing query heads of a KV group that keeps others")
	f.BoolVar(&w.noBiasComp, "no-bias-compensation", false, "--width flap: do not add the removed channels' mean output to o_proj/down_proj biases")
	f.StringVar(&w.heads, "heads", "", "--width: remove exactly these query heads, as block.head (e.g. 3.0,3.1)")
	f.StringVar(&w.loraData, "lora-data", "", "--width --criterion loraprune: LoRA training data (as retrain --data)")
	f.IntVar(&w.rounds, "rounds", 4, "--width loraprune: pruning rounds (cubic schedule)")
	f.IntVar(&w.roundStep, "round-steps", 10, "--width loraprune: LoRA updates before each pruning round (and after the last)")
	f.IntVar(&w.loraR, "lora-r", 8, "--width loraprune: LoRA rank")
	f.Float64Var(&w.lr, "lr", 1e-4, "--width loraprune: LoRA learning rate")
}

// checkUnused refuses width flags without --width.
func (w *pruneWidth) checkUnused() error {
	if w.withinGroups || w.noBiasComp || w.heads != "" || w.headUnit != width.UnitKVGroup {
		return fmt.Errorf("--head-unit, --within-groups, --no-bias-compensation and --heads need --width")
	}
	return nil
}

func runPruneWidth(a *app, cmd *cobra.Command, o *pruneOptions) error {
	switch {
	case o.out == "":
		return fmt.Errorf("--out is required")
	case (o.ratio == "") == (o.width.heads == ""):
		return fmt.Errorf("--width needs exactly one of --ratio or --heads")
	case o.blocks != "" || cmd.Flags().Changed("num-blocks") || o.iterative || o.scores != "" || o.noPlus:
		return fmt.Errorf("--width takes --ratio or --heads with --criterion; --blocks, --num-blocks, --iterative, --scores and --no-plus are for blocks")
	case o.ratio != "" && !width.IsCriterion(o.criterion) && o.criterion != width.LoRAPruneName:
		return fmt.Errorf("--width --criterion %q: want one of %s or %s", o.criterion, strings.Join(width.Criteria(), ", "), width.LoRAPruneName)
	case o.criterion == width.LoRAPruneName && o.width.loraData == "":
		return fmt.Errorf("--criterion loraprune trains a LoRA while pruning: give --lora-data FILE")
	case o.ratio != "" && o.calib.Path == "":
		return fmt.Errorf("--criterion %s needs calibration data: give --calib FILE", o.criterion)
	}
	wopts, err := o.writeOptions()
	if err != nil {
		return err
	}
	dir, err := a.resolveModel(cmd.Context(), o.model)
	if err != nil {
		return err
	}
	if err := prune.CheckOut(dir, o.out, o.force); err != nil {
		return err
	}
	e, err := a.engine()
	if err != nil {
		return err
	}
	// Loaded as stored and written from these tensors; scored on a copy in the compute dtype.
	src, err := e.Open(cmd.Context(), dir, stage.OpenOptions{Dir: true, CopyOnly: true})
	if err != nil {
		return err
	}
	res, calib, err := o.widthResult(a, cmd, src)
	if err != nil {
		return err
	}
	m := src.Model
	if res.Trained != nil { // LoRAPrune: the units go from the fine-tuned model
		m = res.Trained
	}
	rec, err := width.Write(m, res, wopts, calib)
	if err != nil {
		return err
	}
	return printPruneWidth(a, o, rec)
}

// widthResult plans the units to remove: scored by a criterion, or as listed by --heads.
func (o *pruneOptions) widthResult(a *app, cmd *cobra.Command, src *stage.Opened) (*width.Result, []byte, error) {
	if o.width.heads != "" {
		res, err := explicitHeads(src.Model.Config, o.width.heads, o.width.withinGroups)
		return res, nil, err
	}
	ratio, err := prune.ParseRatio(o.ratio)
	if err != nil {
		return nil, nil, err
	}
	opts := width.Options{Criterion: o.criterion, Ratio: ratio, BatchSize: o.calib.batchSize,
		HeadUnit: o.width.headUnit, AllowWithinGroups: o.width.withinGroups, NoBiasCompensation: o.width.noBiasComp,
		Progress: func(stage string) func(int, int) { return pruneProgress(a, stage) }}
	if cmd.Flags().Changed("keep-first") {
		opts.KeepFirst = &o.keepFirst
	}
	if cmd.Flags().Changed("keep-last") {
		opts.KeepLast = &o.keepLast
	}
	job := stage.WidthJob{Options: opts, Calib: o.calib.Calib, LoRAData: o.width.loraData, LoRARank: o.width.loraR, LR: o.width.lr}
	if o.criterion == width.LoRAPruneName {
		job.LoRAPrune = &width.LoRAPruneOptions{Rounds: o.width.rounds, StepsPerRound: o.width.roundStep}
	}
	e, err := a.engine()
	if err != nil {
		return nil, nil, err
	}
	cm, err := src.Model.WithComputeDType(e.Compute)
	if err != nil {
		return nil, nil, err
	}
	m := *src
	m.Model = cm
	return e.WidthPlan(&m, job)
}

// explicitHeads reads --heads "3.0,3.1" (block.query-head) into a plan.
func explicitHeads(cfg *model.Config, s string, within bool) (*width.Result, error) {
	byBlock := map[int][]int{}
	for _, f := range strings.Split(s, ",") {
		bs, hs, ok := strings.Cut(strings.TrimSpace(f), ".")
		b, e1 := strconv.Atoi(bs)
		h, e2 := strconv.Atoi(hs)
		if !ok || e1 != nil || e2 != nil || b < 0 || b >= cfg.NumHiddenLayers {
			return nil, fmt.Errorf("--heads %q: %q is not block.head for a %d-block model", s, f, cfg.NumHiddenLayers)
		}
		byBlock[b] = append(byBlock[b], h)
	}
	p := width.EmptyPlan(cfg.NumHiddenLayers)
	var blocks []int
	for b := range p.Layers {
		if hs, ok := byBlock[b]; ok {
			heads, kv := width.HeadsFromUnits(cfg.Width(b), width.UnitQueryHead, hs)
			p.Layers[b].Heads, p.Layers[b].KVHeads = heads, kv
			blocks = append(blocks, b)
		}
	}
	if err := width.Check(cfg, p, within); err != nil {
		return nil, fmt.Errorf("--heads: %w", err)
	}
	unit := width.UnitQueryHead
	rec := &prune.WidthRecord{Criterion: "", Allocation: "explicit", PrunedBlocks: blocks, HeadUnit: unit,
		WidthsBefore: cfg.Widths(), WidthsAfter: width.WidthsAfter(cfg, p)}
	for _, u := range p.Layers {
		rec.Layers = append(rec.Layers, prune.LayerUnits{Heads: nonNil(u.Heads), KVHeads: nonNil(u.KVHeads), Channels: []int{}})
	}
	return &width.Result{Plan: p, Record: rec}, nil
}

func printPruneWidth(a *app, o *pruneOptions, rec *prune.Record) error {
	if a.json {
		return a.printJSON(pruneReport{Out: o.out, Record: rec})
	}
	w := rec.Width
	how := "as listed"
	if w.Criterion != "" {
		how = fmt.Sprintf("by %s, %s allocation", w.Criterion, w.Allocation)
	}
	if w.BiasCompensation {
		how += ", bias compensation"
	}
	var heads, chans int
	for _, u := range w.Layers {
		heads += len(u.Heads)
		chans += len(u.Channels)
	}
	fmt.Fprintf(a.out, "removed %d attention heads and %d FFN channels (%s)\n", heads, chans, how)
	fmt.Fprintf(a.out, "%5s %14s %14s %14s\n", "block", "heads", "kv heads", "ffn channels")
	for b := range w.WidthsAfter {
		bw, aw := w.WidthsBefore[b], w.WidthsAfter[b]
		fmt.Fprintf(a.out, "%5d %6d → %-5d %6d → %-5d %6d → %-5d\n", b, bw.NumAttentionHeads, aw.NumAttentionHeads,
			bw.NumKeyValueHeads, aw.NumKeyValueHeads, bw.IntermediateSize, aw.IntermediateSize)
	}
	fmt.Fprintf(a.out, "parameters %d → %d: %s removed", rec.ParamsBefore, rec.ParamsAfter, prune.FormatPercent(rec.RemovedRatio))
	if rec.RequestedRatio > 0 {
		fmt.Fprintf(a.out, " (--ratio %s)", prune.FormatPercent(rec.RequestedRatio))
	}
	_, err := fmt.Fprintf(a.out, "\nwrote %s\n", o.out)
	return err
}
