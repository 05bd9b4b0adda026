package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/x448/float16"

	"github.com/shortllm/shortllm/internal/testutil"
)

func randFloats(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

func mustEncode(t testing.TB, v []float32, dt DType) []byte {
	t.Helper()
	b, err := EncodeFloat32(v, dt)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWriteReadRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	special := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 0x1p-24, 0x1p-130, -0.0, 65520}
	in := []Tensor{
		{Name: "z.f32", DType: F32, Shape: []int{3, 5}, Data: mustEncode(t, randFloats(rng, 15), F32)},
		{Name: "a.bf16", DType: BF16, Shape: []int{7}, Data: mustEncode(t, special, BF16)},
		{Name: "m.f16", DType: F16, Shape: []int{7}, Data: mustEncode(t, special, F16)},
		{Name: "f64", DType: F64, Shape: []int{2, 2}, Data: mustEncode(t, []float32{1, 2, 3, 4}, F64)},
		{Name: "ids", DType: I64, Shape: []int{2}, Data: []byte{1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0}},
		{Name: "scalar", DType: F32, Shape: []int{}, Data: mustEncode(t, []float32{42}, F32)},
		{Name: "empty", DType: F32, Shape: []int{0, 4}, Data: nil},
		{Name: "odd <&> name", DType: U8, Shape: []int{3}, Data: []byte{1, 2, 3}},
	}
	path := filepath.Join(t.TempDir(), "x.safetensors")
	meta := map[string]string{"format": "pt"}
	if err := Write(path, in, meta); err != nil {
		t.Fatal(err)
	}
	checkHeaderPadding(t, path)
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !reflect.DeepEqual(f.Metadata(), meta) {
		t.Errorf("metadata %v", f.Metadata())
	}
	infos := f.Tensors()
	if !slices.IsSortedFunc(infos, func(a, b TensorInfo) int { return strings.Compare(a.Name, b.Name) }) {
		t.Error("Tensors not sorted by name")
	}
	for i := 1; i < len(infos); i++ {
		if infos[i].Begin != infos[i-1].End {
			t.Errorf("data not laid out in name order: %v then %v", infos[i-1], infos[i])
		}
	}
	for _, want := range in {
		info, ok := f.Info(want.Name)
		if !ok || info.DType != want.DType || !slices.Equal(info.Shape, want.Shape) {
			t.Errorf("%s: info %+v", want.Name, info)
		}
		raw, err := f.ReadRaw(want.Name)
		if err != nil || !bytes.Equal(raw, want.Data) {
			t.Errorf("%s: raw differs (%v)", want.Name, err)
		}
		if !want.DType.IsFloat() {
			if _, err := f.ReadFloat32(want.Name); !errors.Is(err, ErrDType) {
				t.Errorf("%s: ReadFloat32 err %v, want ErrDType", want.Name, err)
			}
			continue
		}
		got, err := f.ReadFloat32(want.Name)
		if err != nil {
			t.Fatal(err)
		}
		dec, _ := DecodeFloat32(want.Data, want.DType)
		if !bitsEqual(got, dec) {
			t.Errorf("%s: ReadFloat32 %v, want %v", want.Name, got, dec)
		}
		if back := mustEncode(t, got, want.DType); !bytes.Equal(back, want.Data) && want.DType != F64 {
			t.Errorf("%s: re-encoding is not bit-exact", want.Name)
		}
	}
	if _, err := f.ReadFloat32("nope"); !errors.Is(err, ErrMissing) {
		t.Errorf("missing tensor: %v", err)
	}
}

func bitsEqual(a, b []float32) bool {
	return slices.EqualFunc(a, b, func(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) })
}

func checkHeaderPadding(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(b)
	if n%8 != 0 {
		t.Errorf("header length %d is not a multiple of 8", n)
	}
	hdr := b[8 : 8+n]
	if !json.Valid(hdr) || !bytes.HasPrefix(hdr, []byte(`{"__metadata__":`)) {
		t.Errorf("header %q", hdr)
	}
}

var realModels = []struct {
	name  string
	dtype DType
}{
	{"stories260K", F32},
	{"deep16", F32},
	{"rand-gqa-llama3", BF16},
	{"rand-bias-headdim", F16},
}

