package hub

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// repoRef is a parsed Hugging Face model reference.
type repoRef struct {
	org, name, revision string
}

func (r repoRef) id() string { return r.org + "/" + r.name }

// String is how errors name the model: the id, plus the revision unless it is main.
func (r repoRef) String() string {
	if r.revision == defaultRevision {
		return r.id()
	}
	return r.id() + "@" + r.revision
}

const defaultRevision = "main"

// IsHubID reports whether s looks like a Hugging Face id (org/name with an
// optional @revision) and is not an existing local path.
func IsHubID(s string) bool {
	if _, err := os.Lstat(s); err == nil {
		return false
	}
	_, err := parseRef(s)
	return err == nil
}

// CheckID says why s is not a Hugging Face id (org/name[@revision]); nil when it is one.
func CheckID(s string) error {
	_, err := parseRef(s)
	return err
}

func parseRef(s string) (repoRef, error) {
	id, rev, hasRev := strings.Cut(s, "@")
	org, name, ok := strings.Cut(id, "/")
	if !ok {
		return repoRef{}, fmt.Errorf("want org/name[@revision]")
	}
	if err := checkRepoPart(org); err != nil {
		return repoRef{}, fmt.Errorf("organisation %q: %v", org, err)
	}
	if err := checkRepoPart(name); err != nil {
		return repoRef{}, fmt.Errorf("name %q: %v", name, err)
	}
	if !hasRev {
		rev = defaultRevision
	}
	if err := checkRevision(rev); err != nil {
		return repoRef{}, fmt.Errorf("revision %q: %v", rev, err)
	}
	return repoRef{org: org, name: name, revision: rev}, nil
}

// checkRepoPart applies huggingface_hub's repo-id rules; they also keep the
// cache folder name models--org--name unambiguous.
func checkRepoPart(s string) error {
	switch {
	case s == "" || len(s) > 96:
		return fmt.Errorf("must be 1 to 96 characters")
	case strings.Contains(s, "--") || strings.Contains(s, ".."):
		return fmt.Errorf(`must not contain "--" or ".."`)
	case strings.IndexAny(s[:1], "-.") == 0 || strings.IndexAny(s[len(s)-1:], "-.") == 0:
		return fmt.Errorf(`must not start or end with "-" or "."`)
	}
	for _, c := range s {
		if !isAlnum(c) && c != '-' && c != '_' && c != '.' {
			return fmt.Errorf("invalid character %q", c)
		}
	}
	return nil
}

// checkRevision allows branch and tag names such as "v1.0" or "refs/pr/1" but
// nothing that could step outside refs/ in the cache.
func checkRevision(s string) error {
	if s == "" || len(s) > 255 || !filepath.IsLocal(s) || strings.Contains(s, "..") || strings.HasSuffix(s, "/") {
		return fmt.Errorf("invalid")
	}
	for _, c := range s {
		if !isAlnum(c) && !strings.ContainsRune("-_./", c) {
			return fmt.Errorf("invalid character %q", c)
		}
	}
	return nil
}

func isAlnum(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// isCommit reports whether s is a full 40-hex-digit commit hash.
func isCommit(s string) bool {
	if len(s) != 40 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
