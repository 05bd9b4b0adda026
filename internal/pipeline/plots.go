package pipeline

// The report's figures (PNG, gonum/plot). Every figure keeps its legend outside the data area,
// pads its axis ranges so no bar or marker touches the frame, and labels its axes with what
// is measured.

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/shortllm/shortllm/internal/atomicfile"
	"github.com/shortllm/shortllm/internal/outdir"
)

// figure is a plot and its legend, drawn to the plot's right.
type figure struct {
	p      *plot.Plot
	legend plot.Legend
	w, h   vg.Length
}

func newFigure(title string) *figure {
	p := plot.New()
	p.Title.Text = title
	l := plot.NewLegend()
	l.Top, l.Left = true, true
	l.Padding = vg.Points(4)
	return &figure{p: p, legend: l, w: 8 * vg.Inch, h: 4.5 * vg.Inch}
}

// png renders the figure: the plot on the left, the legend (if any) in a column on the right.
func (f *figure) png() ([]byte, error) {
	img := vgimg.New(f.w, f.h)
	dc := draw.New(img)
	plotArea := draw.Crop(dc, 4, -8, 4, -6) // a margin, so nothing touches the image's edge
	if f.legendEntries() {
		lw := f.legend.Rectangle(dc).Size().X + 12
		plotArea = draw.Crop(plotArea, 0, -lw, 0, 0)
		f.legend.Draw(draw.Crop(dc, f.w-lw+6, 0, 0, -24))
	}
	f.p.Draw(plotArea)
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (f *figure) legendEntries() bool { return f.legend.Rectangle(draw.Canvas{}).Size().Y > 0 }

// writePlots draws the report's figures into runDir/plots and returns their paths relative
// to runDir.
func writePlots(runDir string, rep *Report) ([]string, error) {
	dir := filepath.Join(runDir, "plots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var out []string
	save := func(f *figure, name string) error {
		rel := filepath.Join("plots", name)
		data, err := f.png()
		if err == nil {
			err = outdir.CleanStale(filepath.Join(runDir, rel))
		}
		if err == nil {
			err = atomicfile.Write(filepath.Join(runDir, rel), data)
		}
		if err != nil {
			return fmt.Errorf("plot %s: %w", rel, err)
		}
		out = append(out, rel)
		return nil
	}
	var figs []struct {
		f    *figure
		name string
	}
	add := func(f *figure, name string) {
		if f != nil {
			figs = append(figs, struct {
				f    *figure
				name string
			}{f, name})
		}
	}
	for _, s := range rep.Scores {
		add(ScoreFigure(s), "scores-"+fileSafe(s.Criterion)+".png")
	}
	for _, c := range rep.PPLColumns {
		add(pplFigure(rep, c), "ppl-"+fileSafe(c.Name)+"-bos-"+c.BOS+".png")
	}
	if len(rep.PPLColumns) > 0 {
		add(paramsFigure(rep, rep.PPLColumns[0]), "ppl-vs-params-"+fileSafe(rep.PPLColumns[0].Name)+".png")
	}
	add(zeroShotFigure(rep), "zeroshot.png")
	add(speedFigure(rep), "throughput.png")
	add(lossFigure(rep), "training-loss.png")
	for _, f := range figs {
		if err := save(f.f, f.name); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Colours of the block-score bars.
var (
	colRemoved   = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
	colProtected = color.RGBA{R: 0x9e, G: 0x9e, B: 0x9e, A: 0xff}
	colKept      = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
)

// WriteScorePlot writes one criterion's block-importance figure as a PNG file.
func WriteScorePlot(path string, s BlockScores) error {
	f := ScoreFigure(s)
	if f == nil {
		return fmt.Errorf("plot %s: no block has a score", path)
	}
	data, err := f.png()
	if err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return atomicfile.Write(path, data)
}

// ScoreFigure draws one bar per block, coloured by what pruning did with it (removed at the
// largest ratio, protected by the + policy, kept), with the unpruned baseline as a line where
// the criterion has one. A bar far above the others (block 0 of most models) is cut at the
// top of the axis and labelled with its value, so the other blocks keep their resolution.
func ScoreFigure(s BlockScores) *figure {
	removed := largestRemoved(s)
	bars := blockBars{}
	for i, v := range s.Scores {
		c := colKept
		switch {
		case removed[i]:
			c = colRemoved
		case slices.Contains(s.Protected, i):
			c = colProtected
		}
		bars.colors = append(bars.colors, c)
		if v == nil {
			bars.vals = append(bars.vals, math.NaN())
		} else {
			bars.vals = append(bars.vals, *v)
		}
	}
	lo, clip, ok := scoreRange(bars.vals, s.Baseline)
	if !ok {
		return nil
	}
	bars.base, bars.top = lo, clip
	f := newFigure(fmt.Sprintf("Block importance by %s (lower = removed first)", s.Criterion))
	f.p.X.Label.Text = "block"
	f.p.Y.Label.Text = scoreAxisLabel(s.Criterion)
	f.p.Add(bars)
	f.p.X.Min, f.p.X.Max = -0.7, float64(len(bars.vals))-0.3
	f.p.Y.Min, f.p.Y.Max = lo, clip+0.08*(clip-lo)
	f.p.X.Tick.Marker = blockTicks(len(bars.vals))
	if lbl := clippedLabels(bars.vals, clip); lbl != nil {
		f.p.Add(lbl)
	}
	if s.Baseline != nil {
		line := hLine(*s.Baseline, f.p.X.Min, f.p.X.Max, color.Black)
		f.p.Add(line)
		f.legend.Add(fmt.Sprintf("unpruned model (%.4g)", *s.Baseline), line)
	}
	if len(removed) > 0 {
		f.legend.Add("removed at the largest ratio", swatchThumb(colRemoved))
	}
	if len(s.Protected) > 0 {
		f.legend.Add("kept by the + policy", swatchThumb(colProtected))
	}
	f.legend.Add("kept", swatchThumb(colKept))
	return f
}

// scoreRange picks the y axis: from 0 (or, for scores with a baseline, from just below the
// lowest value) to the largest value; if the largest is more than twice as far from the
// bottom as the second largest, the axis stops at 1.3× the second largest and taller bars are
// cut there.
func scoreRange(vals []float64, baseline *float64) (lo, clip float64, ok bool) {
	var finite []float64
	for _, v := range vals {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			finite = append(finite, v)
		}
	}
	if len(finite) == 0 {
		return 0, 0, false
	}
	sort.Float64s(finite)
	mn, mx := finite[0], finite[len(finite)-1]
	if baseline != nil {
		mn = min(mn, *baseline)
		mx = max(mx, *baseline)
	}
	lo = min(0, mn)
	if baseline != nil && mn > 0 { // ppl: the interesting part is above the baseline
		lo = mn - 0.15*(mx-mn)
		if len(finite) > 1 {
			lo = mn - 0.15*(finite[len(finite)-2]-mn)
		}
		lo = max(0, lo)
	}
	clip = mx
	if n := len(finite); n > 2 {
		second := finite[n-2]
		if baseline != nil {
			second = max(second, *baseline)
		}
		if mx-lo > 2*(second-lo) && second > lo {
			clip = lo + 1.3*(second-lo)
		}
	}
	if clip <= lo {
		clip = lo + 1
	}
	return lo, clip, true
}

func scoreAxisLabel(criterion string) string {
	switch criterion {
	case "ppl":
		return "perplexity with the block removed"
	case "taylor":
		return "Σ|w·∂L/∂w| (Taylor)"
	case "magnitude":
		return "Σ|w|"
	case "bi":
		return "1 − cos(input, output)"
	case "angular":
		return "angular distance"
	}
	return "score"
}

// blockBars draws one bar per block from base to its value (cut at top).
type blockBars struct {
	vals      []float64
	colors    []color.Color
	base, top float64
}

func (b blockBars) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	for i, v := range b.vals {
		if math.IsNaN(v) {
			continue
		}
		x0, x1 := trX(float64(i)-0.35), trX(float64(i)+0.35)
		y0, y1 := trY(b.base), trY(min(v, b.top))
		c.FillPolygon(b.colors[i], []vg.Point{{X: x0, Y: y0}, {X: x1, Y: y0}, {X: x1, Y: y1}, {X: x0, Y: y1}})
		if v > b.top { // a cut bar ends in a zigzag
			c.StrokeLines(draw.LineStyle{Color: color.White, Width: vg.Points(2)},
				[]vg.Point{{X: x0, Y: y1 - 6}, {X: (x0 + x1) / 2, Y: y1 - 2}, {X: x1, Y: y1 - 6}})
		}
	}
}

func (b blockBars) DataRange() (xmin, xmax, ymin, ymax float64) {
	return -0.5, float64(len(b.vals)) - 0.5, b.base, b.top
}

// clippedLabels writes the value above every bar cut at the top of the axis.
func clippedLabels(vals []float64, clip float64) *plotter.Labels {
	var xys plotter.XYs
	var texts []string
	for i, v := range vals {
		if v > clip {
			xys = append(xys, plotter.XY{X: float64(i), Y: clip})
			texts = append(texts, fmt.Sprintf("%.4g ↑", v))
		}
	}
	if len(xys) == 0 {
		return nil
	}
	l, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: texts})
	if err != nil {
		return nil
	}
	for i := range l.TextStyle {
		l.TextStyle[i].XAlign = draw.XCenter
		l.Offset = vg.Point{Y: 3}
	}
	return l
}

