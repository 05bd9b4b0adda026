package safetensors

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/shortllm/shortllm/internal/inputfile"
)

// File names used by Hugging Face transformers.
const (
	SingleFileName = "model.safetensors"
	IndexFileName  = "model.safetensors.index.json"
)

// maxIndexSize bounds how much of an untrusted index file we read.
const maxIndexSize = 64 << 20

// Checkpoint is a model directory holding model.safetensors or shards listed in
// model.safetensors.index.json. Like File, it is safe for concurrent reads.
type Checkpoint struct {
	dir     string
	files   []*File
	byName  map[string]*File
	names   []string
	sharded bool
}

type indexJSON struct {
	Metadata  map[string]any    `json:"metadata"`
	WeightMap map[string]string `json:"weight_map"`
}

// OpenCheckpoint opens the checkpoint in dir. Like transformers, it prefers
// model.safetensors and falls back to the index. Every shard the index lists
// must open cleanly and hold the tensors the index assigns to it.
func OpenCheckpoint(dir string) (*Checkpoint, error) {
	single := filepath.Join(dir, SingleFileName)
	if _, err := os.Stat(single); err == nil {
		return openSingle(dir, single)
	}
	index := filepath.Join(dir, IndexFileName)
	if _, err := os.Stat(index); err == nil {
		return openSharded(dir, index)
	}
	return nil, newError(dir, ErrMissing, "no %s or %s", SingleFileName, IndexFileName)
}

func openSingle(dir, path string) (*Checkpoint, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	c := &Checkpoint{dir: dir, files: []*File{f}, byName: map[string]*File{}}
	for _, t := range f.sorted {
		c.byName[t.Name] = f
		c.names = append(c.names, t.Name)
	}
	return c, nil
}

func openSharded(dir, index string) (_ *Checkpoint, err error) {
	wm, err := readIndex(index)
	if err != nil {
		return nil, err
	}
	c := &Checkpoint{dir: dir, byName: map[string]*File{}, sharded: true}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	shards := map[string]*File{}
	for _, name := range sortedKeys(wm) {
		f, err := c.shard(shards, index, wm[name])
		if err != nil {
			return nil, err
		}
		if _, ok := f.byName[name]; !ok {
			return nil, newError(f.path, ErrMissing, "tensor %q, listed for this shard in %s, is absent", name, IndexFileName)
		}
		c.byName[name] = f
		c.names = append(c.names, name)
	}
	return c, nil
}

// shard opens each shard file once.
func (c *Checkpoint) shard(open map[string]*File, index, file string) (*File, error) {
	if f, ok := open[file]; ok {
		return f, nil
	}
	path := filepath.Join(c.dir, file)
	f, err := Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &Error{Path: path, Detail: "shard listed in " + IndexFileName + " does not exist",
			Kind: ErrMissing, Err: fs.ErrNotExist}
	}
	if err != nil {
		return nil, err
	}
	open[file] = f
	c.files = append(c.files, f)
	return f, nil
}

