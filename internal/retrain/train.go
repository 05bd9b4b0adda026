package retrain

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph code reads like maths
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/shortllm/shortllm/internal/model"
)

// Mode is a retraining mode: the one vocabulary of the retrain verb, the pipeline's
// --retrain list and the trainer (whose phases are lora or cpt).
type Mode string

// Retraining modes.
const (
	ModeNone    Mode = "none"     // the pipeline evaluates the pruned model as it is
	ModeLoRA    Mode = "lora"     // only the adapter's A and B are trained
	ModeCPT     Mode = "cpt"      // every weight is trained (continued pretraining)
	ModeCPTLoRA Mode = "cpt+lora" // CPT, then LoRA on the CPT model
)

// Modes lists the modes a retraining job runs (ModeNone is the pipeline's alone).
func Modes() []Mode { return []Mode{ModeLoRA, ModeCPT, ModeCPTLoRA} }

// ParseMode checks a mode name; none is accepted only when allowNone is set.
func ParseMode(s string, allowNone bool) (Mode, error) {
	m := Mode(strings.ToLower(strings.TrimSpace(s)))
	if slices.Contains(Modes(), m) || (allowNone && m == ModeNone) {
		return m, nil
	}
	want := "lora, cpt or cpt+lora"
	if allowNone {
		want = "none, " + want
	}
	return "", fmt.Errorf("retrain mode %q: want %s", s, want)
}

// ErrOptions marks training options that cannot work together.
var ErrOptions = errors.New("invalid training options")

// Options configure one training run.
type Options struct {
	Mode    Mode
	Adapter *Adapter // LoRA: the adapter to train (new or loaded)
	Optim   AdamW
	// Schedule (linear, cosine, constant) and its warmup in updates.
	Schedule    string
	WarmupSteps int
	// BatchSize examples per update, run MicroBatchSize at a time (gradient accumulation).
	BatchSize, MicroBatchSize int
	// Length of the run: MaxSteps updates, else MaxTokens input tokens, else Epochs passes.
	Epochs    int
	MaxSteps  int
	MaxTokens int64
	// EvalEvery updates the loss on Val is computed; the best state is what Run returns.
	EvalEvery int
	Val       []Example
	// SaveEvery updates a resumable checkpoint is written to CheckpointDir.
	SaveEvery     int
	CheckpointDir string
	Resume        bool
	Seed          uint64
	PadID         int
	// Fingerprint identifies the run's inputs beyond the options (data files, model); a
	// checkpoint is only resumed by a run with the same fingerprint.
	Fingerprint string
	// OnStep is called after every update with its record and the planned total.
	OnStep func(s StepLog, total int)
	// Remat trains with the rematerialised backward (model.Runner.RematTrain): each block's
	// activations are recomputed from its saved input in the backward pass, so a micro-batch
	// keeps one block's activations instead of every block's, at the cost of a second
	// forward. Gradients, accumulation over micro-batches and AdamW are the same (equal to
	// float rounding). RematDefault says when to turn it on. Not part of the checkpoint's
	// fingerprint: a run may be resumed with it toggled (then equal to rounding, not bits).
	Remat bool
}

// StepLog records one update.
type StepLog struct {
	Step        int      `json:"step"` // 1-based update number
	Epoch       int      `json:"epoch"`
	Loss        float64  `json:"loss"` // mean over the batch's label tokens, before the update
	LR          float64  `json:"lr"`
	GradNorm    float64  `json:"grad_norm"` // before clipping
	Tokens      int      `json:"tokens"`    // input tokens (padding excluded)
	LabelTokens int      `json:"label_tokens"`
	Seconds     float64  `json:"seconds"`
	ValLoss     *float64 `json:"val_loss,omitempty"`
}

