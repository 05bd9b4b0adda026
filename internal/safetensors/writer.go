package safetensors

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Tensor is a tensor to write: Data holds raw little-endian bytes in DType.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
}

// Write writes tensors to path as one safetensors file. The header lists tensors
// sorted by name with data in the same order, and is padded with spaces to a
// multiple of 8 bytes as the Rust safetensors crate does, so that data stays
// aligned. The file appears atomically: it is written to path+".tmp-*" first.
func Write(path string, tensors []Tensor, metadata map[string]string) error {
	sorted, err := checkTensors(path, tensors)
	if err != nil {
		return err
	}
	hdr := encodeHeader(sorted, metadata)
	return writeAtomic(path, func(w *bufio.Writer) error {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(hdr)))
		w.Write(n[:])
		w.Write(hdr)
		for _, t := range sorted {
			w.Write(t.Data)
		}
		return nil // bufio.Writer keeps the first error; writeAtomic's Flush reports it
	})
}

// checkTensors validates what the caller wants to write and returns it sorted by name.
func checkTensors(path string, tensors []Tensor) ([]Tensor, error) {
	sorted := slices.Clone(tensors)
	slices.SortFunc(sorted, func(a, b Tensor) int { return strings.Compare(a.Name, b.Name) })
	for i, t := range sorted {
		if t.Name == metadataKey {
			return nil, newError(path, ErrHeader, "tensor name %q is reserved", t.Name)
		}
		if i > 0 && sorted[i-1].Name == t.Name {
			return nil, newError(path, ErrHeader, "duplicate tensor %q", t.Name)
		}
		if err := checkTensor1(path, t); err != nil {
			return nil, err
		}
	}
	return sorted, nil
}

func checkTensor1(path string, t Tensor) error {
	if !t.DType.Known() {
		return newError(path, ErrDType, "tensor %q: dtype %q", t.Name, string(t.DType))
	}
	shape := make([]int64, len(t.Shape))
	for i, d := range t.Shape {
		shape[i] = int64(d)
	}
	size, e := shapeBytes(t.Name, shape, t.DType)
	if e != nil {
		e.Path = path
		return e
	}
	if size != int64(len(t.Data)) {
		return newError(path, ErrShape, "tensor %q: shape %v of %s needs %d bytes, got %d", t.Name, t.Shape, t.DType, size, len(t.Data))
	}
	return nil
}

func encodeHeader(sorted []Tensor, metadata map[string]string) []byte {
	b := []byte{'{'}
	if len(metadata) > 0 {
		b = appendJSON(b, metadataKey)
		b = append(b, ':')
		b = appendJSON(b, metadata) // encoding/json sorts map keys
	}
	var off int64
	for i, t := range sorted {
		if i > 0 || len(metadata) > 0 {
			b = append(b, ',')
		}
		b = appendJSON(b, t.Name)
		b = append(b, `:{"dtype":`...)
		b = appendJSON(b, string(t.DType))
		b = append(b, `,"shape":[`...)
		for j, d := range t.Shape {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(d), 10)
		}
		end := off + int64(len(t.Data))
		b = append(b, `],"data_offsets":[`...)
		b = strconv.AppendInt(b, off, 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, end, 10)
		b = append(b, "]}"...)
		off = end
	}
	b = append(b, '}')
	for len(b)%8 != 0 {
		b = append(b, ' ')
	}
	return b
}

// appendJSON encodes without HTML escaping, matching serde_json's output.
func appendJSON(b []byte, v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // strings and map[string]string always encode
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
}

// writeAtomic writes through a temporary file in the same directory and renames
// it into place, so a crash never leaves a half-written file under path.
func writeAtomic(path string, fill func(*bufio.Writer) error) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
	if err != nil {
		return causeError(path, nil, err, "create")
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	w := bufio.NewWriterSize(tmp, 1<<20)
	if err := fill(w); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return causeError(path, nil, err, "write")
	}
	if err := tmp.Sync(); err != nil {
		return causeError(path, nil, err, "sync")
	}
	if err := tmp.Close(); err != nil {
		return causeError(path, nil, err, "close")
	}
	// CreateTemp makes 0600 files; checkpoints are meant to be shared like any output.
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return causeError(path, nil, err, "chmod")
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return causeError(path, nil, err, "rename")
	}
	return nil
}
