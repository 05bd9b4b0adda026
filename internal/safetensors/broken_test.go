package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// rawFile builds a safetensors image from a literal header and dataLen zero bytes.
func rawFile(header string, dataLen int) []byte {
	b := make([]byte, 8, 8+len(header)+dataLen)
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	b = append(b, header...)
	return append(b, make([]byte, dataLen)...)
}

func writeFixture(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// brokenFiles are bad single files; they also seed the fuzzer.
var brokenFiles = []struct {
	name string
	data []byte
	want error
}{
	{"truncated", []byte{1, 2, 3}, ErrHeader},
	{"header beyond file", append(binary.LittleEndian.AppendUint64(nil, 1000), "{}"...), ErrHeader},
	{"huge header length", binary.LittleEndian.AppendUint64(nil, 1<<62), ErrHeader},
	{"bad json", rawFile(`{"a": {"dtype": "F32",`, 0), ErrHeader},
	{"not an object", rawFile(`[1,2]`, 0), ErrHeader},
	{"trailing garbage", rawFile(`{} x`, 0), ErrHeader},
	{"duplicate tensor", rawFile(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, 2), ErrHeader},
	{"bad metadata", rawFile(`{"__metadata__":{"n":1}}`, 0), ErrHeader},
	{"missing field", rawFile(`{"a":{"dtype":"F32","shape":[1]}}`, 4), ErrHeader},
	{"unknown dtype", rawFile(`{"a":{"dtype":"F17","shape":[1],"data_offsets":[0,4]}}`, 4), ErrDType},
	{"shape size mismatch", rawFile(`{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}}`, 24), ErrShape},
	{"negative dim", rawFile(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, 4), ErrShape},
	{"overflowing shape", rawFile(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}`, 4), ErrShape},
	{"overlap", rawFile(`{"lm_head.weight":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"model.norm.weight":{"dtype":"U8","shape":[10],"data_offsets":[10,20]}}`, 20), ErrOffsets},
	{"outside data", rawFile(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}`, 16), ErrOffsets},
	{"reversed offsets", rawFile(`{"a":{"dtype":"U8","shape":[0],"data_offsets":[8,4]}}`, 16), ErrOffsets},
	{"three offsets", rawFile(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}}`, 16), ErrOffsets},
}

func TestBrokenFiles(t *testing.T) {
	dir := t.TempDir()
	for i, c := range brokenFiles {
		t.Run(c.name, func(t *testing.T) {
			p := writeFixture(t, dir, strings.Repeat("x", i+1)+".safetensors", c.data)
			_, err := Open(p)
			checkErr(t, err, c.want, p)
		})
	}
	t.Run("missing file", func(t *testing.T) {
		p := filepath.Join(dir, "nope.safetensors")
		_, err := Open(p)
		checkErr(t, err, ErrMissing, p)
		checkErr(t, err, os.ErrNotExist, p)
	})
}

func TestOverlapMessage(t *testing.T) {
	p := writeFixture(t, t.TempDir(), "model.safetensors", brokenFiles[13].data)
	_, err := Open(p)
	want := "safetensors " + p + `: tensor "model.norm.weight": data offsets [10,20) overlap "lm_head.weight" [0,16): invalid offsets`
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}

func checkErr(t *testing.T, err, want error, path string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("got %v, want errors.Is %v", err, want)
	}
	msg := err.Error()
	if !strings.Contains(msg, path) || strings.ContainsAny(msg, "\r\n") {
		t.Errorf("message should be one line naming %s: %q", path, msg)
	}
}

func TestFileShrunkAfterOpen(t *testing.T) {
	p := filepath.Join(t.TempDir(), "m.safetensors")
	if err := Write(p, []Tensor{{Name: "w", DType: F32, Shape: []int{64}, Data: make([]byte, 256)}}, nil); err != nil {
		t.Fatal(err)
	}
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := os.Truncate(p, 100); err != nil {
		t.Fatal(err)
	}
	_, err = f.ReadFloat32("w")
	if err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("got %v", err)
	}
}

func TestWriteRejectsBadTensors(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]struct {
		ts   []Tensor
		want error
	}{
		"size":      {[]Tensor{{Name: "a", DType: F32, Shape: []int{2}, Data: make([]byte, 4)}}, ErrShape},
		"dtype":     {[]Tensor{{Name: "a", DType: "X", Shape: []int{1}, Data: make([]byte, 4)}}, ErrDType},
		"duplicate": {[]Tensor{{Name: "a", DType: U8, Shape: []int{1}, Data: []byte{1}}, {Name: "a", DType: U8, Shape: []int{1}, Data: []byte{1}}}, ErrHeader},
		"reserved":  {[]Tensor{{Name: metadataKey, DType: U8, Shape: []int{1}, Data: []byte{1}}}, ErrHeader},
	}
	for name, c := range cases {
		p := filepath.Join(dir, name+".safetensors")
		checkErr(t, Write(p, c.ts, nil), c.want, p)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("failed writes left files: %v", left)
	}
}

func genTensors(rng *rand.Rand) []Tensor {
	var ts []Tensor
	for i, n := range []int{10, 300, 64, 1000, 5, 2000, 128, 7, 900, 33} {
		dt := []DType{F32, BF16, F16}[i%3]
		ts = append(ts, Tensor{Name: "layer." + string(rune('a'+i)) + ".weight", DType: dt, Shape: []int{n},
			Data: mustEncodeNoT(randFloats(rng, n), dt)})
	}
	return ts
}

func mustEncodeNoT(v []float32, dt DType) []byte {
	b, err := EncodeFloat32(v, dt)
	if err != nil {
		panic(err)
	}
	return b
}

func TestShardedCheckpoint(t *testing.T) {
	ts := genTensors(rand.New(rand.NewPCG(9, 10)))
	single, sharded := t.TempDir(), t.TempDir()
	meta := map[string]string{"format": "pt"}
	if err := WriteCheckpoint(single, ts, meta, 0); err != nil {
		t.Fatal(err)
	}
	// 4000 bytes: the 2000-element F32 tensor (8000 bytes) must get a shard of its own.
	if err := WriteCheckpoint(sharded, ts, meta, 4000); err != nil {
		t.Fatal(err)
	}
	idx := checkIndex(t, sharded, ts)
	big := idx.WeightMap["layer.f.weight"]
	for name, file := range idx.WeightMap {
		if file == big && name != "layer.f.weight" {
			t.Errorf("oversized tensor shares shard %s with %s", file, name)
		}
	}
	a, b := openCk(t, single), openCk(t, sharded)
	if a.Sharded() || !b.Sharded() {
		t.Fatal("Sharded() wrong")
	}
	if !reflect.DeepEqual(a.Names(), b.Names()) {
		t.Fatalf("names differ: %v vs %v", a.Names(), b.Names())
	}
	for _, name := range a.Names() {
		va, _ := a.ReadFloat32(name)
		vb, err := b.ReadFloat32(name)
		ia, _ := a.Info(name)
		ib, _ := b.Info(name)
		if err != nil || !bitsEqual(va, vb) || ia.DType != ib.DType || !reflect.DeepEqual(ia.Shape, ib.Shape) {
			t.Errorf("%s differs between single and sharded (%v)", name, err)
		}
	}
}

func checkIndex(t *testing.T, dir string, ts []Tensor) indexJSON {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, IndexFileName))
	if err != nil {
		t.Fatal(err)
	}
	var idx indexJSON
	if err := jsonUnmarshal(data, &idx); err != nil {
		t.Fatal(err)
	}
	var total float64
	for _, tt := range ts {
		total += float64(len(tt.Data))
	}
	if idx.Metadata["total_size"] != total || len(idx.WeightMap) != len(ts) {
		t.Errorf("index metadata %v, %d entries", idx.Metadata, len(idx.WeightMap))
	}
	files, _ := filepath.Glob(filepath.Join(dir, "model-*-of-*.safetensors"))
	if len(files) < 3 || !strings.HasSuffix(files[0], "model-00001-of-0000"+string(rune('0'+len(files)))+".safetensors") {
		t.Errorf("shard files %v", files)
	}
	return idx
}

func openCk(t *testing.T, dir string) *Checkpoint {
	t.Helper()
	c, err := OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestWriteCheckpointSmallIsSingleFile(t *testing.T) {
	dir := t.TempDir()
	if err := WriteCheckpoint(dir, genTensors(rand.New(rand.NewPCG(1, 1))), nil, 1<<30); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, SingleFileName)); err != nil {
		t.Error(err)
	}
}

func TestBrokenCheckpoints(t *testing.T) {
	ts := genTensors(rand.New(rand.NewPCG(11, 12)))
	t.Run("missing shard", func(t *testing.T) {
		dir := t.TempDir()
		if err := WriteCheckpoint(dir, ts, nil, 4000); err != nil {
			t.Fatal(err)
		}
		shard := filepath.Join(dir, checkIndex(t, dir, ts).WeightMap["layer.b.weight"])
		os.Remove(shard)
		_, err := OpenCheckpoint(dir)
		checkErr(t, err, ErrMissing, shard)
	})
	t.Run("tensor absent from shard", func(t *testing.T) {
		dir := t.TempDir()
		if err := WriteCheckpoint(dir, ts, nil, 4000); err != nil {
			t.Fatal(err)
		}
		idx := checkIndex(t, dir, ts)
		shard := idx.WeightMap["layer.a.weight"]
		idx.WeightMap["ghost.weight"] = shard
		data, _ := json.Marshal(idx)
		writeFixture(t, dir, IndexFileName, data)
		_, err := OpenCheckpoint(dir)
		checkErr(t, err, ErrMissing, filepath.Join(dir, shard))
		if !strings.Contains(err.Error(), "ghost.weight") {
			t.Errorf("error should name the tensor: %v", err)
		}
	})
	for name, body := range map[string]string{
		"bad index json":  `{"weight_map": `,
		"empty index":     `{"weight_map": {}}`,
		"escaping shard":  `{"weight_map": {"a": "../model.safetensors"}}`,
		"absolute shard":  `{"weight_map": {"a": "/etc/passwd"}}`,
		"index not a map": `{"weight_map": ["a"]}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			p := writeFixture(t, dir, IndexFileName, []byte(body))
			_, err := OpenCheckpoint(dir)
			checkErr(t, err, ErrIndex, p)
		})
	}
	t.Run("empty dir", func(t *testing.T) {
		dir := t.TempDir()
		_, err := OpenCheckpoint(dir)
		checkErr(t, err, ErrMissing, dir)
	})
	t.Run("bad single file", func(t *testing.T) {
		dir := t.TempDir()
		p := writeFixture(t, dir, SingleFileName, []byte{1})
		_, err := OpenCheckpoint(dir)
		checkErr(t, err, ErrHeader, p)
	})
}
