package outdir

import "golang.org/x/sys/unix"

// exchange swaps two existing paths atomically (renameat2 RENAME_EXCHANGE). It fails on
// filesystems without support; the caller then falls back to two renames.
func exchange(a, b string) error {
	return unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
}
