package pipeline

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/shortllm/shortllm/internal/atomicfile"
	"github.com/shortllm/shortllm/internal/outdir"
)

// savePlot renders a PNG in memory and writes it atomically (a kill never leaves half an
// image).
func savePlot(p *plot.Plot, path string) error {
	w, err := p.WriterTo(7*vg.Inch, 4*vg.Inch, "png")
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		return err
	}
	if err := outdir.CleanStale(path); err != nil {
		return err
	}
	return atomicfile.Write(path, buf.Bytes())
}

// writePlots draws the report's figures into runDir/plots and returns their paths relative
// to runDir: block scores per criterion, PPL vs pruning ratio per criterion and retraining
// (one figure per dataset, BOS once), throughput vs batch size.
func writePlots(runDir string, rep *Report) ([]string, error) {
	dir := filepath.Join(runDir, "plots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var out []string
	save := func(p *plot.Plot, name string) error {
		rel := filepath.Join("plots", name)
		if err := savePlot(p, filepath.Join(runDir, rel)); err != nil {
			return fmt.Errorf("plot %s: %w", rel, err)
		}
		out = append(out, rel)
		return nil
	}
	for _, s := range rep.Scores {
		p, err := scorePlot(s)
		if err == nil {
			err = save(p, "scores-"+s.Criterion+".png")
		}
		if err != nil {
			return nil, err
		}
	}
	for _, c := range rep.PPLColumns {
		if c.BOS != "once" {
			continue
		}
		if p, ok := pplPlot(rep, c); ok {
			if err := save(p, "ppl-"+fileSafe(c.Name)+".png"); err != nil {
				return nil, err
			}
		}
	}
	if p, ok := speedPlot(rep); ok {
		if err := save(p, "throughput.png"); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func scorePlot(s BlockScores) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Block importance: " + s.Criterion + " (lower = removed first)"
	p.X.Label.Text = "block"
	p.Y.Label.Text = "score"
	vals := make(plotter.Values, len(s.Scores))
	var names []string
	for i, v := range s.Scores {
		if v != nil {
			vals[i] = *v
		}
		names = append(names, fmt.Sprint(i))
	}
	bars, err := plotter.NewBarChart(vals, vg.Points(12))
	if err != nil {
		return nil, err
	}
	bars.Color = plotutil.Color(0)
	p.Add(bars)
	p.NominalX(names...)
	return p, nil
}

// pplPlot has one line per (criterion, retraining), starting at the original model's PPL at
// ratio 0. The y axis turns logarithmic when PPL spans more than a decade (pruning without
// retraining can multiply it); within a decade log ticks would have no labels.
func pplPlot(rep *Report, col PPLColumn) (*plot.Plot, bool) {
	var origPPL float64
	lines := map[string]plotter.XYs{}
	for _, r := range rep.Rows {
		v, ok := r.PPL[col.key()]
		switch {
		case !ok || v <= 0:
		case r.Criterion == "":
			origPPL = v
		default:
			key := r.Criterion + ", " + r.Retrain
			lines[key] = append(lines[key], plotter.XY{X: 100 * r.RatioValue, Y: v})
		}
	}
	if len(lines) == 0 {
		return nil, false
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Perplexity on %s (BOS %s) vs pruning ratio", col.Name, col.BOS)
	p.X.Label.Text = "pruning ratio (% of parameters)"
	p.Y.Label.Text = "PPL"
	if lo, hi := yRange(lines, origPPL); hi > 10*lo {
		p.Y.Label.Text = "PPL (log scale)"
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	var args []any
	for _, k := range sortedKeys(lines) {
		xy := lines[k]
		sort.Slice(xy, func(i, j int) bool { return xy[i].X < xy[j].X })
		if origPPL > 0 {
			xy = append(plotter.XYs{{X: 0, Y: origPPL}}, xy...)
		}
		args = append(args, k, xy)
	}
	if err := plotutil.AddLinePoints(p, args...); err != nil {
		return nil, false
	}
	p.Legend.Top = true
	p.Legend.Left = true
	return p, true
}

func yRange(lines map[string]plotter.XYs, y0 float64) (lo, hi float64) {
	lo, hi = y0, y0
	for _, xy := range lines {
		for _, p := range xy {
			if lo <= 0 || p.Y < lo {
				lo = p.Y
			}
			hi = max(hi, p.Y)
		}
	}
	return lo, hi
}

func speedPlot(rep *Report) (*plot.Plot, bool) {
	if len(rep.Speed) == 0 {
		return nil, false
	}
	p := plot.New()
	p.Title.Text = "Generation throughput vs batch size"
	p.X.Label.Text = "batch size"
	p.Y.Label.Text = "tokens/s"
	var args []any
	for _, s := range rep.Speed {
		var xy plotter.XYs
		for _, pt := range s.Points {
			xy = append(xy, plotter.XY{X: float64(pt.BatchSize), Y: pt.Throughput})
		}
		args = append(args, fmt.Sprintf("%s (%d blocks)", s.Name, s.NumLayers), xy)
	}
	if err := plotutil.AddLinePoints(p, args...); err != nil {
		return nil, false
	}
	p.Legend.Top = true
	p.Legend.Left = true
	return p, true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// fileSafe keeps a dataset name usable as a file name.
func fileSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == ' ' || r == ':' {
			return '_'
		}
		return r
	}, s)
}
