// Package outdir is shortllm's one rule for everything a command writes.
//
//   - An output must not be, contain, or lie inside any input (model, adapter, data files):
//     replacing it would destroy what the command reads.
//   - An existing output directory is replaced only with Force, and only when shortllm wrote
//     it: it holds the Marker file, or is a model (config.json + safetensors) or adapter
//     (adapter_config.json) directory. An arbitrary folder is never deleted.
//   - The output is built in a temporary directory beside it (".OUT.tmp-<random>"), every file
//     and directory in it is fsynced, and it appears under its name by one rename (an atomic
//     exchange where the old one exists), followed by an fsync of the parent. A kill at any
//     moment leaves either the old output or the new one, never a mix.
//   - A writer holds an advisory lock (flock on ".OUT.lock" beside the output) from Begin to
//     Close; a second writer fails at once with "… in use by pid N".
//   - Temporaries left by a killed writer of the same output are removed by the next Begin.
//   - Directories get the user's umask (0755 typically), not 0700.
//
// Usage:
//
//	d, err := outdir.Begin(out, outdir.Options{Inputs: []string{modelDir}, Force: force})
//	if err != nil { return err }
//	defer d.Close()            // removes the temporary and releases the lock unless committed
//	... write files into d.Path() ...
//	return d.Commit()
//
// File outputs (a results JSON) use BeginFile / File.WriteJSON / File.Close.
package outdir

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/shortllm/shortllm/internal/atomicfile"
)

// Marker is the file shortllm puts into every output directory it writes, so that --force
// can tell its own outputs from folders it must not delete.
const Marker = ".shortllm-output"

// Sentinel errors (errors.Is).
var (
	ErrInput  = errors.New("output overlaps an input")
	ErrExists = errors.New("output exists")
	ErrInUse  = errors.New("output in use")
)

// ruleError is a one-line message that errors.Is matches to its sentinel without repeating
// the sentinel's text.
type ruleError struct {
	msg  string
	kind error
}

func (e *ruleError) Error() string { return e.msg }
func (e *ruleError) Unwrap() error { return e.kind }

func ruleErr(kind error, format string, args ...any) error {
	return &ruleError{msg: fmt.Sprintf(format, args...), kind: kind}
}

// Options describe an output.
type Options struct {
	// Inputs are every path the command reads (directories or files); "" entries are ignored.
	Inputs []string
	// Force allows replacing an existing output directory that shortllm wrote.
	Force bool
	// Flag names the output in errors (default "--out").
	Flag string
}

func (o Options) flag() string {
	if o.Flag == "" {
		return "--out"
	}
	return o.Flag
}

// Check refuses an output directory before any work: one that is, contains or lies inside an
// input, or exists and may not be replaced.
func Check(out string, o Options) error {
	if out == "" {
		return fmt.Errorf("%s is required", o.flag())
	}
	if err := CheckInputs(out, o); err != nil {
		return err
	}
	st, err := os.Stat(out)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("%s %s: %w", o.flag(), out, err)
	case !st.IsDir():
		return ruleErr(ErrExists, "%s %s exists and is not a directory", o.flag(), out)
	case isEmptyDir(out):
		return nil // nothing to lose
	case !o.Force:
		return ruleErr(ErrExists, "%s %s exists (use --force to replace it)", o.flag(), out)
	case !Ours(out):
		return ruleErr(ErrExists, "%s %s exists and was not written by shortllm (no %s, not a model or adapter directory): refusing to replace it, even with --force",
			o.flag(), out, Marker)
	}
	return nil
}

// CheckFile refuses an output file that is or lies inside an input, or is a directory.
func CheckFile(out string, o Options) error {
	if err := CheckInputs(out, o); err != nil {
		return err
	}
	if st, err := os.Stat(out); err == nil && !st.Mode().IsRegular() {
		return ruleErr(ErrExists, "%s %s exists and is not a regular file", o.flag(), out)
	}
	return nil
}

// CheckInputs refuses an output path that is, contains or lies inside one of o.Inputs.
func CheckInputs(out string, o Options) error {
	ao := resolve(out)
	for _, in := range o.Inputs {
		if in == "" {
			continue
		}
		ai := resolve(in)
		switch {
		case ao == ai:
			return ruleErr(ErrInput, "%s %s is the input %s", o.flag(), out, in)
		case within(ao, ai):
			return ruleErr(ErrInput, "%s %s lies inside the input %s", o.flag(), out, in)
		case within(ai, ao):
			return ruleErr(ErrInput, "%s %s contains the input %s; replacing it would delete the input", o.flag(), out, in)
		}
	}
	return nil
}

// Ours reports whether dir is something shortllm wrote or a model/adapter layout it may
// replace: it holds Marker, config.json with safetensors weights, or adapter_config.json.
func Ours(dir string) bool {
	has := func(name string) bool {
		st, err := os.Stat(filepath.Join(dir, name))
		return err == nil && st.Mode().IsRegular()
	}
	return has(Marker) || has("adapter_config.json") ||
		(has("config.json") && (has("model.safetensors") || has("model.safetensors.index.json")))
}

func isEmptyDir(dir string) bool {
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	return err != nil && len(names) == 0
}

// resolve makes p absolute and resolves symlinks in its longest existing prefix, so neither
// a relative path nor a link can hide that two paths overlap.
func resolve(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return filepath.Clean(p)
	}
	rest := ""
	for cur := a; ; {
		if r, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(r, rest)
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return a
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}

