//go:build !noxla

package backend

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/gomlx/go-xla/pkg/pjrt"
	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/xla"
)

const xlaCompiled = true

// newXLA loads a PJRT plugin by absolute path or by name from the plugin search path. GoMLX
// would otherwise download plugins from the internet on first use; that only happens when the
// user opts in with GOMLX_XLA_AUTO_INSTALL=1.
//
// Besides GoMLX's plugin options, cfg may carry "noprealloc": the CUDA client then grows its
// memory pool as needed instead of reserving most of the GPU up front, so the process's GPU
// memory (nvidia-smi) shows what the run needed — the device check measures memory that way.
func newXLA(cfg string) (backends.Backend, error) {
	xla.EnableAutoInstall(os.Getenv("GOMLX_XLA_AUTO_INSTALL") == "1")
	cfg, noPrealloc := cutOption(cfg, "noprealloc")
	plugin := cfg
	if i := indexComma(cfg); i >= 0 {
		plugin = cfg[:i]
	}
	switch {
	case filepath.IsAbs(plugin):
		if _, err := os.Stat(plugin); err != nil {
			return nil, fmt.Errorf("PJRT plugin %s: %w", plugin, err)
		}
	case os.Getenv("GOMLX_XLA_AUTO_INSTALL") != "1":
		found := listPlugins()
		if len(found) == 0 {
			return nil, errors.New("no PJRT plugin found (set GOMLX_BACKEND=xla:/abs/path/plugin.so or PJRT_PLUGIN_LIBRARY_PATH)")
		}
		if plugin == "" {
			cfg = found[0]
		}
	}
	opts := strings.Split(cfg, ",")
	prepareCUDA(opts[0], slices.Contains(opts[1:], "tf32"))
	if noPrealloc {
		b, err := newXLAWithOptions(cfg, pjrt.NamedValuesMap{"preallocate": false})
		if err == nil {
			return b, nil
		}
		// A plugin that does not know the option still works without it.
		fmt.Fprintf(os.Stderr, "notice: PJRT plugin rejected preallocate=false (%v); using its defaults\n", oneLine(err))
	}
	return create("xla:" + cfg)
}

func newXLAWithOptions(cfg string, opts pjrt.NamedValuesMap) (b backends.Backend, err error) {
	defer func() {
		if r := recover(); r != nil {
			b, err = nil, fmt.Errorf("backend xla:%s: %v", cfg, r)
		}
	}()
	xb, err := xla.NewWithOptions(cfg, opts)
	if err != nil {
		return nil, fmt.Errorf("backend xla:%s: %w", cfg, err)
	}
	return xb, nil
}

// cutOption removes a ",name" option from a plugin config and reports whether it was there.
func cutOption(cfg, name string) (string, bool) {
	parts := strings.Split(cfg, ",")
	found := false
	kept := parts[:0]
	for i, p := range parts {
		if i > 0 && p == name {
			found = true
			continue
		}
		kept = append(kept, p)
	}
	return strings.Join(kept, ","), found
}

func indexComma(s string) int {
	for i, r := range s {
		if r == ',' {
			return i
		}
	}
	return -1
}

func listPlugins() []string {
	var names []string
	for name := range pjrt.AvailablePlugins() {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
