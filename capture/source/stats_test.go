package source

import "testing"

// TestStatsPlus: the counters of two sources side by side add up, their
// rings too.
func TestStatsPlus(t *testing.T) {
	a := Stats{Received: 1, Dropped: 2, RingSize: 3, RingResizes: 4, RingResizeFailures: 5}
	if got, want := a.Plus(a), (Stats{2, 4, 6, 8, 10}); got != want {
		t.Errorf("Plus = %+v, want %+v", got, want)
	}
}