// RunLog is the JSON record of a run (train_log.json).
type RunLog struct {
	Mode            Mode      `json:"mode"`
	ConfigHash      string    `json:"config_hash"`
	TotalSteps      int       `json:"total_steps"`
	TrainExamples   int       `json:"train_examples"`
	SkippedExamples int       `json:"skipped_examples,omitempty"` // no label token`
	ValExamples     int       `json:"val_examples"`
	ResumedFrom     int       `json:"resumed_from_step,omitempty"`
	BestStep        int       `json:"best_step,omitempty"`
	BestValLoss     *float64  `json:"best_val_loss,omitempty"`
	TrainSeconds    float64   `json:"train_seconds"`
	TokensPerSecond float64   `json:"tokens_per_second"`
	PeakRSSBytes    int64     `json:"peak_rss_bytes"`
	Steps           []StepLog `json:"steps"`
}

// Trainer trains a model's weights (CPT) or an adapter (LoRA) with AdamW.
type Trainer struct {
	r      *model.Runner
	cfg    *model.Config
	o      Options
	names  []string // trained tensors: HF names (CPT) or PEFT keys (LoRA)
	decay  []bool
	scale  float64
	st     *state
	plan   *plan
	mbSize int
	// master: CPT on bfloat16 weights. The trained state (st.train, checkpoints) is a float32
	// master copy; forward and backward run on the model's bf16 weights, AdamW updates the
	// master and the bf16 weights are re-cast from it after every update.
	master bool
	final  []*tensors.Tensor // the master values Run installed (final or best)
	index  map[string]int    // position of each trained name in names
	remat  *rematPlan
}

// NewTrainer checks the options and prepares a fresh state (see Run for resuming).
func NewTrainer(r *model.Runner, o Options) (*Trainer, error) {
	t := &Trainer{r: r, cfg: r.Model.Config, o: o}
	if err := t.checkOptions(); err != nil {
		return nil, err
	}
	if o.Mode == ModeLoRA {
		t.names = o.Adapter.Names()
		t.scale = o.Adapter.Config.Scale()
	} else {
		t.names = r.Model.Names()
	}
	t.index = map[string]int{}
	for i, n := range t.names {
		t.decay = append(t.decay, decays(n))
		t.index[n] = i
	}
	if o.Remat {
		var err error
		if t.remat, err = t.planRemat(); err != nil {
			return nil, err
		}
	}
	t.st = t.freshState()
	return t, nil
}

// decays follows transformers' get_decay_parameter_names: no weight decay on biases and norms.
func decays(name string) bool {
	return !strings.HasSuffix(name, ".bias") && !strings.Contains(name, "norm")
}

func (t *Trainer) checkOptions() error {
	o := t.o
	switch {
	case o.Mode != ModeLoRA && o.Mode != ModeCPT:
		return fmt.Errorf("mode %q (want lora or cpt): %w", o.Mode, ErrOptions)
	case o.Mode == ModeLoRA && o.Adapter == nil:
		return fmt.Errorf("lora mode needs an adapter: %w", ErrOptions)
	case o.BatchSize <= 0 || o.MicroBatchSize <= 0:
		return fmt.Errorf("batch size %d and micro-batch size %d must be positive: %w", o.BatchSize, o.MicroBatchSize, ErrOptions)
	case o.BatchSize%o.MicroBatchSize != 0:
		return fmt.Errorf("batch size %d is not a multiple of micro-batch size %d: %w", o.BatchSize, o.MicroBatchSize, ErrOptions)
	case o.Optim.LR <= 0 || o.Optim.Beta1 < 0 || o.Optim.Beta1 >= 1 || o.Optim.Beta2 < 0 || o.Optim.Beta2 >= 1:
		return fmt.Errorf("lr %g must be positive and betas (%g, %g) in [0, 1): %w", o.Optim.LR, o.Optim.Beta1, o.Optim.Beta2, ErrOptions)
	case o.MaxSteps <= 0 && o.MaxTokens <= 0 && o.Epochs <= 0:
		return fmt.Errorf("give epochs, max steps or max tokens: %w", ErrOptions)
	case o.SaveEvery > 0 && o.CheckpointDir == "":
		return fmt.Errorf("save-every needs a checkpoint directory: %w", ErrOptions)
	}
	if err := ValidSchedule(o.Schedule); err != nil {
		return fmt.Errorf("%v: %w", err, ErrOptions)
	}
	if o.Mode == ModeLoRA {
		return nil // the base is frozen: any compute dtype; the adapters train in float32
	}
	dt := t.r.Model.ComputeDType()
	for n, w := range t.r.Model.Weights {
		if w.DType() != dt {
			return fmt.Errorf("tensor %s is %s, model.norm.weight %s: CPT needs one compute dtype for all weights: %w", n, w.DType(), dt, ErrOptions)
		}
	}
	switch dt {
	case dtypes.Float32:
	case dtypes.BFloat16:
		t.master = true
	default:
		return fmt.Errorf("weights are %s: CPT trains float32 weights, or bfloat16 weights with a float32 master copy: %w", dt, ErrOptions)
	}
	return nil
}

