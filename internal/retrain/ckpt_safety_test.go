package retrain

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestHasCheckpoint_CorruptLatestIsAnError: a LATEST that names nothing usable must stop a
// --resume (it used to restart silently from step 0); no LATEST at all means "not started".
func TestHasCheckpoint_CorruptLatestIsAnError(t *testing.T) {
	cases := []struct {
		name, latest string
		mkStep       bool
		has          bool
		err          bool
	}{
		{"no LATEST", "", false, false, false},
		{"valid", "step-00000004\n", true, true, false},
		{"garbage", "\x00\x01junk", false, false, true},
		{"names a missing step", "step-00000009\n", false, false, true},
		{"negative step", "step--0000001\n", false, false, true},
		{"path escape", "step-00000001/../../x\n", false, false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if c.mkStep {
				os.Mkdir(filepath.Join(dir, "step-00000004"), 0o755)
			}
			if c.latest != "" {
				os.WriteFile(filepath.Join(dir, latestFile), []byte(c.latest), 0o644)
			}
			has, err := HasCheckpoint(dir)
			if has != c.has || (err != nil) != c.err || (err != nil && !errors.Is(err, ErrCheckpoint)) {
				t.Fatalf("HasCheckpoint = %v, %v; want %v, error %v", has, err, c.has, c.err)
			}
		})
	}
}

// TestStateJSON_Check: a state.json that cannot belong to the run is refused by name.
func TestStateJSON_Check(t *testing.T) {
	nan := 0.0
	nan = nan / nan
	for _, sj := range []stateJSON{
		{Step: -1},
		{Step: 11},
		{Step: 2, Log: make([]StepLog, 1)},
		{Step: 2, Log: make([]StepLog, 2), BestStep: 3},
		{Step: 2, Log: make([]StepLog, 2), BestStep: 1, BestLoss: nan},
	} {
		if err := sj.check(10); err == nil {
			t.Errorf("%+v accepted", sj)
		}
	}
	ok := stateJSON{Step: 2, Log: make([]StepLog, 2), BestStep: 1, BestLoss: 1.5}
	if err := ok.check(10); err != nil {
		t.Errorf("valid state refused: %v", err)
	}
}
