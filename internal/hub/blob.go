package hub

// One blob's download: HEAD for the metadata that proves the content (size, and the sha256
// of LFS files), a lock so that concurrent downloads of the same file take turns, a resumable
// partial file, and verification before the blob is committed under its name.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// fileMeta is what the Hub says about a file before it is downloaded.
type fileMeta struct {
	size   int64  // -1 when unknown
	sha256 string // LFS files: X-Linked-Etag, the content's sha256
	etag   string // the blob name: sha256 for LFS files, else the ETag (git blob id)
}

// head asks for a file's metadata without following the LFS redirect: the Hub puts
// X-Linked-Etag (sha256) and X-Linked-Size on the redirect itself, as huggingface_hub reads
// them.
func (c *client) head(ctx context.Context, u, file string) (fileMeta, error) {
	meta := fileMeta{size: -1}
	req, err := c.newRequest(ctx, http.MethodHead, u, file)
	if err != nil {
		return meta, err
	}
	noFollow := *c.opts.HTTPClient
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.do(&noFollow, req, c.opts.ETagTimeout, "HF_HUB_ETAG_TIMEOUT", file+" (metadata)")
	if err != nil {
		return meta, err
	}
	resp.Body.Close()
	linked := cleanETag(resp.Header.Get("X-Linked-Etag"))
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400 && linked == "":
		// A plain redirect (a renamed repository): ask where it leads.
		loc, err := resp.Location()
		if err != nil {
			return meta, c.errorf("%s: redirect without a location", file)
		}
		return c.head(ctx, loc.String(), file)
	case resp.StatusCode >= 400:
		return meta, c.statusError(file, resp)
	}
	if linked != "" {
		meta.sha256, meta.etag = strings.ToLower(linked), strings.ToLower(linked)
		meta.size = headerSize(resp.Header.Get("X-Linked-Size"))
		if !isSHA256(meta.sha256) {
			meta.sha256 = "" // not an LFS oid: only a name
		}
		return meta, nil
	}
	meta.etag = cleanETag(resp.Header.Get("ETag"))
	meta.size = headerSize(resp.Header.Get("Content-Length"))
	return meta, nil
}

