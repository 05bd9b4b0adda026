package hub

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
)

// Files a checkpoint directory is made of (besides the weight shards).
const (
	configFile  = "config.json"
	singleFile  = "model.safetensors"
	indexFile   = "model.safetensors.index.json"
	maxIndexLen = 64 << 20
)

// isExtraFile reports the optional files fetched alongside the weights.
func isExtraFile(name string) bool {
	switch name {
	case "generation_config.json", "tokenizer.json", "tokenizer.model",
		"tokenizer_config.json", "special_tokens_map.json":
		return true
	}
	return false
}

// repoCache is one repository's folder in the huggingface_hub cache.
type repoCache struct{ root string }

func newRepoCache(cacheDir string, r repoRef) repoCache {
	return repoCache{root: filepath.Join(cacheDir, "models--"+r.org+"--"+r.name)}
}

func (c repoCache) blobDir() string               { return filepath.Join(c.root, "blobs") }
func (c repoCache) snapshot(commit string) string { return filepath.Join(c.root, "snapshots", commit) }
func (c repoCache) refPath(rev string) string {
	return filepath.Join(c.root, "refs", filepath.FromSlash(rev))
}

// commitFor maps a revision to a commit: a commit hash is its own answer,
// anything else goes through refs/<revision>.
func (c repoCache) commitFor(rev string) (string, bool) {
	if isCommit(rev) {
		return rev, true
	}
	b, err := os.ReadFile(c.refPath(rev))
	if err != nil {
		return "", false
	}
	commit := strings.TrimSpace(string(b))
	return commit, isCommit(commit)
}

// cached returns the snapshot for rev and the first checkpoint file it lacks
// ("" when complete). ok is false when the revision is not in the cache at all.
func (c repoCache) cached(rev string) (dir, missing string, ok bool) {
	commit, ok := c.commitFor(rev)
	if !ok {
		return "", "", false
	}
	dir = c.snapshot(commit)
	if _, err := os.Stat(dir); err != nil {
		return "", "", false
	}
	return dir, missingFile(dir), true
}

// missingFile reports the first file a loadable checkpoint needs that dir lacks.
// os.Stat follows the snapshot symlinks, so a dangling link counts as missing.
func missingFile(dir string) string {
	if !exists(filepath.Join(dir, configFile)) {
		return configFile
	}
	if exists(filepath.Join(dir, singleFile)) {
		return ""
	}
	shards, err := readShardNames(filepath.Join(dir, indexFile))
	if err != nil {
		return singleFile
	}
	for _, s := range shards {
		if !exists(filepath.Join(dir, s)) {
			return s
		}
	}
	return ""
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// readShardNames returns the distinct shard files an index lists, refusing any
// name that is not a plain file in the same folder: the index comes from the network.
func readShardNames(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.NewDecoder(io.LimitReader(f, maxIndexLen)).Decode(&idx); err != nil {
		return nil, fmt.Errorf("%s: %w", indexFile, err)
	}
	seen := map[string]bool{}
	var names []string
	for _, s := range idx.WeightMap {
		if !plainName(s) {
			return nil, fmt.Errorf("%s: shard name %q is not a plain file name", indexFile, s)
		}
		if !seen[s] {
			seen[s] = true
			names = append(names, s)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s: empty weight_map", indexFile)
	}
	return names, nil
}

// plainName accepts a file name with no directory part.
func plainName(s string) bool {
	return s != "" && filepath.IsLocal(s) && !strings.ContainsAny(s, `/\`) && s != "." && s != ".."
}

// writeRef records which commit a branch or tag pointed to, like huggingface_hub
// (no trailing newline); a temp file and rename keep readers from seeing half of it.
func (c repoCache) writeRef(rev, commit string) error {
	p := c.refPath(rev)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".ref-*")
	if err != nil {
		return err
	}
	_, werr := tmp.WriteString(commit)
	cerr := tmp.Close()
	if werr == nil && cerr == nil {
		werr = os.Rename(tmp.Name(), p)
	}
	if werr != nil || cerr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing %s: %w", p, firstErr(werr, cerr))
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// link points snapshots/<commit>/<file> at the blob with a relative symlink, as
// huggingface_hub does; where symlinks are not allowed a hard link still works.
func (c repoCache) link(commit, file, blob string) error {
	dir := c.snapshot(commit)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	p := filepath.Join(dir, file)
	// Made under a temporary name and renamed over p: replaces a dangling link from an
	// earlier, cleaned-up blob, and concurrent downloads never see p missing or fail on it.
	tmp := fmt.Sprintf("%s.tmp-link-%x", p, rand.Uint64())
	target := filepath.Join("..", "..", "blobs", blob)
	if err := os.Symlink(target, tmp); err != nil {
		if lerr := os.Link(filepath.Join(c.blobDir(), blob), tmp); lerr != nil {
			return fmt.Errorf("linking %s: %w", p, err)
		}
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("linking %s: %w", p, err)
	}
	return nil
}
