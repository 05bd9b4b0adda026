//go:build unix

package retrain

import (
	"runtime"
	"syscall"
)

// PeakRSS returns the process's maximum resident set size in bytes (getrusage ru_maxrss:
// kilobytes on Linux, bytes on macOS).
func PeakRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	if runtime.GOOS == "darwin" {
		return int64(ru.Maxrss)
	}
	return int64(ru.Maxrss) * 1024
}
