package model

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"path/filepath"
	"sort"

	"github.com/shortllm/shortllm/internal/inputfile"
)

// digestSamples blocks of digestBlock bytes, spread evenly over each weight file's data,
// identify its weights: any training step or different initialisation changes them, and
// reading 64 KiB per file costs nothing next to loading the model.
const (
	digestSamples = 16
	digestBlock   = 4096
)

// WeightsDigest is a cheap fingerprint of the weights in dir: for every *.safetensors file
// (sorted by name) its name, size, safetensors header and 16 evenly spaced 4 KiB samples of
// its data. Two checkpoints of the same config but other weights differ in it (the config
// hash alone cannot tell them apart); copying or touching the files does not change it.
func WeightsDigest(dir string) (string, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.safetensors"))
	if err != nil || len(names) == 0 {
		return "", fmt.Errorf("weights digest of %s: no safetensors files", dir)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, p := range names {
		if err := digestFile(h, p); err != nil {
			return "", fmt.Errorf("weights digest of %s: %w", p, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func digestFile(h io.Writer, path string) error {
	f, err := inputfile.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	fmt.Fprintf(h, "%s %d\n", filepath.Base(path), size)
	var n [8]byte
	if _, err := f.ReadAt(n[:], 0); err != nil {
		return err
	}
	hlen := int64(binary.LittleEndian.Uint64(n[:]))
	if hlen < 0 || 8+hlen > size {
		return fmt.Errorf("header length %d beyond the file's %d bytes", hlen, size)
	}
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, 8+hlen)); err != nil {
		return err
	}
	start, data := 8+hlen, size-8-hlen
	for i := int64(0); i < digestSamples && data > 0; i++ {
		off := start + i*max(data-digestBlock, 0)/(digestSamples-1)
		if _, err := io.Copy(h, io.NewSectionReader(f, off, min(digestBlock, data))); err != nil {
			return err
		}
	}
	return nil
}
