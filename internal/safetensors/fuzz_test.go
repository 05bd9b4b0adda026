package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/shortllm/shortllm/internal/testutil"
)

func jsonUnmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// FuzzParseHeader feeds arbitrary file images through the full open-and-read path:
// it must never panic, and allocations stay bounded by the input size.
func FuzzParseHeader(f *testing.F) {
	for _, c := range brokenFiles {
		f.Add(c.data)
	}
	f.Add(rawFile(`{"__metadata__":{"format":"pt"},"a":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]},"b":{"dtype":"F64","shape":[],"data_offsets":[8,16]}}`, 16))
	for _, m := range realModels {
		if hdr := realHeader(f, m.name); hdr != nil {
			f.Add(hdr)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fl, err := newFile("fuzz", bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		for _, ti := range fl.Tensors() {
			if ti.End-ti.Begin > int64(len(data)) {
				t.Fatalf("tensor %q claims %d bytes of a %d-byte file", ti.Name, ti.End-ti.Begin, len(data))
			}
			if ti.DType.IsFloat() {
				if _, err := fl.ReadFloat32(ti.Name); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}

// realHeader returns a real model's 8-byte length and JSON header (no data, to keep
// the seed small), or nil when ../shared is absent outside CI.
func realHeader(f *testing.F, model string) []byte {
	if os.Getenv("CI") == "" {
		if _, err := os.Stat(filepath.Join(testutil.RepoRoot(f), "..", "shared")); err != nil {
			return nil
		}
	}
	fh, err := os.Open(testutil.SharedDir(f, "models", model, "model.safetensors"))
	if err != nil {
		f.Fatal(err)
	}
	defer fh.Close()
	var n [8]byte
	if _, err := fh.ReadAt(n[:], 0); err != nil {
		f.Fatal(err)
	}
	hdr := make([]byte, 8+binary.LittleEndian.Uint64(n[:]))
	if _, err := fh.ReadAt(hdr, 0); err != nil {
		f.Fatal(err)
	}
	return hdr
}
