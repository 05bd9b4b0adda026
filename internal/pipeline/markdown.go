package pipeline

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/shortllm/shortllm/internal/atomicfile"
	"github.com/shortllm/shortllm/internal/prune"
)

// Render builds the report of runDir and writes report.json, report.md and plots/*.png,
// holding the run directory's lock (a running pipeline or another report makes it fail at
// once).
func Render(runDir string) (*Report, error) {
	if st, err := os.Stat(runDir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("report %s: not a pipeline run directory", runDir)
	}
	lock, err := lockRunDir(runDir)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	rep, err := Build(runDir)
	if err != nil {
		return nil, err
	}
	if rep.Plots, err = writePlots(runDir, rep); err != nil {
		return nil, err
	}
	if err := writeJSON(filepath.Join(runDir, "report.json"), rep); err != nil {
		return nil, err
	}
	md := Markdown(rep)
	path := filepath.Join(runDir, "report.md")
	return rep, atomicfile.Write(path, []byte(md))
}

// Markdown renders the report's tables and links its plots.
func Markdown(rep *Report) string {
	var sb strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&sb, format, a...) }
	w("# Shortened LLaMA pipeline report\n\n")
	w("Model `%s` (digest %.12s). %s\n\n", rep.Model, rep.ModelDigest, settingsLine(rep.Settings))
	if len(rep.Missing) > 0 {
		w("**Incomplete run**: %d stages have no result yet (%s). Re-run the pipeline to finish them.\n\n",
			len(rep.Missing), strings.Join(rep.Missing, ", "))
	}
	mainTable(&sb, rep)
	for _, n := range rep.Notes {
		w("%s\n\n", n)
	}
	zeroShotTable(&sb, rep)
	scoreTable(&sb, rep)
	speedTable(&sb, rep)
	if len(rep.Plots) > 0 {
		w("## Plots\n\n")
		for _, p := range rep.Plots {
			w("![%s](%s)\n\n", strings.TrimSuffix(filepath.Base(p), ".png"), p)
		}
	}
	return sb.String()
}

func settingsLine(c Config) string {
	s := fmt.Sprintf("Pruning: one-shot, criteria %s, ratios %s (share of all parameters)", strings.Join(c.Criteria, ", "), strings.Join(c.Ratios, ", "))
	if c.NoPlus {
		s += ", every block a candidate"
	} else {
		s += fmt.Sprintf(", first %d and last %d blocks kept (the paper's + policy)", c.KeepFirst, c.KeepLast)
	}
	s += fmt.Sprintf(". Retraining: %s (%d steps, lr %g, batch %d, seq-len %d). ", strings.Join(c.Retrain, ", "), c.RetrainSteps, c.LR, c.BatchSize, c.SeqLen)
	s += fmt.Sprintf("PPL: chunks of %d tokens", c.SeqLen)
	if c.MaxChunks > 0 {
		s += fmt.Sprintf(", first %d chunks", c.MaxChunks)
	}
	if c.EvalZeroShot != "" {
		s += fmt.Sprintf("; zero-shot: lm-eval v0.4 rules")
		if c.Limit > 0 {
			s += fmt.Sprintf(", first %d items per task", c.Limit)
		}
	}
	return s + "."
}

func mainTable(sb *strings.Builder, rep *Report) {
	fmt.Fprintf(sb, "## Results\n\n")
	head := []string{"model", "criterion", "ratio", "retraining", "#params", "removed", "blocks removed"}
	for _, c := range rep.PPLColumns {
		head = append(head, fmt.Sprintf("PPL %s (BOS %s)", c.Name, c.BOS))
	}
	if len(rep.Tasks) > 0 {
		head = append(head, "zero-shot avg")
	}
	if rep.SpeedBatch > 0 {
		head = append(head, fmt.Sprintf("speed × (batch %d)", rep.SpeedBatch))
	}
	tableHead(sb, head)
	for _, r := range rep.Rows {
		cells := []string{r.Name, dash(r.Criterion), dash(r.Ratio), dash(r.Retrain), params(r.Params),
			prune.FormatPercent(r.RemovedShare), blocks(r.RemovedBlocks, r.Criterion == "")}
		for _, c := range rep.PPLColumns {
			cells = append(cells, num(r.PPL[c.key()], r.Done, "%.2f"))
		}
		if len(rep.Tasks) > 0 {
			cells = append(cells, ptr(r.ZeroShotAvg, "%.4f"))
		}
		if rep.SpeedBatch > 0 {
			cells = append(cells, ptr(r.SpeedRatio, "%.2f×"))
		}
		tableRow(sb, cells)
	}
	sb.WriteString("\n")
}