// blockTicks labels every block.
func blockTicks(n int) plot.ConstantTicks {
	ticks := make(plot.ConstantTicks, n)
	for i := range ticks {
		ticks[i] = plot.Tick{Value: float64(i), Label: fmt.Sprint(i)}
	}
	return ticks
}

func hLine(y, x0, x1 float64, c color.Color) *plotter.Line {
	l, _ := plotter.NewLine(plotter.XYs{{X: x0, Y: y}, {X: x1, Y: y}})
	l.Color = c
	l.Width = vg.Points(1.2)
	l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
	return l
}

// swatchThumb is a legend thumbnail filled with one colour.
func swatchThumb(c color.Color) plot.Thumbnailer { return swatchT{c} }

type swatchT struct{ c color.Color }

func (s swatchT) Thumbnail(c *draw.Canvas) {
	r := c.Rectangle
	c.FillPolygon(s.c, []vg.Point{r.Min, {X: r.Max.X, Y: r.Min.Y}, r.Max, {X: r.Min.X, Y: r.Max.Y}})
}

// series styles: colour, glyph and dash pattern all differ between series, so lines that
// coincide (two criteria removing the same blocks) still show as two.
func styleSeries(i int, l *plotter.Line, s *plotter.Scatter) {
	c := plotutil.Color(i)
	if l != nil {
		l.Color = c
		l.Width = vg.Points(1.5)
		l.Dashes = plotutil.Dashes(i)
	}
	if s != nil {
		s.Color = c
		s.Shape = plotutil.Shape(i)
		s.Radius = vg.Points(3.5 + float64(i%3))
	}
}

