package eval

// The zero-shot report in lm-evaluation-harness v0.4's results layout, so scripts written for
// the harness read shortllm's JSON as their own: results[task]["acc,none"], versions, n-shot,
// n-samples, configs, higher_is_better. shortllm's own keys (paper_metrics, paper_average)
// sit beside them at the top level, where the harness's readers ignore them.

import (
	"encoding/json"
	"fmt"
	"path/filepath"
)

// harnessFilter is the filter name the harness appends to every metric key of a
// loglikelihood task ("acc,none").
const harnessFilter = "none"

// NSamples is one task's entry of the harness's "n-samples": items in the file and items
// evaluated (after --limit).
type NSamples struct {
	Original  int `json:"original"`
	Effective int `json:"effective"`
}

// MetricSpec is one entry of a task config's metric_list.
type MetricSpec struct {
	Metric         string `json:"metric"`
	Aggregation    string `json:"aggregation"`
	HigherIsBetter bool   `json:"higher_is_better"`
}

// TaskConfig is one task's entry of the harness's "configs": the task yaml with the
// harness's defaults filled in, as it writes them. The data came from a local JSONL file, so
// dataset_path is "json" with data_files (how the harness itself reads a local file) and the
// Hugging Face dataset the file mirrors is named in metadata.
type TaskConfig struct {
	Task                  string         `json:"task"`
	Tag                   []string       `json:"tag,omitempty"`
	DatasetPath           string         `json:"dataset_path"`
	DatasetKwargs         map[string]any `json:"dataset_kwargs"`
	TestSplit             string         `json:"test_split"`
	DocToText             string         `json:"doc_to_text"`
	DocToTarget           string         `json:"doc_to_target"`
	DocToChoice           string         `json:"doc_to_choice"`
	Description           string         `json:"description"`
	TargetDelimiter       string         `json:"target_delimiter"`
	FewshotDelimiter      string         `json:"fewshot_delimiter"`
	NumFewshot            int            `json:"num_fewshot"`
	MetricList            []MetricSpec   `json:"metric_list"`
	OutputType            string         `json:"output_type"`
	Repeats               int            `json:"repeats"`
	MultipleInputs        bool           `json:"multiple_inputs,omitempty"`
	ShouldDecontaminate   bool           `json:"should_decontaminate"`
	DocToDecontaminationQ string         `json:"doc_to_decontamination_query,omitempty"`
	Metadata              map[string]any `json:"metadata"`
}

// harnessTask is what the harness's yaml says about one of the paper's tasks.
type harnessTask struct {
	tag                             []string
	dataset, split                  string
	text, target, choice, decontamQ string
	version                         json.Number
	multipleInputs                  bool
}

// harnessTaskInfo is lm-eval v0.4's task yamls for the seven tasks (lm_eval/tasks/...).
func harnessTaskInfo(name string) harnessTask {
	switch name {
	case "boolq":
		return harnessTask{tag: []string{"super-glue-lm-eval-v1"}, dataset: "super_glue/boolq", split: "validation",
			text: "{{passage}}\nQuestion: {{question}}?\nAnswer:", target: "label", choice: `["no", "yes"]`,
			decontamQ: "passage", version: "2.0"}
	case "piqa":
		return harnessTask{dataset: "piqa", split: "validation", text: "Question: {{goal}}\nAnswer:", target: "label",
			choice: "{{[sol1, sol2]}}", decontamQ: "goal", version: "1.0"}
	case "hellaswag":
		return harnessTask{tag: []string{"multiple_choice"}, dataset: "hellaswag", split: "validation",
			text: "{{query}}", target: "{{label}}", choice: "choices", version: "1.0"}
	case "winogrande":
		return harnessTask{dataset: "winogrande/winogrande_xl", split: "validation",
			text: "preprocess_winogrande.doc_to_text", target: "preprocess_winogrande.doc_to_target",
			choice: "preprocess_winogrande.doc_to_choice", decontamQ: "sentence", version: "1.0", multipleInputs: true}
	case "arc_easy", "arc_challenge":
		sub := "ARC-Easy"
		if name == "arc_challenge" {
			sub = "ARC-Challenge"
		}
		return harnessTask{tag: []string{"ai2_arc"}, dataset: "allenai/ai2_arc/" + sub, split: "test",
			text: "Question: {{question}}\nAnswer:", target: "{{choices.label.index(answerKey)}}",
			choice: "{{choices.text}}", decontamQ: "Question: {{question}}\nAnswer:", version: "1.0"}
	case "openbookqa":
		return harnessTask{dataset: "openbookqa/main", split: "test", text: "question_stem",
			target: "{{choices.label.index(answerKey.lstrip())}}", choice: "{{choices.text}}",
			decontamQ: "question_stem", version: "1.0"}
	}
	return harnessTask{version: "1.0"}
}

// taskConfig builds a task's "configs" entry for its data file.
func taskConfig(t *Task, reportsNorm bool) TaskConfig {
	h := harnessTaskInfo(t.Name)
	metrics := []MetricSpec{{Metric: MetricAcc, Aggregation: "mean", HigherIsBetter: true}}
	if reportsNorm {
		metrics = append(metrics, MetricSpec{Metric: MetricAccNorm, Aggregation: "mean", HigherIsBetter: true})
	}
	return TaskConfig{
		Task: t.Name, Tag: h.tag, DatasetPath: "json",
		DatasetKwargs: map[string]any{"data_files": map[string]string{h.split: absPath(t.Path)}},
		TestSplit:     h.split, DocToText: h.text, DocToTarget: h.target, DocToChoice: h.choice,
		TargetDelimiter: targetDelimiter, FewshotDelimiter: "\n\n", MetricList: metrics,
		OutputType: "multiple_choice", Repeats: 1, MultipleInputs: h.multipleInputs,
		ShouldDecontaminate: h.decontamQ != "", DocToDecontaminationQ: h.decontamQ,
		Metadata: map[string]any{"version": h.version, "hf_dataset": h.dataset, "hf_split": h.split, "sha256": t.SHA256},
	}
}

