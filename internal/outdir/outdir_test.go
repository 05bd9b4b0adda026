package outdir

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func mkfile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fixture: a model directory, a data file, an arbitrary user folder and a shortllm output.
func fixture(t *testing.T) (root, model, data string) {
	root = t.TempDir()
	model = filepath.Join(root, "models", "m")
	mkfile(t, filepath.Join(model, "config.json"), "{}")
	mkfile(t, filepath.Join(model, "model.safetensors"), "w")
	data = filepath.Join(root, "data", "train.jsonl")
	mkfile(t, data, "{}\n")
	mkfile(t, filepath.Join(root, "photos", "cat.jpg"), "meow")
	mkfile(t, filepath.Join(root, "prev", Marker), "")
	mkfile(t, filepath.Join(root, "prev", "x"), "old")
	mkfile(t, filepath.Join(root, "adapter", "adapter_config.json"), "{}")
	if err := os.MkdirAll(filepath.Join(root, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(model, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	return root, model, data
}

func TestCheck_Table(t *testing.T) {
	root, model, data := fixture(t)
	in := []string{model, data}
	cases := []struct {
		name, out string
		force     bool
		want      error // nil: allowed
		msg       string
	}{
		{"new", filepath.Join(root, "new"), false, nil, ""},
		{"is the model", model, true, ErrInput, "is the input"},
		{"is the model via a symlink", filepath.Join(root, "link"), true, ErrInput, "is the input"},
		{"inside the model", filepath.Join(model, "sub"), true, ErrInput, "lies inside"},
		{"inside the model via a symlink", filepath.Join(root, "link", "sub"), true, ErrInput, "lies inside"},
		{"parent of the model", filepath.Join(root, "models"), true, ErrInput, "contains the input"},
		{"parent of the data", filepath.Join(root, "data"), true, ErrInput, "contains the input"},
		{"root with relative dots", filepath.Join(root, "x", ".."), true, ErrInput, "contains the input"},
		{"is the data file", data, true, ErrInput, "is the input"},
		{"user folder without force", filepath.Join(root, "photos"), false, ErrExists, "use --force"},
		{"user folder with force", filepath.Join(root, "photos"), true, ErrExists, "not written by shortllm"},
		{"a file", filepath.Join(root, "photos", "cat.jpg"), true, ErrExists, "not a directory"},
		{"own output without force", filepath.Join(root, "prev"), false, ErrExists, "use --force"},
		{"own output with force", filepath.Join(root, "prev"), true, nil, ""},
		{"adapter with force", filepath.Join(root, "adapter"), true, nil, ""},
		{"empty folder", filepath.Join(root, "empty"), false, nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Check(c.out, Options{Inputs: in, Force: c.force})
			if c.want == nil {
				if err != nil {
					t.Fatalf("want allowed, got %v", err)
				}
				return
			}
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("got %v; want %v mentioning %q", err, c.want, c.msg)
			}
		})
	}
}

func TestBegin_CommitReplacesAndLeavesNothingBehind(t *testing.T) {
	root, model, _ := fixture(t)
	out := filepath.Join(root, "prev")
	d, err := Begin(out, Options{Inputs: []string{model}, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	mkfile(t, filepath.Join(d.Path(), "new"), "fresh")
	if err := d.Commit(); err != nil {
		t.Fatal(err)
	}
	d.Close()
	if _, err := os.Stat(filepath.Join(out, "x")); !os.IsNotExist(err) {
		t.Errorf("old content survived: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "new")); string(b) != "fresh" {
		t.Errorf("new content %q", b)
	}
	if !Ours(out) {
		t.Error("output has no marker")
	}
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("left %s beside the output", e.Name())
		}
	}
}

func TestBegin_CloseWithoutCommitRemovesTemp(t *testing.T) {
	root, _, _ := fixture(t)
	out := filepath.Join(root, "new")
	d, err := Begin(out, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mkfile(t, filepath.Join(d.Path(), "half"), "x")
	d.Close()
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("out exists after an aborted write")
	}
	if _, err := os.Stat(d.Path()); !os.IsNotExist(err) {
		t.Errorf("temp %s left", d.Path())
	}
}

func TestBegin_UsesUmaskNot0700(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	out := filepath.Join(t.TempDir(), "o")
	d, err := Begin(out, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Commit(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o755 {
		t.Errorf("mode %v, want 0755", st.Mode().Perm())
	}
	fst, _ := os.Stat(filepath.Join(out, Marker))
	if fst.Mode().Perm() != 0o644 {
		t.Errorf("marker mode %v, want 0644", fst.Mode().Perm())
	}
}

func TestCleanStale_RemovesTempsAndRestoresMovedAside(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "o")
	mkfile(t, filepath.Join(root, ".o.tmp-abc123", "f"), "half")
	mkfile(t, filepath.Join(root, ".o.tmp-zz9.old", Marker), "")
	mkfile(t, filepath.Join(root, ".o.tmp-zz9.old", "f"), "previous")
	mkfile(t, filepath.Join(root, ".o.json.tmp-q1"), "other output's temp")
	mkfile(t, filepath.Join(root, ".o.tmp-keep_me"), "not our name")
	d, err := Begin(out, Options{})
	if err == nil {
		d.Close()
		t.Fatal("the restored output exists: want 'use --force'")
	}
	if b, _ := os.ReadFile(filepath.Join(out, "f")); string(b) != "previous" {
		t.Errorf("moved-aside output not restored: %q", b)
	}
	for name, want := range map[string]bool{".o.tmp-abc123": false, ".o.tmp-zz9.old": false, ".o.json.tmp-q1": true, ".o.tmp-keep_me": true} {
		_, err := os.Stat(filepath.Join(root, name))
		if (err == nil) != want {
			t.Errorf("%s: exists=%v, want %v", name, err == nil, want)
		}
	}
}

// TestLockHelperProcess is not a test: TestAcquire_SecondProcessFailsAtOnce runs the test
// binary with OUTDIR_LOCK_HELPER=path to hold path's lock in another process.
func TestLockHelperProcess(t *testing.T) {
	out := os.Getenv("OUTDIR_LOCK_HELPER")
	if out == "" {
		t.Skip("helper process")
	}
	l, err := Acquire(out)
	if err != nil {
		os.Stdout.WriteString("ERR " + err.Error() + "\n")
		os.Exit(1)
	}
	os.Stdout.WriteString("LOCKED\n")
	time.Sleep(time.Minute)
	l.Release()
	os.Exit(0)
}

func TestAcquire_SecondProcessFailsAtOnce(t *testing.T) {
	out := filepath.Join(t.TempDir(), "o")
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHelperProcess$")
	cmd.Env = append(os.Environ(), "OUTDIR_LOCK_HELPER="+out)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	buf := make([]byte, 64)
	n, _ := stdout.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "LOCKED") {
		t.Fatalf("helper: %q", buf[:n])
	}
	start := time.Now()
	_, err = Begin(out, Options{})
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "in use by pid "+strconv.Itoa(cmd.Process.Pid)) {
		t.Fatalf("got %v; want in use by pid %d", err, cmd.Process.Pid)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("took %v: a second writer must fail at once", time.Since(start))
	}
	// kill -9 drops the lock: the next writer gets it and reuses the stale lock file.
	cmd.Process.Kill()
	cmd.Wait()
	d, err := Begin(out, Options{})
	if err != nil {
		t.Fatalf("after the holder died: %v", err)
	}
	if err := d.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(LockPath(out)); !os.IsNotExist(err) {
		t.Errorf("lock file left after release")
	}
}

func TestBeginFile_RefusesInputsAndDirectories(t *testing.T) {
	root, model, data := fixture(t)
	in := Options{Inputs: []string{model, data}}
	for _, p := range []string{data, filepath.Join(model, "scores.json"), filepath.Join(root, "photos")} {
		if f, err := BeginFile(p, in); err == nil {
			f.Close()
			t.Errorf("%s: accepted", p)
		}
	}
	f, err := BeginFile(filepath.Join(root, "scores.json"), in)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.WriteJSON(map[string]float64{"a": 1}); err != nil {
		t.Fatal(err)
	}
}
