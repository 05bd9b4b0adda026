// Package backend chooses the GoMLX backend shortllm computes on: the pure-Go SimpleGo
// backend ("go", the default) or XLA through a PJRT plugin ("xla", "xla:cuda",
// "xla:/abs/path/plugin.so"). Asking for XLA where no plugin can be loaded never fails a
// command: it prints a one-line notice and falls back to "go".
package backend

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego" // the default backend, always compiled in
)

// IsGo reports whether b is the pure-Go backend: it computes on the host CPU.
func IsGo(b backends.Backend) bool {
	_, ok := b.(*simplego.Backend)
	return ok
}

// EnvVar is GoMLX's own variable for the backend configuration.
const EnvVar = "GOMLX_BACKEND"

// GoConfig runs SimpleGo ops one at a time: its op-parallel executor can deadlock inside large
// DotGenerals on 2 cores, while each DotGeneral still uses every core internally.
const GoConfig = "go:ops_sequential"

// New returns the backend for spec ("" → $GOMLX_BACKEND → "go"). Notices go to notice.
func New(spec string, notice io.Writer) (backends.Backend, error) {
	if spec == "" {
		spec = os.Getenv(EnvVar)
	}
	name, cfg, _ := strings.Cut(spec, ":")
	switch name {
	case "", "go", "simplego":
		installGoKernels()
		if cfg == "" {
			return create(GoConfig)
		}
		return create("go:" + cfg)
	case "xla", "stablehlo", "hlo", "shlo":
		b, err := newXLA(cfg)
		if err == nil {
			return b, nil
		}
		fmt.Fprintf(notice, "notice: XLA backend unavailable (%v); using the pure-Go backend\n", oneLine(err))
		installGoKernels()
		return create(GoConfig)
	}
	return nil, fmt.Errorf("backend %q: unknown backend (go, xla, xla:/abs/plugin.so)", spec)
}

// create wraps GoMLX's constructor, which panics on unknown names.
func create(config string) (b backends.Backend, err error) {
	defer func() {
		if r := recover(); r != nil {
			b, err = nil, fmt.Errorf("backend %q: %v", config, r)
		}
	}()
	b, err = backends.NewWithConfig(config)
	if err != nil {
		return nil, fmt.Errorf("backend %q: %w", config, err)
	}
	return b, nil
}

func oneLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// Info describes what `shortllm backends` reports.
type Info struct {
	Compiled []string `json:"compiled"`
	XLA      bool     `json:"xla_compiled"`
	Plugins  []string `json:"pjrt_plugins"`
	// Probes is filled only when asked (creating an XLA client initialises the device, which
	// takes seconds and may print driver messages).
	Probes []Probe `json:"probes,omitempty"`
}

// Probe is the result of creating one backend and asking it for its devices.
type Probe struct {
	Spec    string   `json:"spec"`
	OK      bool     `json:"ok"`
	Error   string   `json:"error,omitempty"`
	Name    string   `json:"name,omitempty"`
	Devices []string `json:"devices,omitempty"`
}

// Describe lists compiled backends and the PJRT plugins found on the search path. With probe,
// it also creates the go backend, each plugin found and the extra specs (e.g. the one in
// $GOMLX_BACKEND) and lists their devices; failures are reported, never fatal.
func Describe(probe bool, extra ...string) Info {
	info := Info{Compiled: backends.List(), XLA: xlaCompiled, Plugins: listPlugins()}
	if !probe {
		return info
	}
	specs := []string{"go"}
	if xlaCompiled {
		for _, p := range info.Plugins {
			specs = append(specs, "xla:"+p)
		}
	}
	for _, s := range extra {
		if s != "" && !slices.Contains(specs, s) {
			specs = append(specs, s)
		}
	}
	for _, s := range specs {
		info.Probes = append(info.Probes, ProbeSpec(s))
	}
	return info
}

// ProbeSpec creates the backend for spec without falling back, lists its devices and releases
// it. A panic inside a plugin's initialisation is reported as an error.
func ProbeSpec(spec string) (p Probe) {
	p.Spec = spec
	defer func() {
		if r := recover(); r != nil {
			p.OK, p.Error = false, fmt.Sprint(r)
		}
	}()
	var b backends.Backend
	var err error
	name, cfg, _ := strings.Cut(spec, ":")
	switch name {
	case "xla", "stablehlo", "hlo", "shlo":
		b, err = newXLA(cfg)
	default:
		b, err = New(spec, io.Discard)
	}
	if err != nil {
		p.Error = oneLine(err)
		return p
	}
	defer b.Finalize()
	p.OK, p.Name = true, b.Name()
	for d := 0; d < b.NumDevices(); d++ {
		p.Devices = append(p.Devices, oneLineString(b.DeviceDescription(backends.DeviceNum(d))))
	}
	return p
}

func oneLineString(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
