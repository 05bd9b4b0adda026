package pipeline

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/shortllm/shortllm/internal/atomicfile"
	"github.com/shortllm/shortllm/internal/prune"
)

// Render builds the report of runDir and writes report.json, report.md, report.csv and
// plots/*.png, holding the run directory's lock (a running pipeline or another report makes
// it fail at once).
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
	csvData, err := CSV(rep)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(filepath.Join(runDir, "report.csv"), csvData); err != nil {
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
	trainingTable(&sb, rep)
	if len(rep.Plots) > 0 {
		w("## Plots\n\n")
		for _, p := range rep.Plots {
			w("![%s](%s)\n\n", strings.TrimSuffix(filepath.Base(p), ".png"), p)
		}
	}
	return sb.String()
}

func settingsLine(c Config) string {
	s := fmt.Sprintf("Pruning: one-shot, criteria %s, requested ratios %s (share of all parameters; as in the paper, the most blocks whose "+
		"share is at most the ratio + 0.5 points, so the share removed is shown per row)", strings.Join(c.Criteria, ", "), strings.Join(c.Ratios, ", "))
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
		s += "; zero-shot: lm-eval v0.4 rules, 0-shot"
		if c.Limit > 0 {
			s += fmt.Sprintf(", first %d items per task", c.Limit)
		}
	}
	return s + "."
}

func mainTable(sb *strings.Builder, rep *Report) {
	fmt.Fprintf(sb, "## Results\n\n")
	head := []string{"model", "family", "method", "ratio asked", "removed", "retraining", "#params", "blocks removed"}
	for _, c := range rep.PPLColumns {
		head = append(head, fmt.Sprintf("PPL %s (BOS %s)", c.Name, c.BOS))
	}
	if len(rep.Tasks) > 0 {
		head = append(head, "zero-shot avg")
	}
	if rep.Speed != nil {
		head = append(head, fmt.Sprintf("speed × (batch %d, min–max)", rep.Speed.Batch))
	}
	tableHead(sb, head)
	for _, r := range rep.Rows {
		cells := []string{r.Name, dash(r.Family), dash(r.Method), dash(r.Ratio), prune.FormatPercent(r.RemovedShare),
			dash(r.Retrain), params(r.Params), blocks(r.RemovedBlocks, r.original)}
		for _, c := range rep.PPLColumns {
			v, ok := r.PPL[c.key()]
			cells = append(cells, num(v, ok && r.Done, "%.2f"))
		}
		if len(rep.Tasks) > 0 {
			cells = append(cells, ptr(r.ZeroShotAvg, "%.4f"))
		}
		if rep.Speed != nil {
			cells = append(cells, spread(r.Speed, "%.2f×"))
		}
		tableRow(sb, cells)
	}
	sb.WriteString("\n")
}

func zeroShotTable(sb *strings.Builder, rep *Report) {
	if len(rep.Tasks) == 0 {
		return
	}
	var acc, norm []string
	for _, t := range rep.Tasks {
		if t.Metric == "acc_norm" {
			norm = append(norm, t.Label)
		} else {
			acc = append(acc, t.Label)
		}
	}
	fmt.Fprintf(sb, "## Zero-shot accuracy\n\nlm-evaluation-harness v0.4 rules, 0-shot. Each task shows the metric the paper "+
		"reports for it: acc (share of items whose highest-loglikelihood choice is right) for %s; acc_norm (loglikelihood "+
		"divided by the choice's length in characters) for %s. Cells are value ± standard error over the n items; the "+
		"average is the mean of the seven values.\n\n", orNone(acc), orNone(norm))
	head := []string{"model"}
	for _, t := range rep.Tasks {
		head = append(head, fmt.Sprintf("%s (%s, n=%d)", t.Label, t.Metric, t.N))
	}
	tableHead(sb, append(head, "average"))
	for _, r := range rep.Rows {
		cells := []string{r.Name}
		for _, t := range rep.Tasks {
			c, ok := r.ZeroShot[t.Name]
			cells = append(cells, cellStderr(c, ok))
		}
		tableRow(sb, append(cells, ptr(r.ZeroShotAvg, "%.4f")))
	}
	sb.WriteString("\n")
}

func cellStderr(c ZeroShotCell, ok bool) string {
	if !ok {
		return "–"
	}
	return fmt.Sprintf("%.4f ± %.4f", c.Value, c.Stderr)
}

func orNone(l []string) string {
	if len(l) == 0 {
		return "none of these tasks"
	}
	return strings.Join(l, ", ")
}

