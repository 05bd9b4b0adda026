package hub

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	commitA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	commitB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func randBytes(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// singleRepo has model.safetensors plus files that must never be downloaded.
func singleRepo(seed uint64) map[string][]byte {
	return map[string][]byte{
		"config.json":               []byte(`{"model_type":"llama"}`),
		"generation_config.json":    []byte(`{}`),
		"tokenizer.json":            []byte(`{"version":"1.0"}`),
		"tokenizer_config.json":     []byte(`{}`),
		"special_tokens_map.json":   []byte(`{}`),
		"model.safetensors":         randBytes(300_000, seed),
		"pytorch_model.bin":         []byte("never fetch me"),
		"original/consolidated.pth": []byte("never fetch me"),
		"README.md":                 []byte("# tiny"),
	}
}

func testOpts(h *fakeHub, cache string) Options {
	return Options{CacheDir: cache, Endpoint: h.srv.URL, HTTPClient: h.srv.Client()}
}

func TestDownloadBuildsCacheLayout(t *testing.T) {
	files := singleRepo(1)
	h := newFakeHub(t, map[string]map[string][]byte{commitA: files}, map[string]string{"main": commitA})
	h.lfs["model.safetensors"] = true
	h.token = "s3cret"
	cache := t.TempDir()
	opts := testOpts(h, cache)
	opts.Token = "s3cret"
	var progress bytes.Buffer
	opts.Progress = &progress

	dir, err := Resolve(context.Background(), "acme/tiny", opts)
	if err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(cache, "models--acme--tiny")
	if dir != filepath.Join(repo, "snapshots", commitA) {
		t.Fatalf("dir = %s", dir)
	}
	checkSnapshot(t, dir, files)
	if ref, _ := os.ReadFile(filepath.Join(repo, "refs", "main")); string(ref) != commitA {
		t.Errorf("refs/main = %q", ref)
	}
	sum := sha256.Sum256(files["model.safetensors"])
	if target, _ := os.Readlink(filepath.Join(dir, "model.safetensors")); target != filepath.Join("..", "..", "blobs", hex.EncodeToString(sum[:])) {
		t.Errorf("LFS file should link to its sha256 blob, got %q", target)
	}
	for _, r := range h.requests() {
		if strings.Contains(r.path, ".bin") || strings.Contains(r.path, "original") || strings.Contains(r.path, "README") {
			t.Errorf("fetched unneeded %s", r.path)
		}
		if !strings.HasPrefix(r.path, "/cdn/") && r.auth != "Bearer s3cret" {
			t.Errorf("%s sent without token (%q)", r.path, r.auth)
		}
	}
	if !strings.Contains(progress.String(), "model.safetensors") {
		t.Errorf("no progress for model.safetensors: %q", progress.String())
	}

	// Second call: resolved from the cache without a single request.
	n := len(h.requests())
	again, err := Resolve(context.Background(), "acme/tiny", opts)
	if err != nil || again != dir || len(h.requests()) != n {
		t.Errorf("second Resolve: %s, %v, %d new requests", again, err, len(h.requests())-n)
	}
	opts.Offline = true
	if again, err := Resolve(context.Background(), "acme/tiny", opts); err != nil || again != dir {
		t.Errorf("offline Resolve: %s, %v", again, err)
	}
}

// checkSnapshot verifies that exactly the checkpoint files are present, as
// relative symlinks into blobs/, with the served content, and no partial files.
func checkSnapshot(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	got := map[string]bool{}
	for _, e := range entries {
		got[e.Name()] = true
		p := filepath.Join(dir, e.Name())
		target, err := os.Readlink(p)
		if err != nil || !strings.HasPrefix(target, filepath.Join("..", "..", "blobs")+string(filepath.Separator)) {
			t.Errorf("%s: not a relative blob symlink (%q, %v)", e.Name(), target, err)
		}
		if data, err := os.ReadFile(p); err != nil || !bytes.Equal(data, files[e.Name()]) {
			t.Errorf("%s: content differs (%v)", e.Name(), err)
		}
	}
	for name := range files {
		if want := name == "config.json" || isExtraFile(name) || strings.HasSuffix(name, ".safetensors") ||
			name == indexFile; want != got[name] && name != "consolidated.safetensors" {
			t.Errorf("%s: present=%v, want %v", name, got[name], want)
		}
	}
	partials, _ := filepath.Glob(filepath.Join(dir, "..", "..", "blobs", "*.incomplete"))
	if len(partials) != 0 {
		t.Errorf("left partial downloads: %v", partials)
	}
}

func TestShardedDownload(t *testing.T) {
	files := map[string][]byte{
		"config.json":                      []byte(`{}`),
		"tokenizer.model":                  []byte("spm"),
		indexFile:                          []byte(`{"metadata":{"total_size":7},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors","c":"model-00002-of-00002.safetensors"}}`),
		"model-00001-of-00002.safetensors": randBytes(1000, 2),
		"model-00002-of-00002.safetensors": randBytes(2000, 3),
		"consolidated.safetensors":         []byte("duplicate weights in another layout"),
	}
	h := newFakeHub(t, map[string]map[string][]byte{commitA: files}, map[string]string{"main": commitA})
	dir, err := Resolve(context.Background(), "acme/tiny", testOpts(h, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	checkSnapshot(t, dir, files)
	if _, err := os.Lstat(filepath.Join(dir, "consolidated.safetensors")); err == nil {
		t.Error("downloaded consolidated.safetensors, which the index does not list")
	}
}

func TestResumeInterruptedDownload(t *testing.T) {
	for _, lfs := range []bool{false, true} {
		t.Run(map[bool]string{false: "direct", true: "redirected"}[lfs], func(t *testing.T) {
			files := singleRepo(4)
			h := newFakeHub(t, map[string]map[string][]byte{commitA: files}, map[string]string{"main": commitA})
			h.lfs["model.safetensors"] = lfs
			h.cutOnce["model.safetensors"] = true
			dir, err := Resolve(context.Background(), "acme/tiny", testOpts(h, t.TempDir()))
			if err != nil {
				t.Fatal(err)
			}
			checkSnapshot(t, dir, files)
			// The server sent half the file before dropping the connection; the
			// client resumes from however much of it arrived.
			if !resumed(h.requests(), "model.safetensors", len(files["model.safetensors"])/2) {
				t.Errorf("no resumed Range request: %+v", h.requests())
			}
		})
	}
}

// A partial file left by an earlier, killed run is continued, not restarted.
func TestResumeFromEarlierRun(t *testing.T) {
	files := singleRepo(5)
	h := newFakeHub(t, map[string]map[string][]byte{commitA: files}, map[string]string{"main": commitA})
	cache := t.TempDir()
	blobs := filepath.Join(cache, "models--acme--tiny", "blobs")
	os.MkdirAll(blobs, 0o755)
	key := sha256.Sum256([]byte(commitA + "/model.safetensors"))
	half := files["model.safetensors"][:1234]
	os.WriteFile(filepath.Join(blobs, hex.EncodeToString(key[:])+".incomplete"), half, 0o644)
	dir, err := Resolve(context.Background(), "acme/tiny", testOpts(h, cache))
	if err != nil {
		t.Fatal(err)
	}
	checkSnapshot(t, dir, files)
	if !hasRange(h.requests(), "model.safetensors", "bytes=1234-") {
		t.Errorf("did not resume at 1234: %+v", h.requests())
	}
}

func resumed(reqs []recorded, file string, max int) bool {
	for _, r := range reqs {
		var from int
		if strings.HasSuffix(r.path, "/"+file) && r.rangeHdr != "" {
			n, err := fmt.Sscanf(r.rangeHdr, "bytes=%d-", &from)
			if n == 1 && err == nil && from > 0 && from <= max {
				return true
			}
		}
	}
	return false
}

func hasRange(reqs []recorded, file, want string) bool {
	for _, r := range reqs {
		if strings.HasSuffix(r.path, "/"+file) && r.rangeHdr == want {
			return true
		}
	}
	return false
}

func checkOneLine(t *testing.T, err error, sentinel error, parts ...string) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Fatalf("got %v, want errors.Is %v", err, sentinel)
	}
	msg := err.Error()
	if strings.ContainsAny(msg, "\r\n") {
		t.Errorf("multi-line error: %q", msg)
	}
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			t.Errorf("error %q lacks %q", msg, p)
		}
	}
}

