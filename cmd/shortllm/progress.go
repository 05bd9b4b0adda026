package main

import (
	"io"

	"github.com/schollz/progressbar/v3"
)

// progress returns a progress bar on stderr (silent with --quiet or --json runs that
// are piped: the bar only writes to errOut, never to the result stream).
func (a *app) progress(total int, desc string) *progressbar.ProgressBar {
	w := a.errOut
	if a.quiet {
		w = io.Discard
	}
	return progressbar.NewOptions(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionThrottle(100_000_000),
	)
}