func zeroShotTable(sb *strings.Builder, rep *Report) {
	if len(rep.Tasks) == 0 {
		return
	}
	fmt.Fprintf(sb, "## Zero-shot accuracy\n\nThe paper's metric per task (acc_norm where lm-eval reports it, else acc) and their average.\n\n")
	tableHead(sb, append(append([]string{"model"}, rep.Tasks...), "average"))
	for _, r := range rep.Rows {
		cells := []string{r.Name}
		for _, t := range rep.Tasks {
			v, ok := r.ZeroShot[t]
			cells = append(cells, num(v, ok, "%.4f"))
		}
		tableRow(sb, append(cells, ptr(r.ZeroShotAvg, "%.4f")))
	}
	sb.WriteString("\n")
}

func scoreTable(sb *strings.Builder, rep *Report) {
	if len(rep.Scores) == 0 {
		return
	}
	fmt.Fprintf(sb, "## Block scores\n\nHigher = more important; rank 1 is removed first; * marks blocks removed at the largest ratio.\n\n")
	head := []string{"block"}
	for _, s := range rep.Scores {
		head = append(head, s.Criterion+" score", "rank")
	}
	tableHead(sb, head)
	n := len(rep.Scores[0].Scores)
	for b := range n {
		cells := []string{fmt.Sprint(b)}
		for _, s := range rep.Scores {
			cells = append(cells, scoreCell(s, b), rankCell(s, b))
		}
		tableRow(sb, cells)
	}
	sb.WriteString("\n")
}

func scoreCell(s BlockScores, b int) string {
	if b >= len(s.Scores) || s.Scores[b] == nil {
		return "–"
	}
	cell := fmt.Sprintf("%.4g", *s.Scores[b])
	if largestRemoved(s)[b] {
		cell += " *"
	}
	return cell
}

func rankCell(s BlockScores, b int) string {
	for i, x := range s.Order {
		if x == b {
			return fmt.Sprint(i + 1)
		}
	}
	return "–"
}

// largestRemoved is the set removed at the largest ratio (it contains the smaller ratios'
// sets for a one-shot ranking).
func largestRemoved(s BlockScores) map[int]bool {
	var best []int
	for _, r := range s.Removed {
		if len(r) > len(best) {
			best = r
		}
	}
	set := map[int]bool{}
	for _, b := range best {
		set[b] = true
	}
	return set
}

func speedTable(sb *strings.Builder, rep *Report) {
	if len(rep.Speed) == 0 {
		return
	}
	st := rep.Settings
	fmt.Fprintf(sb, "## Generation speed\n\nPrompt %d tokens, %d new tokens (EOS ignored), median of %d runs after %d warm-up; retraining does not change the architecture, so each pruned model is measured once.\n\n",
		st.SpeedPromptLen, st.SpeedNewTokens, st.SpeedRuns, st.SpeedWarmup)
	tableHead(sb, []string{"model", "blocks", "#params", "batch", "latency s", "tokens/s", "× original", "peak MB"})
	orig := rep.Speed[0]
	for _, s := range rep.Speed {
		for i, p := range s.Points {
			ratio := "–"
			if orig.Name == "original" && i < len(orig.Points) && orig.Points[i].BatchSize == p.BatchSize {
				ratio = fmt.Sprintf("%.2f×", p.Throughput/orig.Points[i].Throughput)
			}
			tableRow(sb, []string{s.Name, fmt.Sprint(s.NumLayers), params(s.Params), fmt.Sprint(p.BatchSize),
				fmt.Sprintf("%.3f", p.LatencyS), fmt.Sprintf("%.1f", p.Throughput), ratio, fmt.Sprintf("%.0f", p.PeakMemMB)})
		}
	}
	sb.WriteString("\n")
}

func tableHead(sb *strings.Builder, cells []string) {
	tableRow(sb, cells)
	sep := make([]string, len(cells))
	for i := range sep {
		sep[i] = "---"
	}
	tableRow(sb, sep)
}

func tableRow(sb *strings.Builder, cells []string) {
	sb.WriteString("| " + strings.Join(cells, " | ") + " |\n")
}

func dash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

func params(n int64) string {
	switch {
	case n == 0:
		return "–"
	case n >= 1e9:
		return fmt.Sprintf("%.2fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	}
	return fmt.Sprintf("%.1fK", float64(n)/1e3)
}

func blocks(b []int, original bool) string {
	if original || len(b) == 0 {
		return "–"
	}
	return strings.Trim(strings.ReplaceAll(fmt.Sprint(b), " ", ","), "[]")
}

func num(v float64, ok bool, format string) string {
	if !ok || math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf(format, v)
}

func ptr(v *float64, format string) string {
	if v == nil {
		return "–"
	}
	return fmt.Sprintf(format, *v)
}
