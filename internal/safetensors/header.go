package safetensors

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"io"
	"math"
	"slices"
	"strings"
	"unicode/utf8"
)

// maxHeaderSize is the limit the reference Rust implementation enforces; it keeps
// a hostile length field from making us allocate gigabytes.
const maxHeaderSize = 100_000_000

const metadataKey = "__metadata__"

// TensorInfo describes one tensor. Begin and End are byte offsets relative to the
// start of the data section (right after the header).
type TensorInfo struct {
	Name       string
	DType      DType
	Shape      []int
	Begin, End int64
}

// NumElements returns the product of the shape (1 for a scalar).
func (t TensorInfo) NumElements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= int64(d)
	}
	return n
}

type header struct {
	tensors  []TensorInfo // file order
	metadata map[string]string
}

type rawTensor struct {
	DType   *string  `json:"dtype"`
	Shape   *[]int64 `json:"shape"`
	Offsets *[]int64 `json:"data_offsets"`
}

// parseHeader validates the JSON header against a data section of dataLen bytes.
// The returned *Error has no Path; the caller knows it.
func parseHeader(buf []byte, dataLen int64) (*header, *Error) {
	if !utf8.Valid(buf) {
		return nil, newError("", ErrHeader, "header is not valid UTF-8")
	}
	if len(bytes.TrimSpace(buf)) == 0 || bytes.TrimLeft(buf, " \t\r\n")[0] != '{' {
		return nil, newError("", ErrHeader, "header is not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(buf))
	if _, err := dec.Token(); err != nil {
		return nil, causeError("", ErrHeader, err, "bad JSON")
	}
	h := &header{}
	seen := map[string]bool{}
	for dec.More() {
		if err := h.parseEntry(dec, seen, dataLen); err != nil {
			return nil, err
		}
	}
	if _, err := dec.Token(); err != nil { // closing brace
		return nil, causeError("", ErrHeader, err, "bad JSON")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, newError("", ErrHeader, "unexpected data after the header object")
	}
	if err := checkOverlaps(h.tensors); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *header) parseEntry(dec *json.Decoder, seen map[string]bool, dataLen int64) *Error {
	tok, err := dec.Token()
	if err != nil {
		return causeError("", ErrHeader, err, "bad JSON")
	}
	name, _ := tok.(string) // object keys are always strings
	if seen[name] {
		return newError("", ErrHeader, "duplicate key %q", name)
	}
	seen[name] = true
	if name == metadataKey {
		if err := dec.Decode(&h.metadata); err != nil {
			return causeError("", ErrHeader, err, "%s must map strings to strings", metadataKey)
		}
		return nil
	}
	var raw rawTensor
	if err := dec.Decode(&raw); err != nil {
		return causeError("", ErrHeader, err, "tensor %q: bad JSON", name)
	}
	t, e := checkTensor(name, raw, dataLen)
	if e != nil {
		return e
	}
	h.tensors = append(h.tensors, t)
	return nil
}

func checkTensor(name string, raw rawTensor, dataLen int64) (TensorInfo, *Error) {
	t := TensorInfo{Name: name}
	if raw.DType == nil || raw.Shape == nil || raw.Offsets == nil {
		return t, newError("", ErrHeader, "tensor %q: needs dtype, shape and data_offsets", name)
	}
	t.DType = DType(*raw.DType)
	if !t.DType.Known() {
		return t, newError("", ErrDType, "tensor %q: dtype %q", name, *raw.DType)
	}
	size, err := shapeBytes(name, *raw.Shape, t.DType)
	if err != nil {
		return t, err
	}
	t.Shape = make([]int, len(*raw.Shape))
	for i, d := range *raw.Shape {
		t.Shape[i] = int(d) // shapeBytes bounded every dim by the int64 product
	}
	off := *raw.Offsets
	if len(off) != 2 {
		return t, newError("", ErrOffsets, "tensor %q: data_offsets has %d values, want 2", name, len(off))
	}
	t.Begin, t.End = off[0], off[1]
	if t.Begin > t.End {
		return t, newError("", ErrOffsets, "tensor %q: data offsets [%d,%d) end before they begin", name, t.Begin, t.End)
	}
	if t.Begin < 0 || t.End > dataLen {
		return t, newError("", ErrOffsets, "tensor %q: data offsets [%d,%d) outside the %d-byte data section", name, t.Begin, t.End, dataLen)
	}
	if t.End-t.Begin != size {
		return t, newError("", ErrShape, "tensor %q: shape %v of %s needs %d bytes but data offsets [%d,%d) hold %d",
			name, *raw.Shape, t.DType, size, t.Begin, t.End, t.End-t.Begin)
	}
	return t, nil
}

// shapeBytes returns the byte size of a shape, refusing negative dims and overflow.
func shapeBytes(name string, shape []int64, dt DType) (int64, *Error) {
	n := int64(dt.Size())
	for _, d := range shape {
		if d < 0 || d > math.MaxInt {
			return 0, newError("", ErrShape, "tensor %q: invalid dimension %d in shape %v", name, d, shape)
		}
		if d != 0 && n > math.MaxInt64/d {
			return 0, newError("", ErrShape, "tensor %q: shape %v overflows", name, shape)
		}
		n *= d
	}
	return n, nil
}

// checkOverlaps sorts a copy by offset and compares each tensor with the one
// reaching furthest before it. Empty tensors occupy no bytes and never overlap.
func checkOverlaps(ts []TensorInfo) *Error {
	byOff := slices.Clone(ts)
	slices.SortFunc(byOff, func(a, b TensorInfo) int {
		if c := cmp.Compare(a.Begin, b.Begin); c != 0 {
			return c
		}
		return cmp.Compare(a.End, b.End)
	})
	var prev *TensorInfo
	for i := range byOff {
		t := &byOff[i]
		if t.End == t.Begin {
			continue
		}
		if prev != nil && t.Begin < prev.End {
			return newError("", ErrOffsets, "tensor %q: data offsets [%d,%d) overlap %q [%d,%d)",
				t.Name, t.Begin, t.End, prev.Name, prev.Begin, prev.End)
		}
		if prev == nil || t.End > prev.End {
			prev = t
		}
	}
	return nil
}

// sortedByName returns a copy of ts ordered by name.
func sortedByName(ts []TensorInfo) []TensorInfo {
	s := slices.Clone(ts)
	slices.SortFunc(s, func(a, b TensorInfo) int { return strings.Compare(a.Name, b.Name) })
	return s
}
