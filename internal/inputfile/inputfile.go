// Package inputfile opens and reads the files shortllm is given. Only regular files are
// accepted where a file is expected — a FIFO would block forever and /dev/zero would grow
// memory without bound — and every read has a byte limit chosen for the kind of file.
package inputfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// Byte limits. JSON configs are a few KiB (16 MiB is generous); tokenizer files are tens of
// MiB for 250k-token vocabularies (512 MiB leaves room); score results carry their
// calibration windows; data files are read whole, so their limit is about memory.
const (
	ConfigLimit    int64 = 16 << 20  // config.json, tokenizer_config.json, adapter_config.json, pipeline.yaml, state.json
	TokenizerLimit int64 = 512 << 20 // tokenizer.json, tokenizer.model
	ResultLimit    int64 = 1 << 30   // scores and other result JSON
	DataLimit      int64 = 16 << 30  // training, calibration and evaluation data
)

// Sentinel errors (errors.Is).
var (
	ErrNotRegular = errors.New("not a regular file")
	ErrTooLarge   = errors.New("file too large")
)

// Open opens path for reading after checking it is a regular file. The open itself does not
// block on a FIFO (O_NONBLOCK), so a FIFO is refused instead of hanging.
func Open(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		what := "a directory"
		switch {
		case st.Mode()&os.ModeNamedPipe != 0:
			what = "a FIFO"
		case st.Mode()&os.ModeDevice != 0:
			what = "a device"
		case st.Mode()&os.ModeSocket != 0:
			what = "a socket"
		case !st.IsDir():
			what = "not a regular file"
		}
		return nil, &os.PathError{Op: "open", Path: path, Err: &kindError{what + ", want a regular file", ErrNotRegular}}
	}
	return f, nil
}

// Read reads a whole regular file of at most limit bytes.
func Read(path string, limit int64) ([]byte, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > limit {
		return nil, tooLarge(path, limit)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, tooLarge(path, limit)
	}
	return data, nil
}

func tooLarge(path string, limit int64) error {
	return &os.PathError{Op: "read", Path: path, Err: &kindError{fmt.Sprintf("larger than the %d MiB limit for this kind of file", limit>>20), ErrTooLarge}}
}

// kindError reads as its message alone and matches its sentinel with errors.Is.
type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }
