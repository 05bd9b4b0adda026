//go:build !unix

package score

import "time"

// cpuTime is unavailable here; the cpu-ratio metric then reads NaN.
func cpuTime() time.Duration { return 0 }
