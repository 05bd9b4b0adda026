package main

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shortllm/shortllm/internal/atomicfile"
	"github.com/shortllm/shortllm/internal/stage"
	"github.com/shortllm/shortllm/internal/width"
)

// widthScoreDoc is `score --criterion llm-pruner|wanda-sp|flap`'s JSON: per-unit scores of
// every block (heads: one per KV group; channels: one per FFN channel; higher = more important).
type widthScoreDoc struct {
	Model       string `json:"model"`
	ConfigHash  string `json:"config_hash"`
	ToolVersion string `json:"tool_version"`
	*width.Scores
}

// widthCriteria splits --criterion when it names only width criteria; ok is false when it
// names none, and mixing block and width criteria is an error.
func widthCriteria(s string) (names []string, ok bool, err error) {
	parts := strings.Split(s, ",")
	n := 0
	for _, p := range parts {
		if width.IsCriterion(strings.TrimSpace(p)) {
			n++
			names = append(names, strings.TrimSpace(p))
		}
	}
	switch {
	case n == 0:
		return nil, false, nil
	case n < len(parts):
		return nil, false, fmt.Errorf("--criterion %q mixes block and width criteria: score them in separate runs", s)
	}
	return names, true, nil
}

func runScoreWidth(a *app, cmd *cobra.Command, o *scoreOptions, names []string) error {
	if o.calib.Path == "" {
		return fmt.Errorf("--calib is required for width criteria")
	}
	e, err := a.engine()
	if err != nil {
		return err
	}
	m, err := e.Open(cmd.Context(), o.model, stage.OpenOptions{})
	if err != nil {
		return err
	}
	scores, err := e.WidthScores(m, names, o.calib, o.opts.BatchSize)
	if err != nil {
		return err
	}
	var docs []widthScoreDoc
	for _, s := range scores {
		docs = append(docs, widthScoreDoc{Model: m.Dir, ConfigHash: m.Model.Config.Hash(), ToolVersion: version, Scores: s})
	}
	var doc any = docs
	if len(docs) == 1 {
		doc = docs[0]
	}
	if o.out != "" {
		if err := atomicfile.WriteJSON(o.out, doc); err != nil {
			return err
		}
	}
	if a.json {
		return a.printJSON(doc)
	}
	for _, d := range docs {
		printWidthScores(a.out, d)
	}
	return nil
}

// printWidthScores prints per block the head-unit scores and the channel scores' spread.
func printWidthScores(w io.Writer, d widthScoreDoc) {
	fmt.Fprintf(w, "# %s — %s; head unit %s, higher = more important\n", d.Criterion, d.Model, d.HeadUnit)
	fmt.Fprintf(w, "%5s  %-40s %12s %12s %12s\n", "block", "head units", "channel min", "median", "max")
	for b := range d.Heads {
		if d.Heads[b] == nil {
			fmt.Fprintf(w, "%5d  %-40s\n", b, "(not a candidate)")
			continue
		}
		hs := make([]string, len(d.Heads[b]))
		for i, v := range d.Heads[b] {
			hs[i] = fmt.Sprintf("%.3g", v)
		}
		ch := append([]float64(nil), d.Channels[b]...)
		sort.Float64s(ch)
		fmt.Fprintf(w, "%5d  %-40s %12.4g %12.4g %12.4g\n", b, strings.Join(hs, " "), ch[0], ch[len(ch)/2], ch[len(ch)-1])
	}
}