func TestRealModels(t *testing.T) {
	for _, m := range realModels {
		t.Run(m.name, func(t *testing.T) {
			c, err := OpenCheckpoint(filepath.Dir(testutil.SharedDir(t, "models", m.name, "model.safetensors")))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.Sharded() {
				t.Error("unexpectedly sharded")
			}
			names := c.Names()
			for _, want := range []string{"model.embed_tokens.weight", "model.norm.weight", "model.layers.0.self_attn.q_proj.weight"} {
				if _, ok := c.Info(want); !ok {
					t.Errorf("missing %s among %d tensors", want, len(names))
				}
			}
			for _, name := range names {
				checkRealTensor(t, c, name, m.dtype)
			}
		})
	}
}

func checkRealTensor(t *testing.T, c *Checkpoint, name string, dt DType) {
	info, _ := c.Info(name)
	if info.DType != dt || len(info.Shape) == 0 || len(info.Shape) > 2 || info.NumElements() == 0 {
		t.Errorf("%s: %+v", name, info)
	}
	got, err := c.ReadFloat32(name)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := c.ReadRaw(name)
	if err != nil {
		t.Fatal(err)
	}
	for i, x := range got {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			t.Fatalf("%s[%d] = %v", name, i, x)
		}
		if manual := manualDecode(raw, dt, i); math.Float32bits(manual) != math.Float32bits(x) {
			t.Fatalf("%s[%d] = %v, manual conversion gives %v", name, i, x, manual)
		}
	}
}

// manualDecode converts element i the slow, obvious way (x448 for F16).
func manualDecode(raw []byte, dt DType, i int) float32 {
	switch dt {
	case BF16:
		return math.Float32frombits(uint32(raw[2*i])<<16 | uint32(raw[2*i+1])<<24)
	case F16:
		return float16.Frombits(uint16(raw[2*i]) | uint16(raw[2*i+1])<<8).Float32()
	}
	return math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
}

func TestGoldenAdapters(t *testing.T) {
	dir := testutil.SharedDir(t, "goldens", "stories260K.lora_step")
	paths, _ := filepath.Glob(filepath.Join(dir, "*.safetensors"))
	if len(paths) == 0 {
		t.Fatalf("no adapter files in %s", dir)
	}
	for _, p := range paths {
		f, err := Open(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Tensors()) == 0 {
			t.Errorf("%s: no tensors", p)
		}
		for _, ti := range f.Tensors() {
			if _, err := f.ReadRaw(ti.Name); err != nil {
				t.Error(err)
			}
		}
		f.Close()
	}
}

func TestParseSize(t *testing.T) {
	good := map[string]int64{
		"5GB": 5_000_000_000, "500MB": 500_000_000, "2GiB": 2 << 30, "1024": 1024,
		"10kb": 10_000, "1.5GB": 1_500_000_000, " 3 MiB ": 3 << 20, "7B": 7, "0": 0, "1TB": 1e12,
	}
	for in, want := range good {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "GB", "5XB", "-1GB", "1e3", "abc", "1.2.3MB", "99999999999TB", "1/2GB"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want error", in, got)
		}
	}
}

func BenchmarkReadFloat32BF16(b *testing.B) {
	const n = 4 << 20 // 8 MiB of BF16
	v := randFloats(rand.New(rand.NewPCG(7, 8)), n)
	path := filepath.Join(b.TempDir(), "bench.safetensors")
	if err := Write(path, []Tensor{{Name: "w", DType: BF16, Shape: []int{n}, Data: mustEncode(b, v, BF16)}}, nil); err != nil {
		b.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	b.SetBytes(2 * n)
	for b.Loop() {
		if _, err := f.ReadFloat32("w"); err != nil {
			b.Fatal(err)
		}
	}
}

func TestConcurrentReads(t *testing.T) {
	c, err := OpenCheckpoint(filepath.Dir(testutil.SharedDir(t, "models", "rand-gqa-llama3", "model.safetensors")))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := map[string][]float32{}
	for _, n := range c.Names() {
		want[n], _ = c.ReadFloat32(n)
	}
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			for _, n := range c.Names() {
				got, err := c.ReadFloat32(n)
				if err == nil && !bitsEqual(got, want[n]) {
					err = errors.New(n + " differs")
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