// Run trains on data and returns the log. Afterwards the model (CPT) or the adapter (LoRA)
// holds the final weights — the best on the validation set when Val is given.
func (t *Trainer) Run(data *Dataset) (*RunLog, error) {
	if err := data.CheckFits(t.cfg); err != nil {
		return nil, err
	}
	t.plan = newPlan(data, t.o)
	total := t.plan.total()
	if total == 0 {
		return nil, fmt.Errorf("data %s: the run has no updates: %w", data.Path, ErrOptions)
	}
	log := &RunLog{Mode: t.o.Mode, ConfigHash: t.cfg.Hash(), TotalSteps: total,
		TrainExamples: len(data.Examples), SkippedExamples: data.Skipped, ValExamples: len(t.o.Val)}
	if t.o.Resume {
		if err := t.resume(data); err != nil {
			return nil, err
		}
		log.ResumedFrom = t.st.step
	}
	for t.st.step < total {
		if err := t.update(data); err != nil {
			return nil, err
		}
		if err := t.afterUpdate(data, total); err != nil {
			return nil, err
		}
	}
	return log, t.finish(log)
}

// afterUpdate evaluates and checkpoints as scheduled.
func (t *Trainer) afterUpdate(data *Dataset, total int) error {
	s := &t.st.log[len(t.st.log)-1]
	last := t.st.step == total
	if len(t.o.Val) > 0 && (last || (t.o.EvalEvery > 0 && t.st.step%t.o.EvalEvery == 0)) {
		v, err := t.EvalLoss(t.o.Val)
		if err != nil {
			return err
		}
		s.ValLoss = &v
		if t.st.bestStep == 0 || v < t.st.bestLoss {
			t.st.bestLoss, t.st.bestStep = v, t.st.step
			t.st.best = cloneAll(t.st.train)
		}
	}
	if t.o.OnStep != nil {
		t.o.OnStep(*s, total)
	}
	if !last && t.o.SaveEvery > 0 && t.st.step%t.o.SaveEvery == 0 {
		return t.saveCheckpoint(data)
	}
	return nil
}

// finish installs the final (or best) weights and fills the log's summary.
func (t *Trainer) finish(log *RunLog) error {
	final := t.st.train
	if t.st.best != nil {
		final = t.st.best
		loss := t.st.bestLoss
		log.BestStep, log.BestValLoss = t.st.bestStep, &loss
	}
	if err := t.install(final); err != nil {
		return err
	}
	if t.master {
		t.final = final
	}
	log.Steps = t.st.log
	var tokens int
	for _, s := range t.st.log {
		log.TrainSeconds += s.Seconds
		tokens += s.Tokens
	}
	if log.TrainSeconds > 0 {
		log.TokensPerSecond = float64(tokens) / log.TrainSeconds
	}
	log.PeakRSSBytes = PeakRSS()
	return nil
}

