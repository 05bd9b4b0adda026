//go:build !unix

package retrain

// PeakRSS is unknown on this platform.
func PeakRSS() int64 { return 0 }
