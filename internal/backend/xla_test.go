//go:build !noxla

package backend

import "testing"

func TestCutOption(t *testing.T) {
	for _, c := range []struct {
		in, out string
		found   bool
	}{
		{"/p/x.so,noprealloc", "/p/x.so", true},
		{"cuda,tf32,noprealloc", "cuda,tf32", true},
		{"cuda,tf32", "cuda,tf32", false},
		{"noprealloc", "noprealloc", false}, // a plugin name, not an option
		{"", "", false},
	} {
		out, found := cutOption(c.in, "noprealloc")
		if out != c.out || found != c.found {
			t.Errorf("cutOption(%q) = %q, %v; want %q, %v", c.in, out, found, c.out, c.found)
		}
	}
}