// MasterWeights returns, after Run, the float32 master copy of CPT on bf16 weights (the
// final or best values, of which the model's weights are the bf16 casts), by tensor name; nil
// for other runs. Saving these instead of the bf16 weights keeps a float32-stored checkpoint
// at full precision, and gives the same bytes where the stored dtype is BF16.
func (t *Trainer) MasterWeights() map[string]*tensors.Tensor {
	if t.final == nil {
		return nil
	}
	out := make(map[string]*tensors.Tensor, len(t.names))
	for i, n := range t.names {
		out[n] = t.final[i]
	}
	return out
}

// install puts trained values where their owner (adapter or model) keeps them; a float32
// master copy is cast to the model's bfloat16 weights (by the same graph op as the step's).
func (t *Trainer) install(vals []*tensors.Tensor) error {
	if t.master {
		out, err := t.r.Run(t.key("cast"), func(_ model.Params, x []*Node) []*Node {
			cast := make([]*Node, len(x))
			for i, v := range x {
				cast[i] = model.RoundToBF16(v)
			}
			return cast
		}, vals...)
		if err != nil {
			return err
		}
		vals = out
	}
	for i, n := range t.names {
		if t.o.Mode == ModeLoRA {
			t.o.Adapter.SetTensor(n, vals[i])
		} else {
			t.r.Model.Weights[n] = vals[i]
		}
	}
	return nil
}

// update runs one optimizer step over the planned batch.
func (t *Trainer) update(data *Dataset) error {
	start := time.Now()
	k := t.st.step
	micros, err := t.microBatches(data, t.plan.batch(k))
	if err != nil {
		return err
	}
	labelTokens, tokens := 0, 0
	for _, mb := range micros {
		labelTokens += mb.labelTokens
		tokens += mb.tokens
	}
	if labelTokens == 0 {
		return fmt.Errorf("step %d: the batch has no label tokens (every prompt fills --seq-len?): %w", k+1, ErrData)
	}
	lr := t.o.Optim.LR * Schedule{Kind: t.o.Schedule, Warmup: t.o.WarmupSteps, Total: t.plan.total()}.Factor(k)
	hp := t.o.Optim.hyperParams(k+1, lr)
	invN := tensors.FromScalar(float32(1 / float64(max(labelTokens, 1))))
	lossSum, norm, err := t.accumulateAndStep(micros, hp, invN, k)
	if err != nil {
		return err
	}
	if bad := notFinite(lossSum, norm); bad != "" {
		return t.diverged(k+1, bad)
	}
	t.st.step++
	t.st.log = append(t.st.log, StepLog{Step: k + 1, Epoch: t.plan.epoch(k), Loss: lossSum / float64(max(labelTokens, 1)),
		LR: lr, GradNorm: norm, Tokens: tokens, LabelTokens: labelTokens, Seconds: time.Since(start).Seconds()})
	return nil
}

// ErrDiverged marks a loss or gradient norm that is NaN or infinite.
var ErrDiverged = errors.New("training diverged")

// notFinite names the first of loss, grad norm that is NaN or ±Inf ("" when both are finite).
func notFinite(loss, norm float64) string {
	switch {
	case math.IsNaN(loss) || math.IsInf(loss, 0):
		return fmt.Sprintf("loss is %v", loss)
	case math.IsNaN(norm) || math.IsInf(norm, 0):
		return fmt.Sprintf("gradient norm is %v", norm)
	}
	return ""
}

// diverged is the error for a non-finite step: it names the step and the last good
// checkpoint, which is kept (a failed run never removes its checkpoints).
func (t *Trainer) diverged(step int, what string) error {
	where := "no checkpoint was saved (--save-every N keeps one)"
	if t.o.CheckpointDir != "" {
		if dir, err := latest(t.o.CheckpointDir); err == nil {
			where = "last good checkpoint: " + dir
		}
	}
	return fmt.Errorf("step %d: %s; %s: %w", step, what, where, ErrDiverged)
}

