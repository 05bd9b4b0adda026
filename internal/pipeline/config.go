package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/shortllm/shortllm/internal/eval"
	"github.com/shortllm/shortllm/internal/hub"
	"github.com/shortllm/shortllm/internal/inputfile"
	"github.com/shortllm/shortllm/internal/model"
	"github.com/shortllm/shortllm/internal/prune"
	"github.com/shortllm/shortllm/internal/retrain"
	"github.com/shortllm/shortllm/internal/score"
	"github.com/shortllm/shortllm/internal/stage"
)

// Config is every setting of a pipeline run. The yaml keys are the CLI flag names, so a
// pipeline.yaml and a command line say the same things the same way.
type Config struct {
	Model    string `yaml:"model" json:"model"`
	Out      string `yaml:"out" json:"out"`
	Ratios   List   `yaml:"ratios" json:"ratios"`
	Criteria List   `yaml:"criteria" json:"criteria"`
	// WidthCriteria prune heads and channels at the same ratios (width.go).
	WidthCriteria List `yaml:"width-criteria" json:"width-criteria,omitempty"`
	Retrain       List `yaml:"retrain" json:"retrain"`
	// DType is every stage's compute dtype (f32 or bf16); checkpoints keep their stored dtype.
	DType string `yaml:"dtype" json:"dtype,omitempty"`
	// Remat recomputes block activations in Taylor's and retraining's backward: auto, on, off.
	Remat string `yaml:"remat" json:"remat,omitempty"`

	// Scoring (calibration) data and its sampling.
	Calib        string `yaml:"calib" json:"calib"`
	CalibSamples int    `yaml:"calib-samples" json:"calib-samples"`
	Seed         uint64 `yaml:"seed" json:"seed"`

	// Searches run as further criteria (internal/search): methods, and the forwards each
	// search may spend (0 = the method's own stopping rule).
	SearchMethods List    `yaml:"search-methods" json:"search-methods"`
	SearchBudget  float64 `yaml:"search-budget" json:"search-budget"`

	// Block selection: the paper's "+" policy unless NoPlus.
	KeepFirst int  `yaml:"keep-first" json:"keep-first"`
	KeepLast  int  `yaml:"keep-last" json:"keep-last"`
	NoPlus    bool `yaml:"no-plus" json:"no-plus"`

	// Retraining.
	LoRAData       string  `yaml:"lora-data" json:"lora-data"`
	CPTData        string  `yaml:"cpt-data" json:"cpt-data"`
	RetrainSteps   int     `yaml:"retrain-steps" json:"retrain-steps"`
	MaxTokens      int64   `yaml:"max-tokens" json:"max-tokens"`
	LR             float64 `yaml:"lr" json:"lr"`
	BatchSize      int     `yaml:"batch-size" json:"batch-size"`
	MicroBatchSize int     `yaml:"micro-batch-size" json:"micro-batch-size"`
	WarmupSteps    int     `yaml:"warmup-steps" json:"warmup-steps"`
	LoRARank       int     `yaml:"lora-r" json:"lora-r"`

	// Evaluation, the same for every model. SeqLen is also the calibration window and the
	// retraining block size, as in the paper's setup.
	EvalPPL      List   `yaml:"eval-ppl" json:"eval-ppl"`
	EvalZeroShot string `yaml:"eval-zeroshot" json:"eval-zeroshot"`
	Tasks        List   `yaml:"tasks" json:"tasks"`
	Limit        int    `yaml:"limit" json:"limit"`
	SeqLen       int    `yaml:"seq-len" json:"seq-len"`
	MaxChunks    int    `yaml:"max-chunks" json:"max-chunks"`

	// Generation speed (original vs every pruned model).
	Speed           bool `yaml:"speed" json:"speed"`
	SpeedBatchSizes List `yaml:"speed-batch-sizes" json:"speed-batch-sizes"`
	SpeedPromptLen  int  `yaml:"speed-prompt-len" json:"speed-prompt-len"`
	SpeedNewTokens  int  `yaml:"speed-new-tokens" json:"speed-new-tokens"`
	SpeedRuns       int  `yaml:"speed-runs" json:"speed-runs"`
	SpeedWarmup     int  `yaml:"speed-warmup" json:"speed-warmup"`

	// Weight sparsity beside depth pruning (sparsity.go): methods as method[+alpha][+dsnot|+barber].
	SparsityMethods  List   `yaml:"sparsity-methods" json:"sparsity-methods"`
	Sparsity         string `yaml:"sparsity" json:"sparsity"`
	SparsityPatterns List   `yaml:"sparsity-patterns" json:"sparsity-patterns"`
}

