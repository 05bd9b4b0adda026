// Package atomicfile writes result files so that readers never see half a file, even after a
// power cut: the data goes to a temporary file beside the target, is flushed to disk (fsync),
// renamed over the target, and the directory entry is flushed too.
package atomicfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
)

// TempPrefix returns the prefix of the temporary names used for path: "." + base + ".tmp-".
// Stale temporaries of a killed writer match TempPrefix(path) + "*".
func TempPrefix(path string) string { return "." + filepath.Base(path) + ".tmp-" }

// Write writes data to path via a temporary file in the same directory, fsync and a rename.
// The file gets the user's umask (0644 typically).
func Write(path string, data []byte) error {
	f, err := CreateTemp(filepath.Dir(path), TempPrefix(path), 0o666)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, werr)
	}
	if err := SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// WriteJSON writes v as indented JSON with a trailing newline. NaN and ±Inf are refused with
// an error naming the file (encoding/json's own message names neither).
func WriteJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		var uv *json.UnsupportedValueError
		if errors.As(err, &uv) {
			return fmt.Errorf("write %s: result holds %s (not a number)", path, uv.Str)
		}
		return fmt.Errorf("write %s: %w", path, err)
	}
	return Write(path, append(data, '\n'))
}

// CreateTemp creates a new file dir/prefix<random> with mode perm minus the umask (unlike
// os.CreateTemp, which always makes 0600 files).
func CreateTemp(dir, prefix string, perm os.FileMode) (*os.File, error) {
	for range 100 {
		name := filepath.Join(dir, prefix+strconv.FormatUint(rand.Uint64(), 36))
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
		if !errors.Is(err, os.ErrExist) {
			return f, err
		}
	}
	return nil, fmt.Errorf("create temporary file in %s: too many name collisions", dir)
}

// SyncDir flushes a directory's entries (new names, renames) to disk.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// SyncFile flushes a file's contents to disk.
func SyncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