// accumulateAndStep sums the micro-batches' gradients of Σ NLL / N (N = label tokens of the
// whole batch, so accumulation gives exactly the batch mean, as HF does with
// num_items_in_batch) and applies AdamW with the last micro-batch, in the same graph.
func (t *Trainer) accumulateAndStep(micros []microBatch, hp, invN *tensors.Tensor, step int) (lossSum, norm float64, err error) {
	if t.remat != nil {
		return t.accumulateRemat(micros, hp, invN, step)
	}
	n := len(t.names)
	acc := t.zeros()
	for i, mb := range micros {
		rng, err := RNGStateFromSeed(rngSeed(t.o.Seed, step, i))
		if err != nil {
			return 0, 0, err
		}
		args := append(t.trainArgs(), acc...)
		if i < len(micros)-1 {
			args = append(args, mb.ids, mb.labels, rng, invN)
			out, err := t.r.RunDonating(t.key("accum"), t.accumGraph, t.donate(len(args), 1), args...)
			if err != nil {
				return 0, 0, err
			}
			acc = out[:n]
			lossSum += scalar(out[n])
			continue
		}
		args = append(append(append(args, t.st.m...), t.st.v...), mb.ids, mb.labels, rng, invN, hp)
		out, err := t.r.RunDonating(t.key("step"), t.stepGraph, t.donate(len(args), 3), args...)
		if err != nil {
			return 0, 0, err
		}
		lossSum += scalar(out[3*n])
		norm = scalar(out[3*n+1])
		t.stepped(out[:3*n], out[3*n+2:])
	}
	return lossSum, norm, nil
}

// stepped takes an update's outputs: the new trained tensors and moments (3n), and for a
// master copy the bf16 casts, which become the model's weights.
func (t *Trainer) stepped(state, casts []*tensors.Tensor) {
	n := len(t.names)
	t.st.train, t.st.m, t.st.v = state[:n], state[n:2*n], state[2*n:3*n]
	if t.o.Mode != ModeCPT {
		return
	}
	vals := t.st.train
	if t.master {
		vals = casts
	}
	for i, name := range t.names {
		t.r.Model.Weights[name] = vals[i]
	}
}

// donate marks the gradient accumulators and, when groups is 3, the AdamW moments after them
// as donated: each step replaces them with its outputs, so XLA may reuse their device memory
// for those outputs instead of holding two copies of the optimizer state. An update (groups
// 3) also donates a float32 master copy, which it replaces too; LoRA's trained tensors are the
// adapter's own and stay.
func (t *Trainer) donate(nargs, groups int) []bool {
	d := make([]bool, nargs)
	start := len(t.trainArgs())
	from := start
	if t.master && groups == 3 {
		from = 0
	}
	for i := from; i < start+groups*len(t.names); i++ {
		d[i] = true
	}
	return d
}

// rngSeed derives the dropout seed of one micro-batch from the run's seed, so a resumed run
// draws the same masks without carrying generator state.
func rngSeed(seed uint64, step, micro int) int64 {
	x := seed ^ 0x9e3779b97f4a7c15*uint64(step+1) ^ 0xbf58476d1ce4e5b9*uint64(micro+1)
	x ^= x >> 31
	return int64(x & math.MaxInt64)
}

func scalar(t *tensors.Tensor) float64 {
	switch t.DType() {
	case dtypes.Float64:
		return tensors.MustCopyFlatData[float64](t)[0]
	}
	return float64(tensors.MustCopyFlatData[float32](t)[0])
}

// key names a graph in the runner's cache; the mode and adapter shape are part of it.
func (t *Trainer) key(what string) string {
	k := "retrain/" + string(t.o.Mode) + "/" + what
	if t.o.Mode == ModeLoRA {
		k += fmt.Sprintf("/r%d/%g/%g/%d", t.o.Adapter.Config.R, t.scale, t.o.Adapter.Config.LoraDropout, len(t.names))
	}
	if t.master {
		k += "/master"
	}
	return k
}