// within reports whether p lies strictly inside dir.
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// Dir is an output directory being written: a temporary directory beside the output, and
// the output's lock.
type Dir struct {
	out, tmp string
	opts     Options
	lock     *Lock
	done     bool
}

// Begin checks out (Check), takes its lock, removes temporaries a killed writer left and
// creates the temporary directory to write into.
func Begin(out string, o Options) (*Dir, error) {
	if err := Check(out, o); err != nil {
		return nil, err
	}
	parent := filepath.Dir(filepath.Clean(out))
	if err := os.MkdirAll(parent, 0o777); err != nil {
		return nil, fmt.Errorf("%s %s: %w", o.flag(), out, err)
	}
	lock, err := Acquire(out)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", o.flag(), out, err)
	}
	if err := CleanStale(out); err != nil {
		lock.Release()
		return nil, fmt.Errorf("%s %s: %w", o.flag(), out, err)
	}
	// Check again under the lock: the stale cleanup may have restored an output.
	if err := Check(out, o); err != nil {
		lock.Release()
		return nil, err
	}
	tmp, err := mkdirTemp(parent, atomicfile.TempPrefix(out))
	if err != nil {
		lock.Release()
		return nil, fmt.Errorf("%s %s: %w", o.flag(), out, err)
	}
	return &Dir{out: out, tmp: tmp, opts: o, lock: lock}, nil
}

// Path is the temporary directory to write the output into.
func (d *Dir) Path() string { return d.tmp }

// Out is the final output path.
func (d *Dir) Out() string { return d.out }

// Commit writes the marker, flushes every file to disk and moves the temporary directory
// to the output path (replacing an existing one atomically where the filesystem allows).
func (d *Dir) Commit() error {
	if d.done {
		return fmt.Errorf("%s %s: committed twice", d.opts.flag(), d.out)
	}
	if err := d.commit(); err != nil {
		return fmt.Errorf("%s %s: %w", d.opts.flag(), d.out, err)
	}
	d.done = true
	return d.lock.Release()
}

func (d *Dir) commit() error {
	if err := os.WriteFile(filepath.Join(d.tmp, Marker), []byte("written by shortllm\n"), 0o666); err != nil {
		return err
	}
	if err := syncTree(d.tmp); err != nil {
		return err
	}
	if err := Check(d.out, d.opts); err != nil { // something else may have appeared there
		return err
	}
	return replace(d.tmp, d.out)
}

// Close removes the temporary directory unless Commit succeeded, and releases the lock.
// It is safe to call after Commit.
func (d *Dir) Close() error {
	if d.done {
		return nil
	}
	d.done = true
	err := os.RemoveAll(d.tmp)
	if lerr := d.lock.Release(); err == nil {
		err = lerr
	}
	return err
}

// mkdirTemp is os.MkdirTemp with the user's umask applied to 0777 instead of a fixed 0700.
func mkdirTemp(parent, prefix string) (string, error) {
	for range 100 {
		name := filepath.Join(parent, prefix+strconv.FormatUint(rand.Uint64(), 36))
		if err := os.Mkdir(name, 0o777); err == nil {
			return name, nil
		} else if !errors.Is(err, os.ErrExist) {
			return "", err
		}
	}
	return "", fmt.Errorf("create temporary directory in %s: too many name collisions", parent)
}

// syncTree fsyncs every regular file and directory under root.
func syncTree(root string) error {
	return filepath.WalkDir(root, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.Type().IsRegular() {
			return atomicfile.SyncFile(p)
		}
		if e.IsDir() {
			return atomicfile.SyncDir(p) // the names in it
		}
		return nil
	})
}

// replace moves tmp to out. An existing out is swapped with tmp in one atomic exchange
// where supported, else moved aside to tmp+".old" first (CleanStale restores it if a kill
// falls between the two renames); the old content is removed last.
func replace(tmp, out string) error {
	parent := filepath.Dir(filepath.Clean(out))
	if _, err := os.Lstat(out); errors.Is(err, os.ErrNotExist) {
		if err := os.Rename(tmp, out); err != nil {
			return err
		}
		return atomicfile.SyncDir(parent)
	}
	if exchange(tmp, out) == nil {
		if err := atomicfile.SyncDir(parent); err != nil {
			return err
		}
		return os.RemoveAll(tmp) // now the old output
	}
	old := tmp + oldSuffix
	if err := os.Rename(out, old); err != nil {
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		os.Rename(old, out)
		return err
	}
	if err := atomicfile.SyncDir(parent); err != nil {
		return err
	}
	return os.RemoveAll(old)
}

const oldSuffix = ".old"

// CleanStale removes the temporaries a killed writer of out left beside it (".OUT.tmp-*",
// files and directories). An output moved aside by a replacement that was killed before the
// new one was in place (".OUT.tmp-X.old" while OUT is missing) is moved back instead. The
// caller must hold out's lock.
func CleanStale(out string) error {
	parent := filepath.Dir(filepath.Clean(out))
	prefix := atomicfile.TempPrefix(out)
	entries, err := os.ReadDir(parent)
	if err != nil {
		return err
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok {
			continue
		}
		isOld := strings.HasSuffix(rest, oldSuffix)
		if !alnum(strings.TrimSuffix(rest, oldSuffix)) {
			continue // not one of our names (e.g. the temporary of another output)
		}
		p := filepath.Join(parent, e.Name())
		if _, err := os.Lstat(out); isOld && errors.Is(err, os.ErrNotExist) {
			if err := os.Rename(p, out); err != nil {
				return err
			}
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	return nil
}

func alnum(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}