func TestUnauthorized(t *testing.T) {
	h := newFakeHub(t, map[string]map[string][]byte{commitA: singleRepo(6)}, map[string]string{"main": commitA})
	h.token = "right"
	opts := testOpts(h, t.TempDir())
	_, err := Resolve(context.Background(), "acme/tiny", opts)
	checkOneLine(t, err, ErrUnauthorized, "acme/tiny", "401", "set HF_TOKEN", "restricted")
	opts.Token = "wrong"
	_, err = Resolve(context.Background(), "acme/tiny", opts)
	checkOneLine(t, err, ErrUnauthorized, "acme/tiny", "401", "HF_TOKEN was rejected")
}

func TestNotFound(t *testing.T) {
	h := newFakeHub(t, map[string]map[string][]byte{commitA: singleRepo(7)}, map[string]string{"main": commitA})
	_, err := Resolve(context.Background(), "acme/nope", testOpts(h, t.TempDir()))
	checkOneLine(t, err, ErrNotFound, "acme/nope", "404", "not found")
	_, err = Resolve(context.Background(), "acme/tiny@no-such-branch", testOpts(h, t.TempDir()))
	checkOneLine(t, err, ErrNotFound, "acme/tiny@no-such-branch", "404")
}

func TestOfflineMissingCache(t *testing.T) {
	h := newFakeHub(t, nil, nil)
	opts := testOpts(h, t.TempDir())
	opts.Offline = true
	_, err := Resolve(context.Background(), "acme/tiny", opts)
	checkOneLine(t, err, ErrOffline, "acme/tiny", "HF_HUB_OFFLINE", opts.CacheDir)
	if len(h.requests()) != 0 {
		t.Errorf("offline mode made requests: %+v", h.requests())
	}
}