// pplFigure: one line per (method, retraining) through the original at 0 and each pruned
// model at the share of parameters it actually removed.
func pplFigure(rep *Report, col PPLColumn) *figure {
	var origPPL float64
	lines := map[string]plotter.XYs{}
	for _, r := range rep.Rows {
		v, ok := r.PPL[col.key()]
		switch {
		case !ok || v <= 0 || !r.Done:
		case r.original:
			origPPL = v
		default:
			key := r.Method + ", " + r.Retrain
			lines[key] = append(lines[key], plotter.XY{X: 100 * r.RemovedShare, Y: v})
		}
	}
	if len(lines) == 0 {
		return nil
	}
	f := newFigure(fmt.Sprintf("Perplexity on %s (BOS %s) vs parameters removed", col.Name, col.BOS))
	f.p.X.Label.Text = "parameters removed (%)"
	f.p.Y.Label.Text = "perplexity"
	var all plotter.XYs
	for i, k := range sortedKeys(lines) {
		xy := lines[k]
		sort.Slice(xy, func(i, j int) bool { return xy[i].X < xy[j].X })
		if origPPL > 0 {
			xy = append(plotter.XYs{{X: 0, Y: origPPL}}, xy...)
		}
		all = append(all, xy...)
		addLinePoints(f, i, k, xy)
	}
	padAxes(f.p, all, true)
	f.p.X.Tick.Marker = valueTicks(all, 'f', 1)
	return f
}

// valueTicks puts a labelled tick at every distinct x of the data (the shares of parameters
// actually removed), so the axis reads 18.7, not the requested 25.
func valueTicks(xy plotter.XYs, format byte, prec int) plot.ConstantTicks {
	var ticks plot.ConstantTicks
	seen := map[string]bool{}
	for _, p := range xy {
		label := strconv.FormatFloat(p.X, format, prec, 64)
		if !seen[label] {
			seen[label] = true
			ticks = append(ticks, plot.Tick{Value: p.X, Label: label})
		}
	}
	return ticks
}

func addLinePoints(f *figure, i int, name string, xy plotter.XYs) {
	l, s, err := plotter.NewLinePoints(xy)
	if err != nil {
		return
	}
	styleSeries(i, l, s)
	f.p.Add(l, s)
	f.legend.Add(name, l, s)
}

