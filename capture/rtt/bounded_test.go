package rtt

import "testing"

// TestAddBounded: an estimate moves SRTT and RTTVAR exactly as Add's
// sample would; Last, Min and Max are never below the ceiling given with
// it.
func TestAddBounded(t *testing.T) {
	type sample struct{ est, ceil int64 }
	tests := []struct {
		name           string
		samples        []sample
		srtt, rvar     int64
		last, min, max int64
	}{
		{"first: SRTT and RTTVAR from the estimate, the rest from the ceiling",
			[]sample{{100, 108}}, 100, 50, 108, 108, 108},
		// SRTT 100 + (180-100)/8 = 110; RTTVAR 3/4*50 + 1/4*80 = 57.
		{"second: as Add's sample for SRTT and RTTVAR",
			[]sample{{100, 108}, {180, 190}}, 110, 57, 190, 108, 190},
		{"an exact sample (ceiling = estimate) is Add",
			[]sample{{100, 100}, {90, 90}}, 99, 40, 90, 90, 100},
		{"non-positive estimate or ceiling is ignored",
			[]sample{{100, 100}, {0, 5}, {5, 0}, {-1, 7}}, 100, 50, 100, 100, 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var e Estimator
			for i, s := range tc.samples {
				e.AddBounded(s.est, s.ceil, int64(i))
			}
			if e.SRTT != tc.srtt || e.RTTVAR != tc.rvar || e.Last != tc.last || e.Min != tc.min || e.Max != tc.max {
				t.Fatalf("got SRTT=%d RTTVAR=%d last=%d min=%d max=%d, want %d %d %d %d %d",
					e.SRTT, e.RTTVAR, e.Last, e.Min, e.Max, tc.srtt, tc.rvar, tc.last, tc.min, tc.max)
			}
		})
	}
}
