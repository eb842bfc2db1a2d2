package rttcheck

import (
	"strings"
	"testing"

	"github.com/gometro/go-metro/capture"
)

// TestRunWarnsAboutImpossibleTimes: packets the engine skipped for an
// impossible capture time are a warning on the Run that first sees them.
func TestRunWarnsAboutImpossibleTimes(t *testing.T) {
	fe := &fakeEngine{}
	c := newTestCheck(t, Options{}, "interface: eth0\nips: [10.0.0.1]", "", fe, nil)
	waitFor(t, "capture", c.engineStarted)
	const want = "capture on eth0: 3 packet(s) since the last run skipped for an impossible capture time, no RTT sample taken from them (1 in all went back more than 1ms, 2 jumped more than 1h0m0s ahead)"
	for i, tc := range []struct {
		back, forward uint64
		want          string
	}{
		{0, 0, ""},
		{1, 2, want},
		{1, 2, ""}, // nothing new
		{1, 3, "capture on eth0: 1 packet(s) since the last run"},
	} {
		fe.set(func(f *fakeEngine) {
			f.snap = capture.Snapshot{Stats: capture.Stats{TimeBackwards: tc.back, TimeForward: tc.forward}}
		})
		r := &recorder{}
		warnings, err := c.Run(r, r)
		if err != nil {
			t.Fatal(err)
		}
		found := ""
		for _, w := range warnings {
			if strings.Contains(w, "impossible capture time") {
				found = w
			}
		}
		if tc.want == "" && found != "" || !strings.Contains(found, tc.want) {
			t.Errorf("run %d: warning %q, want %q", i, found, tc.want)
		}
	}
}