// padAxes sets the ranges 6% beyond the data so no marker sits on the frame; the y axis
// turns logarithmic when the values span more than a decade (pruning without retraining can
// multiply perplexity).
func padAxes(p *plot.Plot, xy plotter.XYs, logY bool) {
	if len(xy) == 0 {
		return
	}
	xmin, xmax, ymin, ymax := plotter.XYRange(xy)
	dx := (xmax - xmin) * 0.06
	if dx == 0 {
		dx = math.Max(math.Abs(xmax)*0.05, 0.5)
	}
	p.X.Min, p.X.Max = xmin-dx, xmax+dx
	if logY && ymin > 0 && ymax > 10*ymin {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		p.Y.Label.Text += " (log scale)"
		p.Y.Min, p.Y.Max = ymin/1.15, ymax*1.15
		return
	}
	dy := (ymax - ymin) * 0.08
	if dy == 0 {
		dy = math.Max(math.Abs(ymax)*0.01, 0.5)
	}
	p.Y.Min, p.Y.Max = ymin-dy, ymax+dy
}

// paramsFigure: perplexity against parameter count, one marker style per (method,
// retraining), the original its own series.
func paramsFigure(rep *Report, col PPLColumn) *figure {
	var maxParams int64
	for _, r := range rep.Rows {
		maxParams = max(maxParams, r.Params)
	}
	unit, scale := paramUnit(maxParams)
	groups := map[string]plotter.XYs{}
	var all plotter.XYs
	for _, r := range rep.Rows {
		v, ok := r.PPL[col.key()]
		if !ok || !r.Done || r.Params == 0 {
			continue
		}
		key := "original"
		if !r.original {
			key = r.Method + ", " + r.Retrain
		}
		pt := plotter.XY{X: float64(r.Params) / scale, Y: v}
		groups[key] = append(groups[key], pt)
		all = append(all, pt)
	}
	if len(groups) < 2 {
		return nil
	}
	f := newFigure(fmt.Sprintf("Perplexity on %s (BOS %s) vs model size", col.Name, col.BOS))
	f.p.X.Label.Text = "parameters (" + unit + ")"
	f.p.Y.Label.Text = "perplexity"
	for i, k := range sortedKeys(groups) {
		s, err := plotter.NewScatter(groups[k])
		if err != nil {
			continue
		}
		styleSeries(i, nil, s)
		f.p.Add(s)
		f.legend.Add(k, s)
	}
	padAxes(f.p, all, true)
	f.p.X.Tick.Marker = valueTicks(all, 'g', 4)
	return f
}

// paramUnit picks thousands, millions or billions for a parameter axis.
func paramUnit(n int64) (string, float64) {
	switch {
	case n >= 1e9:
		return "billions", 1e9
	case n >= 1e6:
		return "millions", 1e6
	}
	return "thousands", 1e3
}

// zeroShotFigure: grouped bars, one group per task (the paper's order), one bar per model,
// with ±1 standard error.
func zeroShotFigure(rep *Report) *figure {
	if len(rep.Tasks) == 0 {
		return nil
	}
	var rows []Row
	for _, r := range rep.Rows {
		if r.ZeroShot != nil {
			rows = append(rows, r)
		}
	}
	if len(rows) == 0 {
		return nil
	}
	f := newFigure("Zero-shot accuracy per task (the paper's metric, ±1 s.e.)")
	f.w = 10 * vg.Inch
	f.p.Y.Label.Text = "accuracy"
	f.p.Y.Min, f.p.Y.Max = 0, 1
	width := 0.8 / float64(len(rows))
	for i, r := range rows {
		var xy plotter.XYs
		var errs plotter.YErrors
		for t, task := range rep.Tasks {
			c, ok := r.ZeroShot[task.Name]
			if !ok {
				continue
			}
			xy = append(xy, plotter.XY{X: float64(t) - 0.4 + width*(float64(i)+0.5), Y: c.Value})
			errs = append(errs, struct{ Low, High float64 }{c.Stderr, c.Stderr})
		}
		pts := make([]barPoint, len(xy))
		for k := range xy {
			pts[k] = barPoint{x: xy[k].X, y: xy[k].Y}
		}
		fb := floatBars{pts: pts, width: width * 0.9, color: plotutil.Color(i)}
		f.p.Add(fb)
		eb, err := plotter.NewYErrorBars(errBars{xy, errs})
		if err == nil {
			eb.Color = color.Gray{Y: 0x30}
			eb.CapWidth = vg.Points(2)
			f.p.Add(eb)
		}
		f.legend.Add(r.Name, swatchThumb(plotutil.Color(i)))
	}
	ticks := make(plot.ConstantTicks, len(rep.Tasks))
	for t, task := range rep.Tasks {
		ticks[t] = plot.Tick{Value: float64(t), Label: task.Label + "\n" + task.Metric}
	}
	f.p.X.Tick.Marker = ticks
	f.p.X.Min, f.p.X.Max = -0.55, float64(len(rep.Tasks))-0.45
	return f
}

