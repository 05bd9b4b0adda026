package hub

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeHub serves one repository the way huggingface.co does: the revision API,
// resolve URLs with Range support, and LFS files redirected to a "CDN" path with
// X-Linked-Etag on the redirect.
type fakeHub struct {
	org, name string
	refs      map[string]string            // branch/tag → commit
	files     map[string]map[string][]byte // commit → file → content
	lfs       map[string]bool              // files served through the redirect
	token     string                       // when set, required
	cutOnce   map[string]bool              // files whose first download dies halfway
	// Misbehaviours of issue 13 (all keyed by file name):
	ignoreRange map[string]bool   // answer a Range request with 200 and the whole file
	shortOnce   map[string]bool   // first GET: 200, no Content-Length, half the file, clean end
	stall       map[string]string // "HEAD" or "GET": send nothing until the client gives up
	constETag   string            // every non-LFS file gets this ETag
	cdn         string            // LFS redirects go to this origin (default: the same server)

	mu   sync.Mutex
	reqs []recorded
	srv  *httptest.Server
}

type recorded struct{ path, rangeHdr, auth string }

func newFakeHub(t *testing.T, commits map[string]map[string][]byte, refs map[string]string) *fakeHub {
	h := &fakeHub{org: "acme", name: "tiny", refs: refs, files: commits,
		lfs: map[string]bool{}, cutOnce: map[string]bool{}, ignoreRange: map[string]bool{},
		shortOnce: map[string]bool{}, stall: map[string]string{}}
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *fakeHub) requests() []recorded {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]recorded(nil), h.reqs...)
}

func (h *fakeHub) serve(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.reqs = append(h.reqs, recorded{r.URL.Path, r.Header.Get("Range"), r.Header.Get("Authorization")})
	h.mu.Unlock()
	if h.token != "" && r.Header.Get("Authorization") != "Bearer "+h.token && !strings.HasPrefix(r.URL.Path, "/cdn/") {
		w.Header().Set("X-Error-Message", "Access to model acme/tiny is restricted.")
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	repo := "/" + h.org + "/" + h.name + "/"
	switch {
	case strings.HasPrefix(r.URL.Path, "/api/models"+repo+"revision/"):
		h.serveAPI(w, strings.TrimPrefix(r.URL.Path, "/api/models"+repo+"revision/"))
	case strings.HasPrefix(r.URL.Path, repo+"resolve/"):
		h.serveFile(w, r, strings.TrimPrefix(r.URL.Path, repo+"resolve/"), false)
	case strings.HasPrefix(r.URL.Path, "/cdn/"):
		h.serveFile(w, r, strings.TrimPrefix(r.URL.Path, "/cdn/"), true)
	default:
		w.Header().Set("X-Error-Code", "RepoNotFound")
		http.Error(w, "Repository not found", http.StatusNotFound)
	}
}

func (h *fakeHub) serveAPI(w http.ResponseWriter, rev string) {
	commit, ok := h.refs[rev]
	if _, isCommit := h.files[rev]; isCommit {
		commit, ok = rev, true
	}
	if !ok {
		w.Header().Set("X-Error-Code", "RevisionNotFound")
		http.Error(w, "Invalid rev id", http.StatusNotFound)
		return
	}
	type sibling struct {
		RFilename string `json:"rfilename"`
	}
	info := struct {
		ID       string    `json:"id"`
		SHA      string    `json:"sha"`
		Siblings []sibling `json:"siblings"`
	}{ID: h.org + "/" + h.name, SHA: commit}
	for name := range h.files[commit] {
		info.Siblings = append(info.Siblings, sibling{name})
	}
	json.NewEncoder(w).Encode(info)
}

func (h *fakeHub) serveFile(w http.ResponseWriter, r *http.Request, rest string, cdn bool) {
	commit, file, _ := strings.Cut(rest, "/")
	data, ok := h.files[commit][file]
	if !ok {
		w.Header().Set("X-Error-Code", "EntryNotFound")
		http.Error(w, "Entry not found", http.StatusNotFound)
		return
	}
	if h.stall[file] == r.Method {
		<-r.Context().Done() // the client's timeout ends it
		return
	}
	if h.lfs[file] && !cdn {
		sum := sha256.Sum256(data)
		w.Header().Set("X-Linked-Etag", `"`+hex.EncodeToString(sum[:])+`"`)
		w.Header().Set("X-Linked-Size", fmt.Sprint(len(data)))
		http.Redirect(w, r, h.cdn+"/cdn/"+rest, http.StatusFound)
		return
	}
	if r.Method == http.MethodGet && h.take(h.shortOnce, file) {
		w.WriteHeader(http.StatusOK) // no Content-Length: chunked, ends cleanly after half
		w.Write(data[:len(data)/2])
		return
	}
	if r.Method == http.MethodGet && h.ignoreRange[file] && r.Header.Get("Range") != "" {
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.Write(data)
		return
	}
	if r.Method == http.MethodGet && h.takeCut(commit+"/"+file) {
		// Promise the whole file, send half, then drop the connection.
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.Write(data[:len(data)/2])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
	if !cdn {
		sum := sha1.Sum(data)
		w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:])+`"`)
		if h.constETag != "" {
			w.Header().Set("ETag", `"`+h.constETag+`"`)
		}
	} else {
		w.Header().Set("ETag", `"cdn-etag-that-must-not-be-used"`)
	}
	http.ServeContent(w, r, file, time.Time{}, bytes.NewReader(data))
}

func (h *fakeHub) take(m map[string]bool, file string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if m[file] {
		m[file] = false
		return true
	}
	return false
}

func (h *fakeHub) takeCut(key string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, file, _ := strings.Cut(key, "/")
	if h.cutOnce[file] {
		h.cutOnce[file] = false
		return true
	}
	return false
}
