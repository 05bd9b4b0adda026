package safetensors

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"slices"
	"unsafe"

	"github.com/shortllm/shortllm/internal/inputfile"
)

// File is an open safetensors file whose header has been fully validated. Its
// methods are safe for concurrent use: reads go through ReadAt and share no buffer.
type File struct {
	path      string
	r         io.ReaderAt
	closer    io.Closer
	dataStart int64 // 8 + header length
	order     []TensorInfo
	sorted    []TensorInfo
	byName    map[string]int // index into sorted
	metadata  map[string]string
}

// Open opens and validates a safetensors file.
func Open(path string) (*File, error) {
	osf, err := inputfile.Open(path)
	if err != nil {
		return nil, openError(path, err)
	}
	st, err := osf.Stat()
	if err != nil {
		osf.Close()
		return nil, causeError(path, nil, err, "stat")
	}
	if st.IsDir() {
		osf.Close()
		return nil, newError(path, ErrHeader, "is a directory")
	}
	f, err := newFile(path, osf, st.Size())
	if err != nil {
		osf.Close()
		return nil, err
	}
	f.closer = osf
	return f, nil
}

func openError(path string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return causeError(path, ErrMissing, err, "")
	}
	return causeError(path, nil, err, "")
}

// newFile parses the header of a safetensors image of the given size read through r.
func newFile(path string, r io.ReaderAt, size int64) (*File, error) {
	if size < 8 {
		return nil, newError(path, ErrHeader, "file is %d bytes, too short for the 8-byte header length", size)
	}
	var lenBuf [8]byte
	if _, err := r.ReadAt(lenBuf[:], 0); err != nil {
		return nil, causeError(path, ErrHeader, err, "reading header length")
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > uint64(size-8) {
		return nil, newError(path, ErrHeader, "header length %d exceeds the %d bytes after it", n, size-8)
	}
	if n > maxHeaderSize {
		return nil, newError(path, ErrHeader, "header length %d exceeds the %d-byte limit", n, maxHeaderSize)
	}
	buf := make([]byte, n)
	if _, err := r.ReadAt(buf, 8); err != nil {
		return nil, causeError(path, ErrHeader, err, "reading header")
	}
	h, e := parseHeader(buf, size-8-int64(n))
	if e != nil {
		e.Path = path
		return nil, e
	}
	f := &File{path: path, r: r, dataStart: 8 + int64(n), order: h.tensors, metadata: h.metadata}
	f.sorted = sortedByName(h.tensors)
	f.byName = make(map[string]int, len(f.sorted))
	for i, t := range f.sorted {
		f.byName[t.Name] = i
	}
	return f, nil
}

// Path returns the path the file was opened with.
func (f *File) Path() string { return f.path }

// Tensors returns the tensors sorted by name. The slice is a copy.
func (f *File) Tensors() []TensorInfo {
	out := make([]TensorInfo, len(f.sorted))
	for i, t := range f.sorted {
		t.Shape = slices.Clone(t.Shape)
		out[i] = t
	}
	return out
}

// Info returns the description of the named tensor.
func (f *File) Info(name string) (TensorInfo, bool) {
	i, ok := f.byName[name]
	if !ok {
		return TensorInfo{}, false
	}
	t := f.sorted[i]
	t.Shape = slices.Clone(t.Shape)
	return t, true
}

// Metadata returns a copy of the header's __metadata__ map (nil when absent).
func (f *File) Metadata() map[string]string { return maps.Clone(f.metadata) }

// ReadRaw returns the named tensor's bytes as stored (little-endian).
func (f *File) ReadRaw(name string) ([]byte, error) {
	t, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, t.End-t.Begin)
	if err := f.readAt(t, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// ReadFloat32 reads a floating-point tensor and converts it to float32.
func (f *File) ReadFloat32(name string) ([]float32, error) {
	t, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	if !t.DType.IsFloat() {
		return nil, newError(f.path, ErrDType, "tensor %q: cannot convert %s to float32", name, t.DType)
	}
	out := make([]float32, t.NumElements())
	if len(out) == 0 {
		return out, nil
	}
	if t.DType == F64 {
		return out, f.readF64(t, out)
	}
	// Read the raw bytes into the tail of out's own memory and widen in place:
	// decodeInto never overwrites a source element it has not read yet.
	mem := unsafe.Slice((*byte)(unsafe.Pointer(&out[0])), 4*len(out))
	src := mem[len(mem)-int(t.End-t.Begin):]
	if err := f.readAt(t, src); err != nil {
		return nil, err
	}
	decodeInto(out, src, t.DType)
	return out, nil
}

// readF64 narrows in chunks because F64 data is larger than the float32 result.
func (f *File) readF64(t TensorInfo, out []float32) error {
	const chunk = 1 << 17 // elements per read
	buf := make([]byte, 8*min(chunk, len(out)))
	for i := 0; i < len(out); i += chunk {
		n := min(chunk, len(out)-i)
		part := t
		part.Begin = t.Begin + 8*int64(i)
		if err := f.readAt(part, buf[:8*n]); err != nil {
			return err
		}
		decodeInto(out[i:i+n], buf[:8*n], F64)
	}
	return nil
}

func (f *File) lookup(name string) (TensorInfo, error) {
	i, ok := f.byName[name]
	if !ok {
		return TensorInfo{}, newError(f.path, ErrMissing, "tensor %q", name)
	}
	return f.sorted[i], nil
}

// readAt fills buf from the tensor's data; the file may have shrunk since Open.
func (f *File) readAt(t TensorInfo, buf []byte) error {
	if _, err := f.r.ReadAt(buf, f.dataStart+t.Begin); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return causeError(f.path, nil, err, "tensor %q: read", t.Name)
	}
	return nil
}

// Close closes the underlying file.
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	if err := f.closer.Close(); err != nil {
		return fmt.Errorf("safetensors %s: close: %w", f.path, err)
	}
	return nil
}
