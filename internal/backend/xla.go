//go:build !noxla

package backend

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/gomlx/go-xla/pkg/pjrt"
	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/xla"
)

const xlaCompiled = true

// newXLA loads a PJRT plugin by absolute path or by name from the plugin search path. GoMLX
// would otherwise download plugins from the internet on first use; that only happens when the
// user opts in with GOMLX_XLA_AUTO_INSTALL=1.
func newXLA(cfg string) (backends.Backend, error) {
	xla.EnableAutoInstall(os.Getenv("GOMLX_XLA_AUTO_INSTALL") == "1")
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
	return create("xla:" + cfg)
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
