package hub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The hub rows of issue 13: every misbehaving server either yields the exact bytes or an
// error; nothing wrong is ever committed to the cache.

// TestRangeAnswered200RestartsCleanly: a partial file from an earlier run, and a server that
// answers the Range request with the whole file (200): the file is rewritten from byte 0,
// not appended to (which left a hole of zeros).
func TestRangeAnswered200RestartsCleanly(t *testing.T) {
	for _, lfs := range []bool{false, true} {
		files := singleRepo(21)
		h := newFakeHub(t, map[string]map[string][]byte{commitA: files}, map[string]string{"main": commitA})
		h.lfs["model.safetensors"] = lfs
		h.ignoreRange["model.safetensors"] = true
		cache := t.TempDir()
		blobs := filepath.Join(cache, "models--acme--tiny", "blobs")
		os.MkdirAll(blobs, 0o755)
		key := sha256.Sum256([]byte(commitA + "/model.safetensors"))
		os.WriteFile(filepath.Join(blobs, hex.EncodeToString(key[:])+".incomplete"), files["model.safetensors"][:777], 0o644)
		dir, err := Resolve(context.Background(), "acme/tiny", testOpts(h, cache))
		if err != nil {
			t.Fatal(err)
		}
		checkSnapshot(t, dir, files)
		if !hasRange(h.requests(), "model.safetensors", "bytes=777-") {
			t.Errorf("lfs=%v: the partial file was not offered for resuming", lfs)
		}
	}
}

// TestShort200WithoutLengthIsNotCommitted: a 200 without Content-Length that ends early
// looks complete to HTTP; the size announced by HEAD (X-Linked-Size, Content-Length) catches
// it and the download is redone.
func TestShort200WithoutLengthIsNotCommitted(t *testing.T) {
	for _, lfs := range []bool{false, true} {
		files := singleRepo(22)
		h := newFakeHub(t, map[string]map[string][]byte{commitA: files}, map[string]string{"main": commitA})
		h.lfs["model.safetensors"] = lfs
		h.shortOnce["model.safetensors"] = true
		dir, err := Resolve(context.Background(), "acme/tiny", testOpts(h, t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		checkSnapshot(t, dir, files)
		if h.shortOnce["model.safetensors"] {
			t.Fatal("the short reply was never sent: the test proves nothing")
		}
	}
}

// TestConcurrentDownloadsOfOneBlob: two downloads of the same model into one cache at once
// take turns on each blob (a lock per blob) and both see the exact bytes.
func TestConcurrentDownloadsOfOneBlob(t *testing.T) {
	files := singleRepo(23)
	files["model.safetensors"] = randBytes(3_000_000, 23)
	h := newFakeHub(t, map[string]map[string][]byte{commitA: files}, map[string]string{"main": commitA})
	h.lfs["model.safetensors"] = true
	h.ignoreRange["model.safetensors"] = true
	cache := t.TempDir()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	dirs := make([]string, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dirs[i], errs[i] = Resolve(context.Background(), "acme/tiny", testOpts(h, cache))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("download %d: %v", i, err)
		}
		checkSnapshot(t, dirs[i], files)
	}
}

// TestSharedETagWithOtherContentIsAnError: two files the server gives one ETag must not be
// linked to one blob.
func TestSharedETagWithOtherContentIsAnError(t *testing.T) {
	files := singleRepo(24)
	h := newFakeHub(t, map[string]map[string][]byte{commitA: files}, map[string]string{"main": commitA})
	h.constETag = "0123456789abcdef0123456789abcdef01234567"
	_, err := Resolve(context.Background(), "acme/tiny", testOpts(h, t.TempDir()))
	if err == nil || !strings.Contains(err.Error(), "content differs") {
		t.Fatalf("got %v; want an error about one ETag for different content", err)
	}
}

// TestTokenDroppedOnRedirectToAnotherPort: the LFS redirect goes to the same host on another
// port; the bearer token must not follow (net/http would send it).
func TestTokenDroppedOnRedirectToAnotherPort(t *testing.T) {
	files := singleRepo(25)
	h := newFakeHub(t, map[string]map[string][]byte{commitA: files}, map[string]string{"main": commitA})
	h.lfs["model.safetensors"] = true
	h.token = "s3cret"
	other := httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(other.Close)
	h.cdn = other.URL
	opts := testOpts(h, t.TempDir())
	opts.Token = "s3cret"
	if _, err := Resolve(context.Background(), "acme/tiny", opts); err != nil {
		t.Fatal(err)
	}
	sawCDN := false
	for _, r := range h.requests() {
		if strings.HasPrefix(r.path, "/cdn/") {
			sawCDN = true
			if r.auth != "" {
				t.Errorf("token sent to the other origin: %+v", r)
			}
		}
	}
	if !sawCDN {
		t.Fatal("no request reached the other port")
	}
}

// TestStalledServerTimesOut: a server that accepts the request and sends nothing fails after
// the configured timeout, naming the variable to raise (it used to hang forever).
func TestStalledServerTimesOut(t *testing.T) {
	for method, env := range map[string]string{http.MethodHead: "HF_HUB_ETAG_TIMEOUT", http.MethodGet: "HF_HUB_DOWNLOAD_TIMEOUT"} {
		files := singleRepo(26)
		h := newFakeHub(t, map[string]map[string][]byte{commitA: files}, map[string]string{"main": commitA})
		h.stall["model.safetensors"] = method
		opts := testOpts(h, t.TempDir())
		opts.ETagTimeout, opts.DownloadTimeout = 200*time.Millisecond, 200*time.Millisecond
		start := time.Now()
		_, err := Resolve(context.Background(), "acme/tiny", opts)
		if err == nil || !strings.Contains(err.Error(), env) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("%s stall: got %v; want a one-line error naming %s", method, err, env)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s stall: took %v", method, d)
		}
	}
}

func TestOptionsFromEnv_Timeouts(t *testing.T) {
	t.Setenv("HF_HUB_ETAG_TIMEOUT", "2.5")
	t.Setenv("HF_HUB_DOWNLOAD_TIMEOUT", "x")
	o := OptionsFromEnv().withDefaults()
	if o.ETagTimeout != 2500*time.Millisecond || o.DownloadTimeout != DefaultTimeout {
		t.Errorf("etag %v, download %v", o.ETagTimeout, o.DownloadTimeout)
	}
}