func TestOfflineIncompleteSnapshot(t *testing.T) {
	cache := t.TempDir()
	snap := filepath.Join(cache, "models--acme--tiny", "snapshots", commitA)
	os.MkdirAll(snap, 0o755)
	os.WriteFile(filepath.Join(snap, "config.json"), []byte(`{}`), 0o644)
	_, err := Resolve(context.Background(), "acme/tiny@"+commitA, Options{CacheDir: cache, Offline: true})
	checkOneLine(t, err, ErrOffline, "lacks model.safetensors")
}

func TestRevisions(t *testing.T) {
	v1, main := singleRepo(8), singleRepo(9)
	h := newFakeHub(t, map[string]map[string][]byte{commitA: main, commitB: v1},
		map[string]string{"main": commitA, "v1.0": commitB, "refs/pr/1": commitB})
	cache := t.TempDir()
	opts := testOpts(h, cache)
	dir, err := Resolve(context.Background(), "acme/tiny@v1.0", opts)
	if err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(cache, "models--acme--tiny")
	if dir != filepath.Join(repo, "snapshots", commitB) {
		t.Fatalf("v1.0 resolved to %s", dir)
	}
	checkSnapshot(t, dir, v1)
	if ref, _ := os.ReadFile(filepath.Join(repo, "refs", "v1.0")); string(ref) != commitB {
		t.Errorf("refs/v1.0 = %q", ref)
	}
	if _, err := Resolve(context.Background(), "acme/tiny@refs/pr/1", opts); err != nil {
		t.Errorf("refs/pr/1: %v", err)
	}
	if ref, _ := os.ReadFile(filepath.Join(repo, "refs", "refs", "pr", "1")); string(ref) != commitB {
		t.Errorf("refs/refs/pr/1 = %q", ref)
	}
	opts.Offline = true
	if got, err := Resolve(context.Background(), "acme/tiny@"+commitB, opts); err != nil || got != dir {
		t.Errorf("commit revision offline: %s, %v", got, err)
	}
	if _, err := Resolve(context.Background(), "acme/tiny", opts); !errors.Is(err, ErrOffline) {
		t.Errorf("main was never downloaded, offline should fail: %v", err)
	}
	opts.Offline = false
	dirA, err := Resolve(context.Background(), "acme/tiny@"+commitA, opts)
	if err != nil || dirA != filepath.Join(repo, "snapshots", commitA) {
		t.Fatalf("commit revision: %s, %v", dirA, err)
	}
	if _, err := os.Stat(filepath.Join(repo, "refs", commitA)); err == nil {
		t.Error("a commit revision should not create a ref")
	}
}

