//go:build noxla

package backend

import (
	"errors"

	"github.com/gomlx/gomlx/backends"
)

const xlaCompiled = false

func newXLA(string) (backends.Backend, error) {
	return nil, errors.New("this binary was built with -tags noxla")
}

func listPlugins() []string { return nil }