// Defaults are the values a run uses for keys neither the file nor the flags set.
func Defaults() Config {
	return Config{
		Ratios: List{"20%", "35%"}, Criteria: List{"ppl", "taylor"}, Retrain: List{string(retrain.ModeNone)},
		CalibSamples: score.DefaultSamples, Seed: score.DefaultSeed,
		KeepFirst: prune.DefaultPolicy.KeepFirst, KeepLast: prune.DefaultPolicy.KeepLast,
		RetrainSteps: 100, LR: 1e-4, BatchSize: 16, MicroBatchSize: 4, LoRARank: 8,
		SeqLen: 128, Tasks: List(eval.TaskNames()),
		SpeedBatchSizes: List{"1", "8", "16"}, SpeedPromptLen: 32, SpeedNewTokens: 32, SpeedRuns: 3, SpeedWarmup: 1,
		Sparsity: "50%", SparsityPatterns: List{"unstructured"},
	}
}

// List is a comma-separated flag value or a YAML scalar or sequence.
type List []string

func (l *List) String() string { return strings.Join(*l, ",") }
func (l *List) Type() string   { return "list" }

// Set replaces the list: a flag given on the command line overrides the file, not extends it.
func (l *List) Set(s string) error {
	*l = splitList(s)
	return nil
}

// UnmarshalYAML accepts both `ratios: 20%,35%` and `ratios: [20%, 35%]`.
func (l *List) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*l = splitList(n.Value)
		return nil
	case yaml.SequenceNode:
		var v []string
		if err := n.Decode(&v); err != nil {
			return err
		}
		*l = v
		return nil
	}
	return fmt.Errorf("line %d: want a list or a comma-separated string", n.Line)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

var unknownField = regexp.MustCompile(`field (\S+) not found`)

// LoadConfigFile reads a pipeline.yaml over c. Unknown keys are an error naming the key;
// relative paths in the file are taken relative to the file, so a config travels with its
// data.
func LoadConfigFile(path string, c *Config) error {
	data, err := inputfile.Read(path, inputfile.ConfigLimit)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	return ParseConfig(data, path, c)
}

