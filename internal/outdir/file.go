package outdir

import (
	"fmt"

	"github.com/shortllm/shortllm/internal/atomicfile"
)

// File is an output file being produced: checked and locked at BeginFile, written
// atomically (temp file, fsync, rename, fsync of the directory) by Write or WriteJSON.
type File struct {
	path string
	lock *Lock
}

// BeginFile checks an output file (CheckFile), takes its lock and removes temporaries a
// killed writer left. An empty path gives a File whose writes do nothing.
func BeginFile(path string, o Options) (*File, error) {
	if path == "" {
		return &File{}, nil
	}
	if err := CheckFile(path, o); err != nil {
		return nil, err
	}
	lock, err := Acquire(path)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", o.flag(), path, err)
	}
	if err := CleanStale(path); err != nil {
		lock.Release()
		return nil, fmt.Errorf("%s %s: %w", o.flag(), path, err)
	}
	return &File{path: path, lock: lock}, nil
}

// Write replaces the file with data.
func (f *File) Write(data []byte) error {
	if f.path == "" {
		return nil
	}
	return atomicfile.Write(f.path, data)
}

// WriteJSON replaces the file with v as indented JSON.
func (f *File) WriteJSON(v any) error {
	if f.path == "" {
		return nil
	}
	return atomicfile.WriteJSON(f.path, v)
}

// Close releases the lock.
func (f *File) Close() error { return f.lock.Release() }