// trainArgs are the trained tensors passed as extra graph inputs: the adapter's (LoRA), the
// float32 master copy (CPT on bf16 weights); none for float32 CPT, where they are the model
// weights the runner passes anyway.
func (t *Trainer) trainArgs() []*tensors.Tensor {
	if t.o.Mode == ModeLoRA || t.master {
		return append([]*tensors.Tensor(nil), t.st.train...)
	}
	return nil
}

// evalArgs are the trained tensors the loss needs besides the model's weights.
func (t *Trainer) evalArgs() []*tensors.Tensor {
	if t.o.Mode == ModeLoRA {
		return t.trainArgs()
	}
	return nil
}

// zeros are gradient accumulators, one per trained tensor.
func (t *Trainer) zeros() []*tensors.Tensor {
	out := make([]*tensors.Tensor, len(t.names))
	for i, v := range t.st.train {
		out[i] = tensors.FromShape(v.Shape())
	}
	return out
}

// EvalLoss returns the mean NLL over the label tokens of exs with the current weights.
func (t *Trainer) EvalLoss(exs []Example) (float64, error) {
	var sum, count float64
	for i := 0; i < len(exs); i += t.o.MicroBatchSize {
		mb, err := t.makeMicro(exs[i:min(i+t.o.MicroBatchSize, len(exs))])
		if err != nil {
			return 0, err
		}
		out, err := t.r.Run(t.key("eval"), t.evalGraph, append(t.evalArgs(), mb.ids, mb.labels)...)
		if err != nil {
			return 0, err
		}
		sum += scalar(out[0])
		count += scalar(out[1])
	}
	if count == 0 {
		return 0, fmt.Errorf("validation data has no label tokens: %w", ErrData)
	}
	if v := sum / count; math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, t.diverged(t.st.step, fmt.Sprintf("validation loss is %v", v))
	}
	return sum / count, nil
}

// splitExtra separates the trained nodes from the other extra inputs: wrt are the nodes the
// loss is differentiated by, upd those AdamW updates — the same except for a master copy,
// where wrt are the model's bf16 weights and upd their float32 masters.
func (t *Trainer) splitExtra(p model.Params, extra []*Node) (wrt, upd, rest []*Node) {
	n := len(t.names)
	if t.o.Mode == ModeLoRA {
		return extra[:n], extra[:n], extra[n:]
	}
	for _, name := range t.names {
		wrt = append(wrt, p[name])
	}
	if t.master {
		return wrt, extra[:n], extra[n:]
	}
	return wrt, wrt, extra
}

// nll builds Σ NLL and the label count of a micro-batch; rng (nil: no dropout) feeds LoRA's
// dropout.
func (t *Trainer) nll(p model.Params, train []*Node, ids, labels, rng *Node) (sum, count *Node) {
	opts := model.ForwardOptions{}
	if t.o.Mode == ModeLoRA {
		opts.Adapters = t.adapters(train, rng)
	}
	res := model.Forward(t.cfg, p, ids, opts)
	return model.NLLSum(res.Logits, labels)
}

// lossAndGrads returns Σ NLL, and the gradients of Σ NLL · invN w.r.t. the trained nodes only
// (frozen weights get no gradient buffers), in float32 (bf16 weights' gradients widened).
func (t *Trainer) lossAndGrads(p model.Params, train []*Node, in []*Node) (sum *Node, grads []*Node) {
	ids, labels, rng, invN := in[0], in[1], in[2], in[3]
	sum, _ = t.nll(p, train, ids, labels, rng)
	obj := Mul(sum, ConvertDType(invN, sum.DType()))
	grads = Gradient(obj, train...)
	for i, g := range grads {
		grads[i] = widen(g)
	}
	return sum, grads
}

func widen(x *Node) *Node {
	if x.DType() == dtypes.Float32 {
		return x
	}
	return ConvertDType(x, dtypes.Float32)
}