func scoreTable(sb *strings.Builder, rep *Report) {
	if len(rep.Scores) == 0 {
		return
	}
	fmt.Fprintf(sb, "## Block scores\n\nHigher = more important; rank 1 is removed first; * marks blocks removed at the "+
		"largest ratio, (kept) blocks the + policy never removes.")
	for _, s := range rep.Scores {
		if s.Baseline != nil {
			fmt.Fprintf(sb, " %s: %s; the unpruned model scores %.4g.", s.Criterion, criterionUnit(s.Criterion), *s.Baseline)
		} else {
			fmt.Fprintf(sb, " %s: %s.", s.Criterion, criterionUnit(s.Criterion))
		}
	}
	sb.WriteString("\n\n")
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

// criterionUnit says what a criterion's score measures.
func criterionUnit(c string) string {
	switch c {
	case "ppl":
		return "perplexity of the calibration text with the block removed"
	case "taylor":
		return "Σ|w·∂L/∂w| over the block's weights"
	case "magnitude":
		return "Σ|w| over the block's weights"
	case "bi":
		return "Block Influence, 1 − cos(block input, output)"
	case "angular":
		return "angular distance between hidden states n blocks apart"
	}
	return "score"
}

func scoreCell(s BlockScores, b int) string {
	if b >= len(s.Scores) || s.Scores[b] == nil {
		return "–"
	}
	cell := fmt.Sprintf("%.4g", *s.Scores[b])
	if largestRemoved(s)[b] {
		cell += " *"
	}
	if slices.Contains(s.Protected, b) {
		cell += " (kept)"
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
	sp := rep.Speed
	if sp == nil {
		return
	}
	st := rep.Settings
	fmt.Fprintf(sb, "## Generation speed\n\nMeasured on the %s backend (%s), once per architecture: retraining keeps the "+
		"shapes, and models with the same config share one measurement. Prompt %d tokens, %d new tokens (EOS ignored); "+
		"%d timed runs after %d warm-up runs, the architectures taking turns run by run so that a change in the machine's "+
		"load hits all alike. tokens/s is the median with the slowest–fastest run; × original is the median of the "+
		"run-by-run ratios with their min–max. Memory is the model's: weights plus the KV cache of the batch "+
		"(estimated from the shapes).\n\n", sp.Backend, sp.Device, st.SpeedPromptLen, st.SpeedNewTokens, st.SpeedRuns, st.SpeedWarmup)
	tableHead(sb, []string{"architecture", "blocks", "#params", "batch", "latency s", "tokens/s (min–max)", "× original (min–max)", "weights MB", "KV cache MB"})
	orig := sp.Archs[0]
	for _, a := range sp.Archs {
		for i, p := range a.Points {
			ratio := "–"
			if i < len(orig.Points) && orig.Points[i].BatchSize == p.BatchSize {
				s := PairedRatio(p, orig.Points[i])
				ratio = spread(&s, "%.2f×")
			}
			tableRow(sb, []string{a.Name, fmt.Sprint(a.NumLayers), params(a.Params), fmt.Sprint(p.BatchSize),
				fmt.Sprintf("%.4f", p.LatencyS), fmt.Sprintf("%.1f (%.1f–%.1f)", p.Throughput, p.ThroughputMin, p.ThroughputMax),
				ratio, fmt.Sprintf("%.2f", p.WeightsMB), fmt.Sprintf("%.2f", p.KVCacheMB)})
		}
	}
	sb.WriteString("\n")
}

func trainingTable(sb *strings.Builder, rep *Report) {
	if len(rep.Training) == 0 {
		return
	}
	fmt.Fprintf(sb, "## Retraining\n\nTraining loss (mean next-token cross-entropy of the batch, before its update).\n\n")
	tableHead(sb, []string{"run", "mode", "updates", "first loss", "last loss", "tokens"})
	for _, c := range rep.Training {
		var tokens int
		for _, t := range c.Tokens {
			tokens += t
		}
		n := len(c.Loss)
		tableRow(sb, []string{c.Name, c.Mode, fmt.Sprint(c.Steps[n-1]), fmt.Sprintf("%.4f", c.Loss[0]), fmt.Sprintf("%.4f", c.Loss[n-1]), fmt.Sprint(tokens)})
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

func spread(s *Spread, format string) string {
	if s == nil {
		return "–"
	}
	return fmt.Sprintf(format+" ("+format+"–"+format+")", s.Median, s.Min, s.Max)
}

func ptr(v *float64, format string) string {
	if v == nil {
		return "–"
	}
	return fmt.Sprintf(format, *v)
}
