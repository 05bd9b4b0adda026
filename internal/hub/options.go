package hub

import (
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
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
}

// OptionsFromEnv reads the variables huggingface_hub honours: HF_HUB_CACHE,
// HF_HOME, XDG_CACHE_HOME, HF_ENDPOINT, HF_TOKEN (falling back to the token file
// that `huggingface-cli login` writes) and HF_HUB_OFFLINE.
func OptionsFromEnv() Options {
	return Options{
		CacheDir: cacheDirFromEnv(),
		Endpoint: endpointFromEnv(),
		Token:    tokenFromEnv(),
		Offline:  envTrue(os.Getenv("HF_HUB_OFFLINE")),
	}
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
	return o
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
