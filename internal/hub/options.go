package hub

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// DefaultEndpoint is the Hugging Face Hub.
const DefaultEndpoint = "https://huggingface.co"

// Sentinels for errors.Is; every error also names the model id.
var (
	ErrInvalidRef   = errors.New("not a directory or Hugging Face id")
	ErrNotFound     = errors.New("not found")
	ErrUnauthorized = errors.New("access denied")
	ErrOffline      = errors.New("not available offline")
)

// Options configures Resolve. The zero value works: it uses the cache directory
// from the environment, the public endpoint, no token and http.DefaultClient.
type Options struct {
	CacheDir   string       // huggingface_hub cache (…/hub); "" means from the environment
	Endpoint   string       // "" means $HF_ENDPOINT or DefaultEndpoint
	Token      string       // sent as a Bearer token when set
	Offline    bool         // never touch the network
	HTTPClient *http.Client // nil means http.DefaultClient
	Progress   io.Writer    // optional download progress lines
	// ETagTimeout bounds each metadata request (revision info, HEAD of a file);
	// DownloadTimeout bounds the wait for a download's response and every pause between
	// bytes of its body. 0 means DefaultTimeout. Their environment variables are
	// huggingface_hub's: HF_HUB_ETAG_TIMEOUT and HF_HUB_DOWNLOAD_TIMEOUT (seconds).
	ETagTimeout, DownloadTimeout time.Duration
}

// DefaultTimeout is huggingface_hub's default for both HF_HUB_ETAG_TIMEOUT and
// HF_HUB_DOWNLOAD_TIMEOUT.
const DefaultTimeout = 10 * time.Second

// OptionsFromEnv reads the variables huggingface_hub honours: HF_HUB_CACHE,
// HF_HOME, XDG_CACHE_HOME, HF_ENDPOINT, HF_TOKEN (falling back to the token file
// that `huggingface-cli login` writes) and HF_HUB_OFFLINE.
func OptionsFromEnv() Options {
	return Options{
		CacheDir: cacheDirFromEnv(),
		Endpoint: endpointFromEnv(),
		Token:    tokenFromEnv(),
		Offline:  envTrue(os.Getenv("HF_HUB_OFFLINE")),
		// Read like huggingface_hub's int(os.environ.get(...)); a value that is not a
		// positive number of seconds keeps the default.
		ETagTimeout:     envSeconds("HF_HUB_ETAG_TIMEOUT"),
		DownloadTimeout: envSeconds("HF_HUB_DOWNLOAD_TIMEOUT"),
	}
}

func envSeconds(name string) time.Duration {
	v, err := strconv.ParseFloat(strings.TrimSpace(os.Getenv(name)), 64)
	if err != nil || !(v > 0) || v > 1e6 {
		return 0
	}
	return time.Duration(v * float64(time.Second))
}

func (o Options) withDefaults() Options {
	if o.CacheDir == "" {
		o.CacheDir = cacheDirFromEnv()
	}
	if o.Endpoint == "" {
		o.Endpoint = endpointFromEnv()
	}
	o.Endpoint = strings.TrimRight(o.Endpoint, "/")
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	// A copy, so the caller's client keeps its own redirect policy.
	cl := *o.HTTPClient
	cl.CheckRedirect = dropTokenAcrossOrigins
	o.HTTPClient = &cl
	if o.ETagTimeout <= 0 {
		o.ETagTimeout = DefaultTimeout
	}
	if o.DownloadTimeout <= 0 {
		o.DownloadTimeout = DefaultTimeout
	}
	return o
}

// dropTokenAcrossOrigins removes the bearer token from a redirect to another origin (scheme,
// host or port): net/http keeps it for the same host on another port and for subdomains,
// but an LFS CDN or any other server must never see it.
func dropTokenAcrossOrigins(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if origin(req.URL) != origin(via[0].URL) {
		req.Header.Del("Authorization")
	}
	return nil
}

func origin(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[strings.ToLower(u.Scheme)]
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Hostname()) + ":" + port
}

func hfHome() string {
	if h := os.Getenv("HF_HOME"); h != "" {
		return h
	}
	if x := os.Getenv("XDG_CACHE_HOME"); x != "" {
		return filepath.Join(x, "huggingface")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "huggingface") // no home: still a usable cache
	}
	return filepath.Join(home, ".cache", "huggingface")
}

func cacheDirFromEnv() string {
	if c := os.Getenv("HF_HUB_CACHE"); c != "" {
		return c
	}
	return filepath.Join(hfHome(), "hub")
}

func endpointFromEnv() string {
	if e := os.Getenv("HF_ENDPOINT"); e != "" {
		return e
	}
	return DefaultEndpoint
}

func tokenFromEnv() string {
	if t := os.Getenv("HF_TOKEN"); t != "" {
		return t
	}
	path := os.Getenv("HF_TOKEN_PATH")
	if path == "" {
		path = filepath.Join(hfHome(), "token")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// envTrue matches huggingface_hub's reading of boolean variables.
func envTrue(v string) bool {
	switch strings.ToUpper(strings.TrimSpace(v)) {
	case "1", "ON", "YES", "TRUE":
		return true
	}
	return false
}