// MarshalJSON writes the harness's metric keys: "acc,none", "acc_stderr,none" and, for
// tasks whose yaml lists it, "acc_norm,none" and "acc_norm_stderr,none", plus "alias".
func (r TaskResult) MarshalJSON() ([]byte, error) {
	m := map[string]any{
		"alias":                    r.Alias,
		key(MetricAcc):             r.Acc,
		key(MetricAcc + "_stderr"): r.AccStderr,
	}
	if r.AccNorm != nil {
		m[key(MetricAccNorm)] = *r.AccNorm
	}
	if r.AccNormStderr != nil {
		m[key(MetricAccNorm+"_stderr")] = *r.AccNormStderr
	}
	return json.Marshal(m)
}

// UnmarshalJSON reads the harness's keys; it also reads shortllm's earlier layout (plain
// "acc", "n", "paper_metric", "paper"), so stored pipeline results keep rendering.
func (r *TaskResult) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*r = TaskResult{}
	get := func(dst any, names ...string) error {
		for _, n := range names {
			if raw, ok := m[n]; ok {
				if err := json.Unmarshal(raw, dst); err != nil {
					return fmt.Errorf("%s: %w", n, err)
				}
				return nil
			}
		}
		return nil
	}
	var norm, normErr float64
	_, hasNorm := m[key(MetricAccNorm)]
	_, hasOldNorm := m[MetricAccNorm]
	for _, e := range []error{
		get(&r.Alias, "alias"), get(&r.Acc, key(MetricAcc), MetricAcc),
		get(&r.AccStderr, key(MetricAcc+"_stderr"), "acc_stderr"),
		get(&norm, key(MetricAccNorm), MetricAccNorm), get(&normErr, key(MetricAccNorm+"_stderr"), "acc_norm_stderr"),
		get(&r.N, "n"), get(&r.PaperMetric, "paper_metric"), get(&r.Paper, "paper"),
	} {
		if e != nil {
			return e
		}
	}
	if hasNorm || hasOldNorm {
		r.AccNorm, r.AccNormStderr = &norm, &normErr
	}
	return nil
}

// absPath is path made absolute where the working directory is known.
func absPath(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return path
}

func key(metric string) string { return metric + "," + harnessFilter }

// zeroShotJSON is ZeroShotReport's document.
type zeroShotJSON struct {
	Results        map[string]TaskResult      `json:"results"`
	GroupSubtasks  map[string][]string        `json:"group_subtasks"`
	Configs        map[string]TaskConfig      `json:"configs"`
	Versions       map[string]json.Number     `json:"versions"`
	NShot          map[string]int             `json:"n-shot"`
	HigherIsBetter map[string]map[string]bool `json:"higher_is_better"`
	NSamples       map[string]NSamples        `json:"n-samples"`
	Config         ZeroShotConfig             `json:"config"`
	ModelName      string                     `json:"model_name"`
	PaperMetrics   map[string]string          `json:"paper_metrics"`
	PaperAverage   float64                    `json:"paper_average"`
}

// MarshalJSON writes the harness's results document with shortllm's paper metrics beside it.
func (rep ZeroShotReport) MarshalJSON() ([]byte, error) {
	doc := zeroShotJSON{Results: rep.Results, GroupSubtasks: map[string][]string{}, Configs: rep.Configs,
		Versions: map[string]json.Number{}, NShot: map[string]int{}, HigherIsBetter: map[string]map[string]bool{},
		NSamples: map[string]NSamples{}, Config: rep.Config, ModelName: rep.Config.ModelDir, PaperMetrics: map[string]string{}, PaperAverage: rep.PaperAverage}
	if doc.Configs == nil {
		doc.Configs = map[string]TaskConfig{}
	}
	for name, r := range rep.Results {
		doc.GroupSubtasks[name] = []string{}
		doc.NShot[name] = 0
		doc.Versions[name] = harnessTaskInfo(name).version
		hib := map[string]bool{MetricAcc: true}
		if r.AccNorm != nil {
			hib[MetricAccNorm] = true
		}
		doc.HigherIsBetter[name] = hib
		doc.NSamples[name] = NSamples{Original: max(r.Original, r.N), Effective: r.N}
		doc.PaperMetrics[name] = r.PaperMetric
	}
	return json.Marshal(doc)
}

// UnmarshalJSON reads the document MarshalJSON writes (and shortllm's earlier layout).
func (rep *ZeroShotReport) UnmarshalJSON(b []byte) error {
	var doc zeroShotJSON
	if err := json.Unmarshal(b, &doc); err != nil {
		return err
	}
	*rep = ZeroShotReport{Results: doc.Results, Configs: doc.Configs, Config: doc.Config, PaperAverage: doc.PaperAverage}
	for name, r := range rep.Results {
		if n, ok := doc.NSamples[name]; ok {
			r.N, r.Original = n.Effective, n.Original
		}
		if m, ok := doc.PaperMetrics[name]; ok {
			r.PaperMetric = m
		}
		r.Paper = r.Acc
		if r.PaperMetric == MetricAccNorm && r.AccNorm != nil {
			r.Paper = *r.AccNorm
		}
		if r.Alias == "" {
			r.Alias = name
		}
		rep.Results[name] = r
	}
	return nil
}