// ParseConfig reads pipeline.yaml bytes (named path in errors; relative paths resolve
// against path's directory) over c.
func ParseConfig(data []byte, path string, c *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var fromFile Config
	if err := dec.Decode(&fromFile); err != nil && !errors.Is(err, io.EOF) { // an empty file is io.EOF
		if m := unknownField.FindStringSubmatch(err.Error()); m != nil {
			return fmt.Errorf("config %s: unknown key %s", path, m[1])
		}
		return fmt.Errorf("config %s: %s", path, strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	// Decode again onto c: only the keys present in the file change it.
	dec = yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config %s: %w", path, err)
	}
	c.resolvePaths(filepath.Dir(path), fromFile)
	return nil
}

// resolvePaths makes the file's relative paths relative to its directory.
func (c *Config) resolvePaths(dir string, fromFile Config) {
	rel := func(p *string, set string) {
		if set != "" && *p == set && !filepath.IsAbs(set) {
			*p = filepath.Join(dir, set)
		}
	}
	// A model that is no directory beside the file may be a Hugging Face id (org/name).
	if _, err := os.Stat(filepath.Join(dir, fromFile.Model)); err == nil || hub.CheckID(fromFile.Model) != nil {
		rel(&c.Model, fromFile.Model)
	}
	rel(&c.Out, fromFile.Out)
	rel(&c.Calib, fromFile.Calib)
	rel(&c.LoRAData, fromFile.LoRAData)
	rel(&c.CPTData, fromFile.CPTData)
	rel(&c.EvalZeroShot, fromFile.EvalZeroShot)
	if len(fromFile.EvalPPL) > 0 {
		c.EvalPPL = nil
		for _, s := range fromFile.EvalPPL {
			if spec, err := ParsePPLSpec(s); err == nil && !filepath.IsAbs(spec.Path) {
				s = spec.Name + "=" + spec.Dataset + ":" + filepath.Join(dir, spec.Path)
			}
			c.EvalPPL = append(c.EvalPPL, s)
		}
	}
}

// PPLSpec is one --eval-ppl entry: a name for the tables, the row rule and the file.
type PPLSpec struct {
	Name    string `json:"name"`
	Dataset string `json:"dataset"`
	Path    string `json:"path"`
}

// ParsePPLSpec reads name=dataset:FILE (dataset wikitext2, ptb or text) or name=FILE (the
// rule then follows the file name, as `eval ppl` does).
func ParsePPLSpec(s string) (PPLSpec, error) {
	name, rest, ok := strings.Cut(s, "=")
	if !ok || name == "" || rest == "" {
		return PPLSpec{}, fmt.Errorf("--eval-ppl %q: want name=dataset:FILE", s)
	}
	spec := PPLSpec{Name: name, Path: rest}
	if ds, path, ok := strings.Cut(rest, ":"); ok {
		switch ds {
		case eval.DatasetWikitext2, eval.DatasetPTB, eval.DatasetText:
			spec.Dataset, spec.Path = ds, path
		}
	}
	if spec.Dataset == "" {
		spec.Dataset = eval.DatasetFor(spec.Path)
	}
	return spec, nil
}

// plan is a checked Config in the form the stages use.
type plan struct {
	ratios     []float64
	ratioNames []string
	criteria   []string
	// widthCriteria are width-pruning criteria (llm-pruner, wanda-sp, flap).
	widthCriteria []string
	retrain       []retrain.Mode
	ppl           []PPLSpec
	speedSizes    []int
	sparsity      []sparsitySpec
}

// validate checks every key before any work starts and returns the parsed lists.
func (c *Config) validate() (*plan, error) {
	p := &plan{}
	var err error
	if c.Model == "" || c.Out == "" {
		return nil, fmt.Errorf("--model and --out are required")
	}
	if _, err := model.ParseDType(c.DType, "--dtype"); err != nil {
		return nil, err
	}
	if _, err := stage.ParseRemat(c.Remat); err != nil {
		return nil, fmt.Errorf("--%w", err)
	}
	if p.ratios, p.ratioNames, err = parseRatios(c.Ratios); err != nil {
		return nil, err
	}
	if p.criteria, err = parseCriteria(c.Criteria); err != nil {
		return nil, err
	}
	if p.widthCriteria, err = parseWidthCriteria(c.WidthCriteria); err != nil {
		return nil, err
	}
	if len(p.widthCriteria) > 0 && c.Calib == "" {
		return nil, fmt.Errorf("--width-criteria needs --calib FILE")
	}
	if p.retrain, err = parseRetrain(c.Retrain); err != nil {
		return nil, err
	}
	if err := parseSearchMethods(c.SearchMethods); err != nil {
		return nil, err
	}
	if c.SearchBudget < 0 {
		return nil, fmt.Errorf("--search-budget %g: want a positive number of forwards (0 = no cap)", c.SearchBudget)
	}
	if p.sparsity, err = c.parseSparsity(); err != nil {
		return nil, err
	}
	if err := c.checkData(p); err != nil {
		return nil, err
	}
	for _, s := range c.EvalPPL {
		spec, err := ParsePPLSpec(s)
		if err != nil {
			return nil, err
		}
		p.ppl = append(p.ppl, spec)
	}
	if err := checkUnique("--eval-ppl names", pplNames(p.ppl)); err != nil {
		return nil, err
	}
	if len(p.ppl) == 0 && c.EvalZeroShot == "" {
		return nil, fmt.Errorf("nothing to evaluate: give --eval-ppl name=dataset:FILE and/or --eval-zeroshot DIR")
	}
	if p.speedSizes, err = parseInts(c.SpeedBatchSizes, "--speed-batch-sizes"); err != nil {
		return nil, err
	}
	return p, c.checkNumbers()
}

func pplNames(specs []PPLSpec) []string {
	var names []string
	for _, s := range specs {
		names = append(names, s.Name)
	}
	return names
}

func parseRatios(l List) ([]float64, []string, error) {
	if len(l) == 0 {
		return nil, nil, fmt.Errorf("--ratios: give at least one pruning ratio, e.g. 20%%,35%%")
	}
	var ratios []float64
	var names []string
	seen := map[float64]string{}
	for _, s := range l {
		r, err := prune.ParseRatio(s)
		if err != nil {
			return nil, nil, fmt.Errorf("--ratios: %w", err)
		}
		if prev, dup := seen[r]; dup {
			return nil, nil, fmt.Errorf("--ratios: %s and %s are the same ratio (each ratio once)", prev, s)
		}
		seen[r] = s
		ratios = append(ratios, r)
		names = append(names, prune.FormatPercent(r))
	}
	return ratios, names, nil
}

func parseCriteria(l List) ([]string, error) {
	if len(l) == 0 {
		return nil, fmt.Errorf("--criteria: give at least one of %s", strings.Join(score.BaseCriteria(), ", "))
	}
	for _, c := range l {
		if strings.HasSuffix(c, "+") {
			return nil, fmt.Errorf("--criteria %s: the pipeline applies the + policy itself (--keep-first/--keep-last, --no-plus)", c)
		}
		if _, err := score.ParseCriteria(c); err != nil || c == "all" {
			return nil, fmt.Errorf("--criteria: unknown stage %q (want %s)", c, strings.Join(score.BaseCriteria(), ", "))
		}
	}
	return l, checkUnique("--criteria", l)
}

func parseRetrain(l List) ([]retrain.Mode, error) {
	if len(l) == 0 {
		return nil, fmt.Errorf("--retrain: give at least one of none, lora, cpt, cpt+lora")
	}
	modes := make([]retrain.Mode, len(l))
	for i, m := range l {
		var err error
		if modes[i], err = retrain.ParseMode(m, true); err != nil {
			return nil, fmt.Errorf("--retrain: %w", err)
		}
	}
	return modes, checkUnique("--retrain", l)
}

func checkUnique(what string, l []string) error {
	seen := map[string]bool{}
	for _, s := range l {
		if seen[s] {
			return fmt.Errorf("%s: %q is listed twice", what, s)
		}
		seen[s] = true
	}
	return nil
}

// checkData names the missing file for each requested stage up front: a run should not
// fail on a missing flag hours after it started.
func (c *Config) checkData(p *plan) error {
	for _, cr := range p.criteria {
		if score.NeedsData(cr) && c.Calib == "" {
			return fmt.Errorf("--criteria %s needs --calib FILE", cr)
		}
	}
	if len(c.SearchMethods) > 0 && c.Calib == "" {
		return fmt.Errorf("--search-methods %s needs --calib FILE (the objective is the calibration loss)", c.SearchMethods[0])
	}
	for _, m := range p.retrain {
		if (m == retrain.ModeLoRA || m == retrain.ModeCPTLoRA) && c.LoRAData == "" {
			return fmt.Errorf("--retrain %s needs --lora-data FILE", m)
		}
		if (m == retrain.ModeCPT || m == retrain.ModeCPTLoRA) && c.CPTData == "" {
			return fmt.Errorf("--retrain %s needs --cpt-data FILE", m)
		}
	}
	for flag, path := range map[string]string{"--calib": c.Calib, "--lora-data": c.LoRAData, "--cpt-data": c.CPTData, "--eval-zeroshot": c.EvalZeroShot} {
		if path == "" {
			continue
		}
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("%s: %w", flag, err)
		}
	}
	return nil
}

