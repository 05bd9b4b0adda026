package tokenizer

import (
	"errors"
	"fmt"
)

// Protobuf wire types used by sentencepiece_model.proto.
const (
	wireVarint  = 0
	wireFixed64 = 1
	wireBytes   = 2
	wireFixed32 = 5
)

var errTruncated = errors.New("truncated protobuf")

// pbReader walks one protobuf message. It never trusts a length prefix: every length is
// checked against the bytes that remain, so corrupt input yields an error, not a panic.
type pbReader struct {
	buf []byte
	pos int
}

func (r *pbReader) done() bool { return r.pos >= len(r.buf) }

func (r *pbReader) varint() (uint64, error) {
	var v uint64
	for shift := uint(0); shift < 64; shift += 7 {
		if r.pos >= len(r.buf) {
			return 0, errTruncated
		}
		b := r.buf[r.pos]
		r.pos++
		v |= uint64(b&0x7f) << shift
		if b < 0x80 {
			return v, nil
		}
	}
	return 0, errors.New("varint overflows 64 bits")
}

// field reads the next tag and returns the field number and wire type.
func (r *pbReader) field() (num int, typ int, err error) {
	tag, err := r.varint()
	if err != nil {
		return 0, 0, err
	}
	num, typ = int(tag>>3), int(tag&7)
	if num <= 0 || tag>>3 > 1<<29 {
		return 0, 0, fmt.Errorf("invalid field number %d", tag>>3)
	}
	return num, typ, nil
}

func (r *pbReader) bytes() ([]byte, error) {
	n, err := r.varint()
	if err != nil {
		return nil, err
	}
	if n > uint64(len(r.buf)-r.pos) {
		return nil, fmt.Errorf("length %d exceeds the %d bytes left: %w", n, len(r.buf)-r.pos, errTruncated)
	}
	b := r.buf[r.pos : r.pos+int(n)]
	r.pos += int(n)
	return b, nil
}

func (r *pbReader) fixed32() (uint32, error) {
	if len(r.buf)-r.pos < 4 {
		return 0, errTruncated
	}
	b := r.buf[r.pos:]
	r.pos += 4
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24, nil
}

// skip discards a field's value; groups (wire types 3 and 4) are not used by
// SentencePiece, so they are rejected.
func (r *pbReader) skip(typ int) error {
	switch typ {
	case wireVarint:
		_, err := r.varint()
		return err
	case wireFixed64:
		if len(r.buf)-r.pos < 8 {
			return errTruncated
		}
		r.pos += 8
		return nil
	case wireBytes:
		_, err := r.bytes()
		return err
	case wireFixed32:
		_, err := r.fixed32()
		return err
	}
	return fmt.Errorf("unsupported wire type %d", typ)
}

// expect checks a field's wire type before it is decoded as a known field.
func expect(num, got, want int) error {
	if got != want {
		return fmt.Errorf("field %d has wire type %d, want %d", num, got, want)
	}
	return nil
}