type barPoint struct{ x, y float64 }

// floatBars draws bars of a given width centred on x, from 0 up to y.
type floatBars struct {
	pts   []barPoint
	width float64
	color color.Color
}

func (b floatBars) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	for _, pt := range b.pts {
		x0, x1 := trX(pt.x-b.width/2), trX(pt.x+b.width/2)
		y0, y1 := trY(0), trY(pt.y)
		c.FillPolygon(b.color, []vg.Point{{X: x0, Y: y0}, {X: x1, Y: y0}, {X: x1, Y: y1}, {X: x0, Y: y1}})
	}
}

func (b floatBars) DataRange() (xmin, xmax, ymin, ymax float64) {
	xmin, xmax = math.Inf(1), math.Inf(-1)
	for _, p := range b.pts {
		xmin, xmax, ymax = min(xmin, p.x), max(xmax, p.x), max(ymax, p.y)
	}
	return xmin - b.width, xmax + b.width, 0, ymax
}

// errBars pairs points with their y errors for plotter.NewYErrorBars.
type errBars struct {
	plotter.XYs
	plotter.YErrors
}

// speedFigure: throughput against batch size per architecture, y from 0, the bars spanning
// the slowest and fastest timed run.
func speedFigure(rep *Report) *figure {
	if rep.Speed == nil {
		return nil
	}
	sp := rep.Speed
	f := newFigure(fmt.Sprintf("Generation throughput (%s backend)", sp.Backend))
	f.p.X.Label.Text = "batch size"
	f.p.Y.Label.Text = "generated tokens/s"
	var all plotter.XYs
	var sizes []float64
	minB, maxB := math.Inf(1), math.Inf(-1)
	for _, a := range sp.Archs {
		for _, pt := range a.Points {
			minB, maxB = min(minB, float64(pt.BatchSize)), max(maxB, float64(pt.BatchSize))
		}
	}
	for i, a := range sp.Archs {
		var xy plotter.XYs
		var errs plotter.YErrors
		// Dodge each architecture a little sideways so their min–max bars do not overlap.
		dodge := (float64(i) - float64(len(sp.Archs)-1)/2) * 0.025 * max(maxB-minB, 1)
		for _, pt := range a.Points {
			xy = append(xy, plotter.XY{X: float64(pt.BatchSize) + dodge, Y: pt.Throughput})
			lo, hi := pt.Throughput-pt.ThroughputMin, pt.ThroughputMax-pt.Throughput
			if pt.ThroughputMin == 0 {
				lo, hi = 0, 0
			}
			errs = append(errs, struct{ Low, High float64 }{lo, hi})
			all = append(all, plotter.XY{X: float64(pt.BatchSize), Y: pt.Throughput + hi})
			if !slices.Contains(sizes, float64(pt.BatchSize)) {
				sizes = append(sizes, float64(pt.BatchSize))
			}
		}
		addLinePoints(f, i, a.Name, xy)
		if eb, err := plotter.NewYErrorBars(errBars{xy, errs}); err == nil {
			eb.Color = plotutil.Color(i)
			eb.CapWidth = vg.Points(6)
			f.p.Add(eb)
		}
	}
	padAxes(f.p, all, false)
	_, _, _, ymax := plotter.XYRange(all)
	f.p.Y.Min, f.p.Y.Max = 0, 1.1*ymax
	ticks := plot.ConstantTicks{}
	for _, s := range sizes {
		ticks = append(ticks, plot.Tick{Value: s, Label: fmt.Sprint(s)})
	}
	f.p.X.Tick.Marker = ticks
	return f
}

// lossFigure: the training loss of every retraining run against its update number.
func lossFigure(rep *Report) *figure {
	if len(rep.Training) == 0 {
		return nil
	}
	f := newFigure("Retraining: training loss per update")
	f.p.X.Label.Text = "update"
	f.p.Y.Label.Text = "training loss (nats/token)"
	var all plotter.XYs
	for i, c := range rep.Training {
		var xy plotter.XYs
		for k := range c.Steps {
			xy = append(xy, plotter.XY{X: float64(c.Steps[k]), Y: c.Loss[k]})
		}
		all = append(all, xy...)
		addLinePoints(f, i, c.Name, xy)
	}
	padAxes(f.p, all, false)
	return f
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