func headerSize(v string) int64 {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

func isSHA256(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == sha256.Size
}

// downloadBlob downloads one file into blobs/ and returns the blob's name. The partial
// file is keyed by commit and file name, which pin its content, so an interrupted download
// (this run or an earlier one) resumes where it stopped; a lock file beside it makes a
// second process wait instead of writing into the same file.
func (c *client) downloadBlob(ctx context.Context, cache repoCache, commit, file string) (string, error) {
	u := c.opts.Endpoint + "/" + c.ref.org + "/" + c.ref.name + "/resolve/" + commit + "/" + url.PathEscape(file)
	var meta fileMeta
	var err error
	for attempt := 1; ; attempt++ {
		if meta, err = c.head(ctx, u, file); err == nil || !shouldRetry(ctx, err, attempt) {
			break
		}
	}
	if err != nil {
		return "", err
	}
	key := sha256.Sum256([]byte(commit + "/" + file))
	partial := filepath.Join(cache.blobDir(), hex.EncodeToString(key[:])+".incomplete")
	unlock, err := lockPath(partial + ".lock")
	if err != nil {
		return "", c.errorf("%s: %v", file, err)
	}
	defer unlock()
	if meta.etag != "" && blobMatches(filepath.Join(cache.blobDir(), meta.etag), meta) {
		return meta.etag, nil // another process finished it while we waited
	}
	for attempt := 1; ; attempt++ {
		etag, err := c.fetchOnce(ctx, u, partial, file, meta)
		if err == nil {
			err = c.verify(partial, file, meta)
		}
		if err == nil {
			return c.finishBlob(cache, partial, file, meta, etag)
		}
		if !shouldRetry(ctx, err, attempt) {
			return "", err
		}
	}
}

// lockPath takes an exclusive flock on path, waiting for the holder; the returned function
// releases it.
func lockPath(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

// fetchOnce appends the rest of the file to partial and returns the GET's ETag.
func (c *client) fetchOnce(ctx context.Context, u, partial, file string, meta fileMeta) (string, error) {
	f, err := os.OpenFile(partial, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return "", c.errorf("%s: %v", file, err)
	}
	defer f.Close()
	off, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return "", c.errorf("%s: %v", file, err)
	}
	if meta.size >= 0 && off > meta.size {
		off, err = restart(f) // longer than the file: not a prefix of it
		if err != nil {
			return "", c.errorf("%s: %v", file, err)
		}
	}
	if meta.size >= 0 && off == meta.size {
		return meta.etag, nil // complete; verify decides
	}
	resp, err := c.get(ctx, u, off, file, c.opts.DownloadTimeout, "HF_HUB_DOWNLOAD_TIMEOUT")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	off, done, err := c.startOffset(resp, f, off, file)
	if err != nil || done {
		return etagOf(resp), err
	}
	c.progress(file, off, resp)
	if _, err := io.Copy(f, resp.Body); err != nil {
		return "", &retryable{c.errorf("%s: download interrupted after %s: %v", file, sizeOf(f), err)}
	}
	if err := f.Sync(); err != nil {
		return "", c.errorf("%s: %v", file, err)
	}
	return etagOf(resp), nil
}

func restart(f *os.File) (int64, error) {
	if err := f.Truncate(0); err != nil {
		return 0, err
	}
	return f.Seek(0, io.SeekStart)
}

// startOffset checks how the server answered a (possibly ranged) request and returns where
// its body starts in the file; done means the file was complete. A 200 to a ranged request
// carries the whole file: the partial file is truncated and written from the start.
func (c *client) startOffset(resp *http.Response, f *os.File, off int64, file string) (int64, bool, error) {
	switch resp.StatusCode {
	case http.StatusPartialContent:
		if strings.HasPrefix(resp.Header.Get("Content-Range"), "bytes "+strconv.FormatInt(off, 10)+"-") {
			return off, false, nil
		}
	case http.StatusRequestedRangeNotSatisfiable:
		// An earlier run may have died between the last byte and the rename.
		if resp.Header.Get("Content-Range") == "bytes */"+strconv.FormatInt(off, 10) {
			return off, true, nil
		}
	case http.StatusOK:
		if off == 0 {
			return 0, false, nil
		}
	}
	if _, err := restart(f); err != nil {
		return 0, false, c.errorf("%s: %v", file, err)
	}
	if resp.StatusCode == http.StatusOK {
		return 0, false, nil
	}
	return 0, false, &retryable{c.errorf("%s: unexpected HTTP %d to a range request", file, resp.StatusCode)}
}

// verify checks the finished partial file against the metadata: its size, and for LFS files
// its sha256. A mismatch deletes the partial file (the next attempt starts clean) and is
// retried; a file is never committed on the word of a connection that merely closed.
func (c *client) verify(partial, file string, meta fileMeta) error {
	st, err := os.Stat(partial)
	if err != nil {
		return c.errorf("%s: %v", file, err)
	}
	if meta.size >= 0 && st.Size() != meta.size {
		os.Remove(partial)
		return &retryable{c.errorf("%s: downloaded %d bytes, the Hub announced %d", file, st.Size(), meta.size)}
	}
	if meta.sha256 == "" {
		return nil
	}
	sum, err := sha256File(partial)
	if err != nil {
		return c.errorf("%s: %v", file, err)
	}
	if sum != meta.sha256 {
		os.Remove(partial)
		return &retryable{c.errorf("%s: sha256 %s differs from the Hub's %s", file, sum, meta.sha256)}
	}
	return nil
}

// blobMatches reports whether a committed blob exists with the announced size and hash.
func blobMatches(path string, meta fileMeta) bool {
	st, err := os.Stat(path)
	if err != nil || (meta.size >= 0 && st.Size() != meta.size) {
		return false
	}
	if meta.sha256 == "" {
		return meta.size >= 0
	}
	sum, err := sha256File(path)
	return err == nil && sum == meta.sha256
}

// finishBlob renames the verified download to its blob name: the sha256 (LFS), the ETag, or
// the content's sha256 when the server sent neither. A blob of that name that already exists
// with other content (two files given one ETag) is an error, never a silent link to the
// wrong bytes.
func (c *client) finishBlob(cache repoCache, partial, file string, meta fileMeta, getETag string) (string, error) {
	name := meta.etag
	if name == "" {
		name = getETag
	}
	if name == "" {
		sum, err := sha256File(partial)
		if err != nil {
			return "", c.errorf("%v", err)
		}
		name = sum
	}
	blob := filepath.Join(cache.blobDir(), name)
	if _, err := os.Stat(blob); err == nil {
		same, err := sameContent(blob, partial)
		if err != nil {
			return "", c.errorf("%s: %v", file, err)
		}
		if !same {
			os.Remove(partial)
			return "", c.errorf("%s: the Hub gave ETag %s to a file whose content differs from the cached blob of that name", file, name)
		}
		os.Remove(partial)
		return name, nil
	}
	if err := os.Rename(partial, blob); err != nil {
		return "", c.errorf("%v", err)
	}
	return name, nil
}

func sameContent(a, b string) (bool, error) {
	sa, err := sha256File(a)
	if err != nil {
		return false, err
	}
	sb, err := sha256File(b)
	return err == nil && sa == sb, err
}

func sha256File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
