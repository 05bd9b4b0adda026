package pipeline

// Generation speed is a property of an architecture, not of a variant: retraining keeps the
// shapes, and two criteria that remove the same number of blocks give the same shapes. So the
// pipeline measures each distinct architecture (config hash) once, all of them in one stage
// and interleaved run by run (eval.MeasureSpeeds), which keeps their throughput ratios steady
// while the machine's load changes.

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/shortllm/shortllm/internal/backend"
	"github.com/shortllm/shortllm/internal/eval"
	"github.com/shortllm/shortllm/internal/model"
)

// SpeedResult is the speed stage's result.json.
type SpeedResult struct {
	Backend string      `json:"backend"`
	Device  string      `json:"device"`
	Archs   []ArchSpeed `json:"architectures"`
}

// ArchSpeed is one measured architecture and the pruned models that have it.
type ArchSpeed struct {
	Name       string            `json:"name"`
	ConfigHash string            `json:"config_hash"`
	NumLayers  int               `json:"num_layers"`
	Params     int64             `json:"params"`
	Members    []string          `json:"members"`    // "original" or "<criterion> <ratio>"
	PruneDirs  []string          `json:"prune_dirs"` // the members' prune stages ("" = original)
	Points     []eval.SpeedPoint `json:"points"`
}

type speedKey struct {
	Archs                              []string // config hashes, in measuring order
	Sizes                              []int
	PromptLen, NewTokens, Runs, Warmup int
	DType                              string `json:",omitempty"` // compute dtype; "" is f32
}

// planSpeed groups the original and the pruned models by config hash and plans the speed
// stage over them; run.json is rewritten with its directory.
func (r *runner) planSpeed(man *Manifest) error {
	if !r.cfg.Speed {
		return nil
	}
	archs, err := r.architectures()
	if err != nil {
		return err
	}
	key := speedKey{DType: r.dtypeKey(), Sizes: r.plan.speedSizes, PromptLen: r.cfg.SpeedPromptLen, NewTokens: r.cfg.SpeedNewTokens,
		Runs: r.cfg.SpeedRuns, Warmup: r.cfg.SpeedWarmup}
	for _, a := range archs {
		key.Archs = append(key.Archs, a.ConfigHash)
	}
	r.speedArchs = archs
	man.SpeedDir = r.keep(newStage("speed", "all", key))
	return writeJSON(filepath.Join(r.cfg.Out, ManifestFile), man)
}

// architectures lists the distinct architectures: the original first, then the pruned ones
// from most to fewest parameters.
func (r *runner) architectures() ([]ArchSpeed, error) {
	orig, err := model.LoadConfig(filepath.Join(r.cfg.Model, "config.json"))
	if err != nil {
		return nil, err
	}
	archs := []ArchSpeed{{ConfigHash: orig.Hash(), NumLayers: orig.NumHiddenLayers, Members: []string{"original"}, PruneDirs: []string{""}}}
	byHash := map[string]int{orig.Hash(): 0}
	for _, m := range r.prunedModels() {
		member, dir := m[0], m[1]
		{
			cfg, err := model.LoadConfig(filepath.Join(r.cfg.Out, dir, "model", "config.json"))
			if err != nil {
				return nil, err
			}
			i, ok := byHash[cfg.Hash()]
			if !ok {
				i = len(archs)
				byHash[cfg.Hash()] = i
				archs = append(archs, ArchSpeed{ConfigHash: cfg.Hash(), NumLayers: cfg.NumHiddenLayers})
			}
			archs[i].Members = append(archs[i].Members, member)
			archs[i].PruneDirs = append(archs[i].PruneDirs, dir)
		}
	}
	sort.SliceStable(archs[1:], func(i, j int) bool { return archs[1+i].NumLayers > archs[1+j].NumLayers })
	for i := range archs {
		archs[i].Name = archName(archs[i])
	}
	return archs, nil
}

// prunedModels lists every pruned model's name and prune stage: block criteria, width
// criteria and searches, in the report's order. Sparse models keep the original's
// architecture, and dense kernels run them at its speed.
func (r *runner) prunedModels() [][2]string {
	var out [][2]string
	for _, c := range append(append([]string(nil), r.plan.criteria...), r.plan.widthCriteria...) {
		for _, ratio := range r.plan.ratioNames {
			out = append(out, [2]string{c + " " + ratio, r.prunes[c+" "+ratio].Dir})
		}
	}
	for _, s := range r.searches {
		out = append(out, [2]string{fmt.Sprintf("%s %g%%", s.method, 100*s.ratio), s.prune.Dir})
	}
	return out
}

// archName is "original (10 blocks)" or "8 blocks (ppl 25.0%, taylor 25.0%)".
func archName(a ArchSpeed) string {
	if len(a.PruneDirs) > 0 && a.PruneDirs[0] == "" {
		return fmt.Sprintf("original (%d blocks)", a.NumLayers)
	}
	return fmt.Sprintf("%d blocks (%s)", a.NumLayers, strings.Join(a.Members, ", "))
}

// speed measures every architecture with one fixed random prompt, as `eval speed` does.
func (r *runner) speed(dir string) error {
	runners := make([]*model.Runner, len(r.speedArchs))
	archs := append([]ArchSpeed(nil), r.speedArchs...)
	for i, a := range archs {
		path := r.cfg.Model
		if a.PruneDirs[0] != "" {
			path = filepath.Join(r.cfg.Out, a.PruneDirs[0], "model")
		}
		m, err := model.Load(path, model.LoadOptions{DType: r.Engine.Compute})
		if err != nil {
			return err
		}
		archs[i].Params = m.NumParams()
		if runners[i], err = r.runnerFor(m); err != nil {
			return err
		}
	}
	cfg := runners[0].Model.Config
	bos := -1
	if len(cfg.BOSTokenID) > 0 {
		bos = cfg.BOSTokenID[0]
	}
	pts, err := eval.MeasureSpeeds(runners, eval.SpeedOptions{BatchSizes: r.plan.speedSizes,
		PromptIDs: eval.RandomPrompt(r.cfg.SpeedPromptLen, cfg.VocabSize, bos, 1), NewTokens: r.cfg.SpeedNewTokens,
		Runs: r.cfg.SpeedRuns, Warmup: r.cfg.SpeedWarmup, Progress: r.progress("speed")})
	if err != nil {
		return err
	}
	for i := range archs {
		archs[i].Points = pts[i]
	}
	be, err := r.Engine.Backend()
	if err != nil {
		return err
	}
	res := SpeedResult{Backend: be.Name(), Device: deviceName(backend.IsGo(be), be.Description()), Archs: archs}
	return writeJSON(filepath.Join(dir, "result.json"), res)
}

// deviceName says what the measurement ran on: the CPU model and the cores Go may use for the
// pure-Go backend, the backend's own description otherwise.
func deviceName(pureGo bool, description string) string {
	if !pureGo {
		return description
	}
	cpu := runtime.GOARCH
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	return fmt.Sprintf("%s, %d cores (GOMAXPROCS %d)", cpu, runtime.NumCPU(), runtime.GOMAXPROCS(0))
}
