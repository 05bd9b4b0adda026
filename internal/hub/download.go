package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

const (
	maxAttempts = 5
	maxAPIBody  = 32 << 20
)

// client talks to the Hub for one repository.
type client struct {
	opts Options
	ref  repoRef
}

// retryable marks failures worth another attempt: dropped connections, 5xx, 429.
type retryable struct{ err error }

func (r *retryable) Error() string { return r.err.Error() }
func (r *retryable) Unwrap() error { return r.err }

func (c *client) errorf(format string, args ...any) error {
	return fmt.Errorf("hub %s: "+format, append([]any{c.ref}, args...)...)
}

// revisionInfo asks the API which commit the revision is and which files it has.
func (c *client) revisionInfo(ctx context.Context) (commit string, files []string, err error) {
	u := c.opts.Endpoint + "/api/models/" + c.ref.org + "/" + c.ref.name + "/revision/" + url.PathEscape(c.ref.revision)
	var resp *http.Response
	for attempt := 1; ; attempt++ {
		resp, err = c.get(ctx, u, 0, "revision info", c.opts.ETagTimeout, "HF_HUB_ETAG_TIMEOUT")
		if err == nil || !shouldRetry(ctx, err, attempt) {
			break
		}
	}
	if err != nil {
		return "", nil, err
	}
	defer resp.Body.Close()
	var info struct {
		SHA      string `json:"sha"`
		Siblings []struct {
			RFilename string `json:"rfilename"`
		} `json:"siblings"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAPIBody)).Decode(&info); err != nil {
		return "", nil, c.errorf("revision info: bad JSON from %s: %v", c.opts.Endpoint, err)
	}
	if !isCommit(info.SHA) {
		return "", nil, c.errorf("revision info: %q is not a commit hash", info.SHA)
	}
	for _, s := range info.Siblings {
		files = append(files, s.RFilename)
	}
	return info.SHA, files, nil
}

// get sends an authenticated GET, asking for bytes from offset on when offset > 0.
// Any status but 200/206/416 becomes an error naming what was being fetched. The response
// must start within timeout, and its body may pause no longer than timeout between reads
// (env names the variable that sets it).
func (c *client) get(ctx context.Context, u string, offset int64, what string, timeout time.Duration, env string) (*http.Response, error) {
	req, err := c.newRequest(ctx, http.MethodGet, u, what)
	if err != nil {
		return nil, err
	}
	if offset > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
	}
	resp, err := c.do(c.opts.HTTPClient, req, timeout, env, what)
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusPartialContent, http.StatusRequestedRangeNotSatisfiable:
		return resp, nil
	}
	resp.Body.Close()
	return nil, c.statusError(what, resp)
}

func (c *client) newRequest(ctx context.Context, method, u, what string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, c.errorf("%s: %v", what, err)
	}
	req.Header.Set("User-Agent", "shortllm")
	if c.opts.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.opts.Token)
	}
	return req, nil
}

// do sends req and arms the timeout: for the response headers, then for every pause of
// the body (a stalled server fails instead of hanging forever).
func (c *client) do(cl *http.Client, req *http.Request, timeout time.Duration, env, what string) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	st := &stall{cancel: cancel}
	st.timer = time.AfterFunc(timeout, st.fire)
	resp, err := cl.Do(req.WithContext(ctx))
	if err != nil {
		st.timer.Stop()
		cancel()
		if st.fired.Load() {
			return nil, c.errorf("%s: no response within %s (set %s to wait longer)", what, timeout, env)
		}
		return nil, &retryable{c.errorf("%s: %v", what, err)}
	}
	st.timer.Reset(timeout)
	resp.Body = &idleBody{ReadCloser: resp.Body, st: st, timeout: timeout,
		err: c.errorf("%s: no data for %s (set %s to wait longer)", what, timeout, env)}
	return resp, nil
}

// stall cancels a request when its timer fires.
type stall struct {
	timer  *time.Timer
	cancel context.CancelFunc
	fired  atomic.Bool
}

func (s *stall) fire() {
	s.fired.Store(true)
	s.cancel()
}

// idleBody re-arms the stall timer after every read; a read cut short by it reports err.
type idleBody struct {
	io.ReadCloser
	st      *stall
	timeout time.Duration
	err     error
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if b.st.fired.Load() {
		return n, b.err
	}
	b.st.timer.Reset(b.timeout)
	return n, err
}

func (b *idleBody) Close() error {
	b.st.timer.Stop()
	err := b.ReadCloser.Close()
	b.st.cancel()
	return err
}

func (c *client) statusError(what string, resp *http.Response) error {
	msg := fmt.Sprintf("%s: HTTP %d", what, resp.StatusCode)
	if em := resp.Header.Get("X-Error-Message"); em != "" {
		msg += " (" + oneLine(em) + ")"
	}
	code := resp.StatusCode
	switch {
	case resp.Header.Get("X-Error-Code") == "RepoNotFound" && c.opts.Token == "":
		// The Hub answers 401 for private repositories too, so both are possible.
		return c.errorf("%s: %w (or private: set HF_TOKEN to a token with access)", msg, ErrNotFound)
	case code == http.StatusNotFound || strings.HasSuffix(resp.Header.Get("X-Error-Code"), "NotFound"):
		return c.errorf("%s: %w", msg, ErrNotFound)
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		hint := "set HF_TOKEN to a token with access to this repository (gated models also need their license accepted)"
		if c.opts.Token != "" {
			hint = "the token in HF_TOKEN was rejected or lacks access to this repository"
		}
		return c.errorf("%s: %w; %s", msg, ErrUnauthorized, hint)
	case code == http.StatusTooManyRequests || code >= 500:
		return &retryable{c.errorf("%s %s", msg, http.StatusText(code))}
	}
	return c.errorf("%s %s", msg, http.StatusText(code))
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// shouldRetry waits before the next attempt when err is transient.
func shouldRetry(ctx context.Context, err error, attempt int) bool {
	var r *retryable
	if !errors.As(err, &r) || attempt >= maxAttempts {
		return false
	}
	// The first retry is immediate: a dropped connection is the common case.
	t := time.NewTimer(time.Duration(attempt-1) * time.Second)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// fetch makes sure snapshots/<commit>/<file> exists, downloading its blob if needed.
func (c *client) fetch(ctx context.Context, cache repoCache, commit, file string) error {
	if exists(filepath.Join(cache.snapshot(commit), file)) {
		return nil
	}
	if err := os.MkdirAll(cache.blobDir(), 0o755); err != nil {
		return c.errorf("%v", err)
	}
	blob, err := c.downloadBlob(ctx, cache, commit, file)
	if err != nil {
		return err
	}
	if err := cache.link(commit, file, blob); err != nil {
		return c.errorf("%v", err)
	}
	return nil
}

func sizeOf(f *os.File) string {
	st, err := f.Stat()
	if err != nil {
		return "an unknown number of bytes"
	}
	return strconv.FormatInt(st.Size(), 10) + " bytes"
}

func (c *client) progress(file string, off int64, resp *http.Response) {
	if c.opts.Progress == nil {
		return
	}
	total := "unknown size"
	if resp.ContentLength >= 0 {
		total = fmt.Sprintf("%.1f MB", float64(off+resp.ContentLength)/1e6)
	}
	if off > 0 {
		fmt.Fprintf(c.opts.Progress, "hub: resuming %s %s at %.1f MB (%s)\n", c.ref, file, float64(off)/1e6, total)
		return
	}
	fmt.Fprintf(c.opts.Progress, "hub: downloading %s %s (%s)\n", c.ref, file, total)
}

// etagOf prefers X-Linked-Etag (the sha256 the Hub sends for LFS files on the
// redirect) over ETag, like huggingface_hub, so blob names match its cache.
func etagOf(resp *http.Response) string {
	for r := resp; r != nil; r = prevResponse(r) {
		if v := cleanETag(r.Header.Get("X-Linked-Etag")); v != "" {
			return v
		}
	}
	for r := resp; r != nil; r = prevResponse(r) {
		if v := cleanETag(r.Header.Get("ETag")); v != "" {
			return v
		}
	}
	return ""
}

func prevResponse(r *http.Response) *http.Response {
	if r.Request == nil {
		return nil
	}
	return r.Request.Response
}

// cleanETag strips W/ and quotes and rejects anything unusable as a file name.
func cleanETag(v string) string {
	v = strings.Trim(strings.TrimPrefix(strings.TrimSpace(v), "W/"), `"`)
	if v == "" || len(v) > 128 || v == "." || v == ".." {
		return ""
	}
	for _, c := range v {
		if !isAlnum(c) && c != '-' && c != '_' && c != '.' {
			return ""
		}
	}
	return v
}