func (t *Trainer) accumGraph(p model.Params, extra []*Node) []*Node {
	train, _, rest := t.splitExtra(p, extra)
	n := len(t.names)
	acc := rest[:n]
	sum, grads := t.lossAndGrads(p, train, rest[n:])
	out := make([]*Node, 0, n+1)
	for i, g := range grads {
		out = append(out, Add(acc[i], g))
	}
	return append(out, ConvertDType(sum, dtypes.Float64))
}

func (t *Trainer) stepGraph(p model.Params, extra []*Node) []*Node {
	wrt, upd, rest := t.splitExtra(p, extra)
	n := len(t.names)
	acc, m, v := rest[:n], rest[n:2*n], rest[2*n:3*n]
	in := rest[3*n:]
	sum, grads := t.lossAndGrads(p, wrt, in[:4])
	for i := range grads {
		grads[i] = Add(acc[i], grads[i])
	}
	out, norm := t.adamW(upd, grads, m, v, in[4])
	out = append(out[:3*n:3*n], ConvertDType(sum, dtypes.Float64), ConvertDType(norm, dtypes.Float64))
	return append(out, t.casts(out[:n])...)
}

// adamW applies the update and returns the new trained tensors and moments (3n) and the
// gradient norm.
func (t *Trainer) adamW(upd, grads, m, v []*Node, hp *Node) ([]*Node, *Node) {
	newP, newM, newV, norm := adamWUpdate(upd, grads, m, v, t.decay, hp)
	return append(append(newP, newM...), newV...), norm
}

// casts are a master copy's new values cast to the model's bf16 weights (none otherwise).
func (t *Trainer) casts(newP []*Node) []*Node {
	if !t.master {
		return nil
	}
	out := make([]*Node, len(newP))
	for i, x := range newP {
		out[i] = model.RoundToBF16(x)
	}
	return out
}

func (t *Trainer) evalGraph(p model.Params, extra []*Node) []*Node {
	var train []*Node
	if t.o.Mode == ModeLoRA {
		train, extra = extra[:len(t.names)], extra[len(t.names):]
	}
	sum, count := t.nll(p, train, extra[0], extra[1], nil)
	return []*Node{ConvertDType(sum, dtypes.Float64), ConvertDType(count, dtypes.Float64)}
}

// adapters builds the LoRA deltas: scale · (dropout(x) Aᵀ) Bᵀ for each targeted module.
// Dropout masks come from rng, split once per module in a fixed order.
func (t *Trainer) adapters(train []*Node, rng *Node) map[string]model.Adapter {
	ad := map[string]model.Adapter{}
	p := t.o.Adapter.Config.LoraDropout
	for i, mod := range t.o.Adapter.Modules {
		var modRNG *Node
		if rng != nil && p > 0 {
			rng, modRNG = RNGStateSplit(rng)
		}
		ad[mod] = t.loraDelta(train[2*i], train[2*i+1], modRNG)
	}
	return ad
}

// loraDelta is one module's adapter: scale · (dropout(x) Aᵀ) Bᵀ, the dropout mask drawn from
// modRNG (nil: none).
func (t *Trainer) loraDelta(A, B, modRNG *Node) model.Adapter {
	p := t.o.Adapter.Config.LoraDropout
	return func(x *Node) *Node {
		if modRNG != nil {
			_, u := RandomUniform(modRNG, x.Shape())
			keep := GreaterOrEqual(u, Scalar(x.Graph(), x.DType(), p))
			x = Where(keep, MulScalar(x, 1/(1-p)), ZerosLike(x))
		}
		// The adapter path runs in float32 even on a bf16 base: its weights are what trains,
		// and rounding its activations to bf16 costs a visible share of the gradient.
		dt := x.DType()
		x = ConvertDType(x, dtypes.Float32)
		h := DotGeneral(x, []int{2}, nil, ConvertDType(A, dtypes.Float32), []int{1}, nil) // [B, T, r]
		y := DotGeneral(h, []int{2}, nil, ConvertDType(B, dtypes.Float32), []int{1}, nil) // [B, T, out]
		return ConvertDType(MulScalar(y, t.scale), dt)
	}
}