// checkNumbers range-checks every numeric setting at load, before the first stage: a bad
// zero-shot limit must not surface after hours of scoring and retraining.
func (c *Config) checkNumbers() error {
	for _, v := range []struct {
		flag string
		n    int
		min  int
	}{
		{"seq-len", c.SeqLen, 2}, {"batch-size", c.BatchSize, 1}, {"micro-batch-size", c.MicroBatchSize, 1},
		{"lora-r", c.LoRARank, 1}, {"calib-samples", c.CalibSamples, 0}, {"keep-first", c.KeepFirst, 0},
		{"keep-last", c.KeepLast, 0}, {"retrain-steps", c.RetrainSteps, 0}, {"warmup-steps", c.WarmupSteps, 0},
		{"limit", c.Limit, 0}, {"max-chunks", c.MaxChunks, 0}, {"speed-prompt-len", c.SpeedPromptLen, 1},
		{"speed-new-tokens", c.SpeedNewTokens, 1}, {"speed-runs", c.SpeedRuns, 1}, {"speed-warmup", c.SpeedWarmup, 0},
	} {
		if v.n < v.min {
			return fmt.Errorf("%s %d: want at least %d", v.flag, v.n, v.min)
		}
	}
	if c.MaxTokens < 0 {
		return fmt.Errorf("max-tokens %d: want 0 or more", c.MaxTokens)
	}
	if c.RetrainSteps <= 0 && c.MaxTokens <= 0 {
		return fmt.Errorf("retrain-steps or max-tokens must be positive")
	}
	if !(c.LR > 0) || math.IsInf(c.LR, 0) {
		return fmt.Errorf("lr %g: want a positive number", c.LR)
	}
	if c.BatchSize%c.MicroBatchSize != 0 {
		return fmt.Errorf("batch-size %d is not a multiple of micro-batch-size %d", c.BatchSize, c.MicroBatchSize)
	}
	return nil
}

func parseInts(l List, flag string) ([]int, error) {
	var out []int
	for _, s := range l {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%s: %q is not a positive integer", flag, s)
		}
		out = append(out, n)
	}
	return out, nil
}