func readIndex(path string) (map[string]string, error) {
	f, err := inputfile.Open(path)
	if err != nil {
		return nil, openError(path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxIndexSize+1))
	if err != nil {
		return nil, causeError(path, nil, err, "read")
	}
	if len(data) > maxIndexSize {
		return nil, newError(path, ErrIndex, "larger than %d bytes", maxIndexSize)
	}
	var idx indexJSON
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, causeError(path, ErrIndex, err, "bad JSON")
	}
	if len(idx.WeightMap) == 0 {
		return nil, newError(path, ErrIndex, "weight_map is empty")
	}
	for name, file := range idx.WeightMap {
		// The index is untrusted: a shard must be a plain file name inside the directory.
		if file == "" || file != filepath.Base(file) || !filepath.IsLocal(file) || strings.ContainsAny(file, `/\`) {
			return nil, newError(path, ErrIndex, "tensor %q: shard %q is not a file name in the checkpoint directory", name, file)
		}
	}
	return idx.WeightMap, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Dir returns the checkpoint directory.
func (c *Checkpoint) Dir() string { return c.dir }

// Names returns all tensor names, sorted.
func (c *Checkpoint) Names() []string { return slices.Clone(c.names) }

// Sharded reports whether the checkpoint was opened through an index.
func (c *Checkpoint) Sharded() bool { return c.sharded }

// Info describes the named tensor.
func (c *Checkpoint) Info(name string) (TensorInfo, bool) {
	f, ok := c.byName[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.Info(name)
}

// ReadFloat32 reads the named tensor converted to float32.
func (c *Checkpoint) ReadFloat32(name string) ([]float32, error) {
	f, err := c.file(name)
	if err != nil {
		return nil, err
	}
	return f.ReadFloat32(name)
}

// ReadRaw reads the named tensor's stored bytes.
func (c *Checkpoint) ReadRaw(name string) ([]byte, error) {
	f, err := c.file(name)
	if err != nil {
		return nil, err
	}
	return f.ReadRaw(name)
}

func (c *Checkpoint) file(name string) (*File, error) {
	f, ok := c.byName[name]
	if !ok {
		return nil, newError(c.dir, ErrMissing, "tensor %q is not in the checkpoint", name)
	}
	return f, nil
}

// Close closes every shard.
func (c *Checkpoint) Close() error {
	var errs []error
	for _, f := range c.files {
		errs = append(errs, f.Close())
	}
	c.files = nil
	return errors.Join(errs...)
}

// WriteCheckpoint writes tensors into dir, which must exist. With maxShardSize <= 0
// it writes model.safetensors. Otherwise it splits tensors, in name order, into
// shards of at most maxShardSize data bytes named model-00001-of-0000N.safetensors
// plus model.safetensors.index.json, as transformers' save_pretrained does: a
// tensor larger than the limit gets a shard of its own, and when everything fits
// in one shard the result is a plain model.safetensors without index.
func WriteCheckpoint(dir string, tensors []Tensor, metadata map[string]string, maxShardSize int64) error {
	sorted, err := checkTensors(filepath.Join(dir, SingleFileName), tensors)
	if err != nil {
		return err
	}
	groups := splitShards(sorted, maxShardSize)
	if len(groups) <= 1 {
		return Write(filepath.Join(dir, SingleFileName), sorted, metadata)
	}
	idx := indexJSON{Metadata: map[string]any{}, WeightMap: map[string]string{}}
	var total int64
	for i, g := range groups {
		name := fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(groups))
		if err := Write(filepath.Join(dir, name), g, metadata); err != nil {
			return err
		}
		for _, t := range g {
			idx.WeightMap[t.Name] = name
			total += int64(len(t.Data))
		}
	}
	idx.Metadata["total_size"] = total
	return writeIndex(filepath.Join(dir, IndexFileName), idx)
}

func splitShards(sorted []Tensor, limit int64) [][]Tensor {
	if limit <= 0 {
		return [][]Tensor{sorted}
	}
	var groups [][]Tensor
	var size int64
	for _, t := range sorted {
		n := int64(len(t.Data))
		if len(groups) == 0 || (size+n > limit && len(groups[len(groups)-1]) > 0) {
			groups = append(groups, nil)
			size = 0
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], t)
		size += n
	}
	return groups
}

// writeIndex matches json.dumps(indent=2, sort_keys=True) plus a newline, like transformers.
func writeIndex(path string, idx indexJSON) error {
	data, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return causeError(path, nil, err, "encode index")
	}
	return writeAtomic(path, func(w *bufio.Writer) error {
		w.Write(data)
		w.WriteByte('\n')
		return nil
	})
}

// ParseSize parses a shard size the way transformers does: "5GB" is 5*10^9 bytes,
// "2GiB" is 2*2^30, "500MB", "10KB", "1024" (bytes). Units are case-insensitive
// and fractions such as "1.5GB" are allowed; the result is rounded down.
func ParseSize(s string) (int64, error) {
	num, unit := splitUnit(strings.TrimSpace(s))
	mult, ok := sizeUnit(strings.ToUpper(unit))
	if !ok || num == "" || strings.ContainsAny(num, "+-eE/") {
		return 0, fmt.Errorf("safetensors: invalid size %q (want e.g. 5GB, 500MB, 2GiB or a byte count)", s)
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, fmt.Errorf("safetensors: invalid size %q: bad number %q", s, num)
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	q := new(big.Int).Quo(r.Num(), r.Denom())
	if !q.IsInt64() {
		return 0, fmt.Errorf("safetensors: invalid size %q: too large", s)
	}
	return q.Int64(), nil
}

func splitUnit(s string) (num, unit string) {
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimSpace(s[i:])
}

func sizeUnit(u string) (int64, bool) {
	switch u {
	case "", "B":
		return 1, true
	case "KB":
		return 1e3, true
	case "MB":
		return 1e6, true
	case "GB":
		return 1e9, true
	case "TB":
		return 1e12, true
	case "KIB":
		return 1 << 10, true
	case "MIB":
		return 1 << 20, true
	case "GIB":
		return 1 << 30, true
	case "TIB":
		return 1 << 40, true
	}
	return 0, false
}
