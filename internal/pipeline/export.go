package pipeline

// Other views of a report: CSV with the paper's columns (for spreadsheets) and a comparison
// of two runs.

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// CSV renders one line per model with the paper's columns: the model and how it was made,
// parameters, perplexity per dataset and BOS mode, each task's paper metric and its standard
// error, the zero-shot average and the throughput ratio (median, min, max).
func CSV(rep *Report) ([]byte, error) {
	head := []string{"model", "family", "method", "ratio_requested", "removed_share", "retraining", "params", "num_layers", "blocks_removed"}
	for _, c := range rep.PPLColumns {
		head = append(head, fmt.Sprintf("ppl_%s_bos_%s", c.Name, c.BOS))
	}
	for _, t := range rep.Tasks {
		head = append(head, t.Name+"_"+t.Metric, t.Name+"_stderr")
	}
	head = append(head, "zeroshot_average", "speed_ratio", "speed_ratio_min", "speed_ratio_max")
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	if err := w.Write(head); err != nil {
		return nil, err
	}
	for _, r := range rep.Rows {
		rec := []string{r.Name, r.Family, r.Method, ratioOrEmpty(r), f64(r.RemovedShare), r.Retrain,
			strconv.FormatInt(r.Params, 10), strconv.Itoa(r.NumLayers), joinBlocks(r.RemovedBlocks)}
		for _, c := range rep.PPLColumns {
			v, ok := r.PPL[c.key()]
			rec = append(rec, opt(v, ok && r.Done))
		}
		for _, t := range rep.Tasks {
			c, ok := r.ZeroShot[t.Name]
			rec = append(rec, opt(c.Value, ok), opt(c.Stderr, ok))
		}
		rec = append(rec, optPtr(r.ZeroShotAvg))
		if r.Speed != nil {
			rec = append(rec, f64(r.Speed.Median), f64(r.Speed.Min), f64(r.Speed.Max))
		} else {
			rec = append(rec, "", "", "")
		}
		if err := w.Write(rec); err != nil {
			return nil, err
		}
	}
	w.Flush()
	return buf.Bytes(), w.Error()
}

func ratioOrEmpty(r Row) string {
	if r.original {
		return ""
	}
	return f64(r.RatioValue)
}

func f64(v float64) string { return strconv.FormatFloat(v, 'g', 8, 64) }

func opt(v float64, ok bool) string {
	if !ok {
		return ""
	}
	return f64(v)
}

func optPtr(v *float64) string {
	if v == nil {
		return ""
	}
	return f64(*v)
}

func joinBlocks(b []int) string {
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = strconv.Itoa(x)
	}
	return strings.Join(parts, " ")
}

// Compare renders two runs side by side: the settings that differ, then per model (matched
// by name) each perplexity, the zero-shot average and the throughput ratio as A → B with the
// relative change.
func Compare(a, b *Report, nameA, nameB string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "# Comparison of two pipeline runs\n\nA = `%s`, B = `%s`.\n\n", nameA, nameB)
	if diff := settingsDiff(a.Settings, b.Settings); len(diff) > 0 {
		sb.WriteString("Settings that differ (A → B): " + strings.Join(diff, "; ") + ".\n\n")
	} else {
		sb.WriteString("Same settings.\n\n")
	}
	if a.ModelDigest != b.ModelDigest {
		fmt.Fprintf(&sb, "Different input models (digest %.12s → %.12s).\n\n", a.ModelDigest, b.ModelDigest)
	}
	cols := a.PPLColumns
	for _, c := range b.PPLColumns {
		if !slices.Contains(cols, c) {
			cols = append(cols, c)
		}
	}
	head := []string{"model"}
	for _, c := range cols {
		head = append(head, fmt.Sprintf("PPL %s (BOS %s)", c.Name, c.BOS))
	}
	head = append(head, "zero-shot avg", "speed ×")
	tableHead(&sb, head)
	rowsB := map[string]Row{}
	for _, r := range b.Rows {
		rowsB[r.Name] = r
	}
	var names []string
	for _, r := range a.Rows {
		names = append(names, r.Name)
	}
	for _, r := range b.Rows {
		if !slices.Contains(names, r.Name) {
			names = append(names, r.Name)
		}
	}
	rowsA := map[string]Row{}
	for _, r := range a.Rows {
		rowsA[r.Name] = r
	}
	for _, n := range names {
		ra, okA := rowsA[n]
		rb, okB := rowsB[n]
		cells := []string{n}
		for _, c := range cols {
			va, ha := ra.PPL[c.key()]
			vb, hb := rb.PPL[c.key()]
			cells = append(cells, change(va, okA && ha && ra.Done, vb, okB && hb && rb.Done, "%.2f"))
		}
		cells = append(cells, change(deref(ra.ZeroShotAvg), okA && ra.ZeroShotAvg != nil, deref(rb.ZeroShotAvg), okB && rb.ZeroShotAvg != nil, "%.4f"))
		cells = append(cells, change(speedMedian(ra), okA && ra.Speed != nil, speedMedian(rb), okB && rb.Speed != nil, "%.2f"))
		tableRow(&sb, cells)
	}
	return sb.String()
}

func deref(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}

func speedMedian(r Row) float64 {
	if r.Speed == nil {
		return 0
	}
	return r.Speed.Median
}

// change is "a → b (+x.x%)", or what one side has.
func change(a float64, okA bool, b float64, okB bool, format string) string {
	switch {
	case okA && okB:
		pct := ""
		if a != 0 {
			pct = fmt.Sprintf(" (%+.1f%%)", 100*(b-a)/a)
		}
		return fmt.Sprintf(format+" → "+format+"%s", a, b, pct)
	case okA:
		return fmt.Sprintf(format+" → –", a)
	case okB:
		return fmt.Sprintf("– → "+format, b)
	}
	return "–"
}

// settingsDiff lists the settings (by flag name) whose values differ, out and model aside.
func settingsDiff(a, b Config) []string {
	ma, mb := configMap(a), configMap(b)
	var out []string
	for _, k := range slices.Sorted(maps.Keys(ma)) {
		if k == "out" {
			continue
		}
		if string(ma[k]) != string(mb[k]) {
			out = append(out, fmt.Sprintf("%s %s → %s", k, ma[k], mb[k]))
		}
	}
	return out
}

func configMap(c Config) map[string]json.RawMessage {
	data, _ := json.Marshal(c)
	m := map[string]json.RawMessage{}
	_ = json.Unmarshal(data, &m)
	return m
}
