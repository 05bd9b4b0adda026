package safetensors

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// Sentinels for errors.Is. Errors returned by this package wrap one of them
// (and, where there is one, the underlying cause such as fs.ErrNotExist).
var (
	ErrHeader  = errors.New("safetensors: invalid header")
	ErrOffsets = errors.New("safetensors: invalid offsets")
	ErrDType   = errors.New("safetensors: unsupported dtype")
	ErrShape   = errors.New("safetensors: shape does not match data size")
	ErrMissing = errors.New("safetensors: not found")
	ErrIndex   = errors.New("safetensors: invalid index")
)

// Error describes a problem with one file. Its message is a single line:
//
//	safetensors PATH: DETAIL: KIND
type Error struct {
	Path   string // file the problem is in; empty for errors not tied to a file
	Detail string // what is wrong, already including the cause's text
	Kind   error  // one of the Err* sentinels, or nil for plain I/O failures
	Err    error  // underlying cause, or nil
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("safetensors")
	if e.Path != "" {
		b.WriteString(" " + e.Path)
	}
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	if e.Kind != nil {
		b.WriteString(": " + strings.TrimPrefix(e.Kind.Error(), "safetensors: "))
	}
	// Details can quote causes from other packages; keep the promise of one line.
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(b.String())
}

// Unwrap exposes both the sentinel and the cause to errors.Is / errors.As.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

func newError(path string, kind error, format string, args ...any) *Error {
	return &Error{Path: path, Detail: fmt.Sprintf(format, args...), Kind: kind}
}

// causeError builds an Error around an underlying cause (I/O, JSON) so that
// errors.Is still sees the cause.
func causeError(path string, kind, cause error, format string, args ...any) *Error {
	e := newError(path, kind, format, args...)
	if e.Detail != "" {
		e.Detail += ": "
	}
	e.Detail += causeText(cause)
	e.Err = cause
	return e
}

// causeText drops the path that *fs.PathError repeats, since Error already names it.
func causeText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Op + ": " + pe.Err.Error()
	}
	return err.Error()
}
