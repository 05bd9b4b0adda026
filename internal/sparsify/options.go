package sparsify

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/shortllm/shortllm/internal/score"
)

// ErrOptions marks settings that cannot describe a sparsification.
var ErrOptions = errors.New("invalid sparsify options")

// Methods choose the mask (and, for sparsegpt and mrp, update the kept weights).
const (
	Magnitude = "magnitude"
	Wanda     = "wanda"
	SparseGPT = "sparsegpt"
	MRP       = "mrp"
)

// Methods lists the accepted --method values.
func Methods() []string { return []string{Magnitude, Wanda, SparseGPT, MRP} }

// Allocations spread the sparsity over the blocks.
const (
	Uniform = "uniform"
	Alpha   = "alpha"
)

// Refinements rebuild the masks after the method.
const (
	NoRefine = ""
	DSnoT    = "dsnot"
	Barber   = "barber"
)

// Pattern is N:M sparsity (N of every M consecutive input weights pruned); the zero value is
// unstructured.
type Pattern struct{ N, M int }

// Unstructured reports whether p leaves the mask free.
func (p Pattern) Unstructured() bool { return p.M == 0 }

func (p Pattern) String() string {
	if p.Unstructured() {
		return "unstructured"
	}
	return fmt.Sprintf("%d:%d", p.N, p.M)
}

// Sparsity is the share N/M an N:M pattern prunes.
func (p Pattern) Sparsity() float64 { return float64(p.N) / float64(p.M) }

// ParsePattern reads "unstructured" or "N:M" (0 < N < M).
func ParsePattern(s string) (Pattern, error) {
	t := strings.TrimSpace(strings.ToLower(s))
	if t == "" || t == "unstructured" {
		return Pattern{}, nil
	}
	a, b, ok := strings.Cut(t, ":")
	n, err1 := strconv.Atoi(a)
	m, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n <= 0 || m <= n {
		return Pattern{}, fmt.Errorf("--pattern %q: want unstructured or N:M with 0 < N < M (e.g. 2:4, 4:8): %w", s, ErrOptions)
	}
	return Pattern{N: n, M: m}, nil
}

// ParseSparsity reads --sparsity as a percentage ("50%") or a fraction ("0.5"), strictly
// between 0 and 1.
func ParseSparsity(s string) (float64, error) {
	t := strings.TrimSpace(s)
	pct := strings.HasSuffix(t, "%")
	v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(t, "%")), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("--sparsity %q: want a percentage like 50%% or a fraction like 0.5: %w", s, ErrOptions)
	}
	if pct {
		v /= 100
	}
	if !(v > 0 && v < 1) {
		return 0, fmt.Errorf("--sparsity %q: the share of weights to zero must be between 0%% and 100%%, exclusive: %w", s, ErrOptions)
	}
	return v, nil
}

// Defaults of the released code (see each field).
const (
	DefaultDamp            = 0.01 // SparseGPT percdamp
	DefaultBlockSize       = 128  // SparseGPT blocksize
	DefaultEpsilon         = 0.3  // AlphaPruning main.py --epsilon
	DefaultDSnoTCycles     = 50   // DSnoT --max_cycle_time
	DefaultDSnoTThreshold  = 0.1  // DSnoT --update_threshold
	DefaultDSnoTVarPower   = 1.0  // DSnoT --pow_of_var_regrowing
	DefaultBarberThreshold = 0.01 // LLM-Barber --threshold (with --prune_granularity output1)
)

// XminRule picks the Hill estimator's x_min in AlphaPruning's net_esd_estimator.
const (
	XminPeak = "peak" // fix_fingers='xmin_peak': the released LLM scripts' --ww_metric alpha_peak
	XminMid  = "mid"  // fix_fingers='xmin_mid': the median eigenvalue
)