func TestResolveLocalAndInvalid(t *testing.T) {
	dir := t.TempDir()
	if got, err := Resolve(context.Background(), dir, Options{Offline: true}); err != nil || got != dir {
		t.Errorf("local dir: %s, %v", got, err)
	}
	file := filepath.Join(dir, "f")
	os.WriteFile(file, nil, 0o644)
	_, err := Resolve(context.Background(), file, Options{Offline: true})
	checkOneLine(t, err, ErrInvalidRef, file)
	_, err = Resolve(context.Background(), "./no/such/dir/here", Options{Offline: true})
	checkOneLine(t, err, ErrInvalidRef, "./no/such/dir/here")
}

func TestIsHubID(t *testing.T) {
	dir := t.TempDir()
	for s, want := range map[string]bool{
		"meta-llama/Llama-3.2-1B": true, "acme/tiny@v1.0": true, "acme/tiny@refs/pr/1": true,
		"acme/tiny@" + commitA: true, "a/b_c.d": true,
		"tiny": false, "a/b/c": false, "/abs/path": false, "./rel": false, "../x/y": false,
		"a--b/c": false, "a/.b": false, "a/b-": false, "a/b@": false, "a/b@../x": false,
		"a/b@/x": false, "a b/c": false, "": false, dir: false,
	} {
		if got := IsHubID(s); got != want {
			t.Errorf("IsHubID(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestOptionsFromEnv(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HF_HUB_CACHE", "")
	t.Setenv("HF_HOME", home)
	t.Setenv("HF_ENDPOINT", "https://mirror.example")
	t.Setenv("HF_TOKEN", "")
	t.Setenv("HF_TOKEN_PATH", "")
	t.Setenv("HF_HUB_OFFLINE", "1")
	os.WriteFile(filepath.Join(home, "token"), []byte("from-file\n"), 0o600)
	o := OptionsFromEnv()
	if o.CacheDir != filepath.Join(home, "hub") || o.Endpoint != "https://mirror.example" || o.Token != "from-file" || !o.Offline {
		t.Errorf("%+v", o)
	}
	t.Setenv("HF_HUB_CACHE", "/c")
	t.Setenv("HF_TOKEN", "tok")
	t.Setenv("HF_HUB_OFFLINE", "0")
	o = OptionsFromEnv()
	if o.CacheDir != "/c" || o.Token != "tok" || o.Offline {
		t.Errorf("%+v", o)
	}
	t.Setenv("HF_HUB_CACHE", "")
	t.Setenv("HF_HOME", "")
	t.Setenv("XDG_CACHE_HOME", "/xdg")
	if o = OptionsFromEnv(); o.CacheDir != filepath.Join("/xdg", "huggingface", "hub") {
		t.Errorf("XDG: %+v", o)
	}
}
