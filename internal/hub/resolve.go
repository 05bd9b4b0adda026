package hub

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Resolve turns a --model value into a checkpoint directory. An existing
// directory is returned unchanged. Otherwise ref must be "org/name[@revision]"
// (revision defaults to main and may be a branch, tag or commit hash); a complete
// cached snapshot is returned without network access, and a missing or partial one
// is downloaded unless opts.Offline is set.
func Resolve(ctx context.Context, ref string, opts Options) (string, error) {
	if st, err := os.Stat(ref); err == nil {
		if !st.IsDir() {
			return "", fmt.Errorf("model %s: is a file; want a checkpoint directory or a Hugging Face id org/name[@revision]: %w", ref, ErrInvalidRef)
		}
		return ref, nil
	}
	r, err := parseRef(ref)
	if err != nil {
		return "", fmt.Errorf("model %q: no such directory, and not a Hugging Face id org/name[@revision] (%v): %w", ref, err, ErrInvalidRef)
	}
	opts = opts.withDefaults()
	cache := newRepoCache(opts.CacheDir, r)
	dir, missing, inCache := cache.cached(r.revision)
	if inCache && missing == "" {
		return dir, nil
	}
	c := &client{opts: opts, ref: r}
	if opts.Offline {
		return "", c.offlineError(cache, dir, missing, inCache)
	}
	return c.download(ctx, cache)
}

func (c *client) offlineError(cache repoCache, dir, missing string, inCache bool) error {
	where := fmt.Sprintf("revision %s is not in the Hugging Face cache (%s)", c.ref.revision, cache.root)
	if inCache {
		where = fmt.Sprintf("cached snapshot %s lacks %s", dir, missing)
	}
	return c.errorf("%s and offline mode (HF_HUB_OFFLINE) forbids downloading: %w", where, ErrOffline)
}

// download fetches what the revision's checkpoint needs into the cache and
// records the revision's commit under refs/.
func (c *client) download(ctx context.Context, cache repoCache) (string, error) {
	commit, files, err := c.revisionInfo(ctx)
	if err != nil {
		return "", err
	}
	want, err := c.plan(files)
	if err != nil {
		return "", err
	}
	for _, f := range want {
		if err := c.fetch(ctx, cache, commit, f); err != nil {
			return "", err
		}
	}
	snap := cache.snapshot(commit)
	if !slices.Contains(want, singleFile) {
		if err := c.fetchShards(ctx, cache, commit, files); err != nil {
			return "", err
		}
	}
	if c.ref.revision != commit {
		if err := cache.writeRef(c.ref.revision, commit); err != nil {
			return "", c.errorf("%v", err)
		}
	}
	if m := missingFile(snap); m != "" {
		return "", c.errorf("snapshot %s still lacks %s after download", snap, m)
	}
	return snap, nil
}

// plan picks the files to fetch before the shards: config, tokenizer files and
// either model.safetensors or the shard index. Other weights (*.bin, original/,
// consolidated.safetensors) are never needed to load the checkpoint.
func (c *client) plan(files []string) ([]string, error) {
	has := map[string]bool{}
	for _, f := range files {
		has[f] = true
	}
	if !has[configFile] {
		return nil, c.errorf("repository has no %s: not a transformers model", configFile)
	}
	want := []string{configFile}
	switch {
	case has[singleFile]:
		want = append(want, singleFile)
	case has[indexFile]:
		want = append(want, indexFile)
	default:
		return nil, c.errorf("repository has no %s or %s (only safetensors checkpoints are supported)", singleFile, indexFile)
	}
	for _, f := range files {
		if isExtraFile(f) {
			want = append(want, f)
		}
	}
	return want, nil
}

// fetchShards downloads the shards the (already fetched) index lists.
func (c *client) fetchShards(ctx context.Context, cache repoCache, commit string, files []string) error {
	shards, err := readShardNames(filepath.Join(cache.snapshot(commit), indexFile))
	if err != nil {
		return c.errorf("%v", err)
	}
	for _, s := range shards {
		if !slices.Contains(files, s) || !strings.HasSuffix(s, ".safetensors") {
			return c.errorf("%s lists shard %q, which the repository does not have", indexFile, s)
		}
		if err := c.fetch(ctx, cache, commit, s); err != nil {
			return err
		}
	}
	return nil
}
