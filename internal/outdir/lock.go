package outdir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Lock is an advisory lock (flock) on an output, held through the file ".OUT.lock" beside
// it. The file holds the owner's pid so that a second writer can name it.
type Lock struct {
	f    *os.File
	path string
}

// LockPath is the lock file of out.
func LockPath(out string) string {
	clean := filepath.Clean(out)
	return filepath.Join(filepath.Dir(clean), "."+filepath.Base(clean)+".lock")
}

// Acquire takes out's lock without waiting: when another process holds it, the error says
// "in use by pid N". The lock file is removed on Release; a file left by a killed process is
// not held (the kernel drops flock locks with the process) and is simply reused.
func Acquire(out string) (*Lock, error) {
	path := LockPath(out)
	if err := os.MkdirAll(filepath.Dir(path), 0o777); err != nil {
		return nil, err
	}
	for range 100 {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if err := flock(f); err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, ruleErr(ErrInUse, "in use by %s (lock %s)", holder(path), path)
			}
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		// The holder before us may have removed the file between our open and our flock;
		// then we locked a file no one else will open: try again on the current one.
		if sameFile(f, path) {
			l := &Lock{f: f, path: path}
			if err := l.writePID(); err != nil {
				l.Release()
				return nil, err
			}
			return l, nil
		}
		f.Close()
	}
	return nil, fmt.Errorf("lock %s: it keeps being replaced", path)
}

func flock(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

func sameFile(f *os.File, path string) bool {
	a, err1 := f.Stat()
	b, err2 := os.Stat(path)
	return err1 == nil && err2 == nil && os.SameFile(a, b)
}

func (l *Lock) writePID() error {
	if err := l.f.Truncate(0); err != nil {
		return err
	}
	_, err := l.f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return err
}

// holder names the process in a lock file ("pid N"), or "another process".
func holder(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "another process"
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return "another process"
	}
	return "pid " + strconv.Itoa(pid)
}

// Release removes the lock file and drops the lock. Removing while still holding it lets a
// waiting process detect the change (see Acquire). Release of a nil or released lock is a
// no-op.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := os.Remove(l.path)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}