// Options are every setting of a sparsification; the zero value of each knob means the
// released code's default.
type Options struct {
	Method   string
	Sparsity float64 // target share of zeros in the pruned matrices; for N:M it must be N/M
	Pattern  Pattern
	// Allocation "uniform" (every matrix at Sparsity) or "alpha" (AlphaPruning).
	Allocation string
	Epsilon    float64 // AlphaPruning's ε: block ratios span (1±ε)·Sparsity before rescaling
	AlphaXmin  string  // XminPeak (default) or XminMid
	Refine     string  // NoRefine, DSnoT or Barber

	// Calib holds the windows; nil only for magnitude without refinement.
	Calib     *score.Calibration
	BatchSize int // windows per forward (capture's default when 0)

	Damp      float64 // SparseGPT/MRP dampening share of the mean Hessian diagonal
	BlockSize int     // SparseGPT column block; MRP uses it only when MRPBlock is set
	MRPBlock  bool    // MRP: remove per column block instead of the whole row at once

	DSnoTCycles    int
	DSnoTThreshold float64
	DSnoTVarPower  float64
	DSnoTWithMLP   bool // the released code skips MLP matrices by default (--skip_layer mlp)

	BarberThreshold float64

	// Progress is called after each block.
	Progress func(done, total int)
}

// withDefaults fills zero knobs with the released code's defaults.
func (o Options) withDefaults() Options {
	def := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.Damp, DefaultDamp)
	def(&o.Epsilon, DefaultEpsilon)
	def(&o.DSnoTThreshold, DefaultDSnoTThreshold)
	def(&o.DSnoTVarPower, DefaultDSnoTVarPower)
	def(&o.BarberThreshold, DefaultBarberThreshold)
	if o.BlockSize == 0 {
		o.BlockSize = DefaultBlockSize
	}
	if o.DSnoTCycles == 0 {
		o.DSnoTCycles = DefaultDSnoTCycles
	}
	if o.Allocation == "" {
		o.Allocation = Uniform
	}
	if o.AlphaXmin == "" {
		o.AlphaXmin = XminPeak
	}
	return o
}

// Validate checks the settings before any work; every error is one line naming the flag.
func (o Options) Validate() error {
	switch o.Method {
	case Magnitude, Wanda, SparseGPT, MRP:
	default:
		return fmt.Errorf("--method %q: want one of %s: %w", o.Method, strings.Join(Methods(), ", "), ErrOptions)
	}
	if !(o.Sparsity > 0 && o.Sparsity < 1) {
		return fmt.Errorf("--sparsity %g: must be between 0 and 1, exclusive: %w", o.Sparsity, ErrOptions)
	}
	if p := o.Pattern; !p.Unstructured() {
		if p.N <= 0 || p.M <= p.N {
			return fmt.Errorf("--pattern %s: want 0 < N < M: %w", p, ErrOptions)
		}
		if math.Abs(p.Sparsity()-o.Sparsity) > 1e-9 {
			return fmt.Errorf("--pattern %s prunes %s, not --sparsity %s: %w", p, pct(p.Sparsity()), pct(o.Sparsity), ErrOptions)
		}
	}
	switch o.Allocation {
	case Uniform, "":
	case Alpha:
		if !o.Pattern.Unstructured() {
			return fmt.Errorf("--allocation alpha varies the sparsity per block; --pattern %s fixes it at %s: %w", o.Pattern, pct(o.Pattern.Sparsity()), ErrOptions)
		}
	default:
		return fmt.Errorf("--allocation %q: want uniform or alpha: %w", o.Allocation, ErrOptions)
	}
	switch o.AlphaXmin {
	case "", XminPeak, XminMid:
	default:
		return fmt.Errorf("--alpha-xmin %q: want peak or mid: %w", o.AlphaXmin, ErrOptions)
	}
	if o.Epsilon < 0 || o.Epsilon >= 1 {
		return fmt.Errorf("--alpha-epsilon %g: must be in [0, 1): %w", o.Epsilon, ErrOptions)
	}
	switch o.Refine {
	case NoRefine, DSnoT, Barber:
	default:
		return fmt.Errorf("--refine %q: want dsnot or barber: %w", o.Refine, ErrOptions)
	}
	if o.Calib == nil && (o.Method != Magnitude || o.Refine != NoRefine) {
		return fmt.Errorf("--method %s%s needs calibration data: give --calib FILE: %w", o.Method, refineSuffix(o.Refine), ErrOptions)
	}
	if o.Damp < 0 || o.BlockSize < 0 || o.DSnoTCycles < 0 || o.BarberThreshold < 0 || o.BarberThreshold > 1 {
		return fmt.Errorf("negative damping, block size, cycle count or a Barber threshold outside [0, 1]: %w", ErrOptions)
	}
	return nil
}

func refineSuffix(r string) string {
	if r == "" {
		return ""
	}
	return " --refine " + r
}

func pct(v float64) string { return strconv.FormatFloat(100*v, 'f', -1, 64) + "%" }
