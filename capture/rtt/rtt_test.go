package rtt

import "testing"

func TestEstimatorRFC6298(t *testing.T) {
	tests := []struct {
		name       string
		samples    []int64
		srtt, rvar int64
		min, max   int64
	}{
		{"first sample: SRTT=R, RTTVAR=R/2", []int64{100}, 100, 50, 100, 100},
		// second: RTTVAR = 3/4*50 + 1/4*|100-180| = 57.5 -> 57 (integer ns);
		// SRTT = 100 + (180-100)/8 = 110. RTTVAR uses the OLD SRTT.
		{"second sample uses the old SRTT for RTTVAR", []int64{100, 180}, 110, 57, 100, 180},
		// RTTVAR 400 -> 300 -> 225 -> 169 (3/4 each step, truncated toward zero).
		{"constant RTT decays RTTVAR by 3/4 per sample", []int64{800, 800, 800, 800}, 800, 169, 800, 800},
		{"non-positive samples are ignored", []int64{100, 0, -5}, 100, 50, 100, 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var e Estimator
			for i, s := range tc.samples {
				e.Add(s, int64(i))
			}
			if e.SRTT != tc.srtt || e.RTTVAR != tc.rvar || e.Min != tc.min || e.Max != tc.max {
				t.Fatalf("got SRTT=%d RTTVAR=%d min=%d max=%d, want %d %d %d %d",
					e.SRTT, e.RTTVAR, e.Min, e.Max, tc.srtt, tc.rvar, tc.min, tc.max)
			}
		})
	}
}

func TestCombine(t *testing.T) {
	a := Estimator{Samples: 3, Last: 10, Min: 9, Max: 12, SRTT: 10, RTTVAR: 2, LastAt: 5}
	b := Estimator{Samples: 1, Last: 30, Min: 30, Max: 30, SRTT: 30, RTTVAR: 4, LastAt: 9}
	tests := []struct {
		name string
		in   []Estimator
		want Estimator
	}{
		{"empty", nil, Estimator{}},
		{"only empty flows", []Estimator{{}, {}}, Estimator{}},
		{"one flow is itself", []Estimator{a}, a},
		// mean = (3*10+1*30)/4 = 15; var = (3*(2+5) + 1*(4+15))/4 = 10
		{"weighted by samples, spread raises jitter", []Estimator{a, {}, b},
			Estimator{Samples: 4, Last: 30, Min: 9, Max: 30, SRTT: 15, RTTVAR: 10, LastAt: 9}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Combine(tc.in); got != tc.want {
				t.Fatalf("Combine = %+v, want %+v", got, tc.want)
			}
			// Pools of each cut of the flows, merged, then spread over
			// all of them, pool as Combine does.
			for cut := range len(tc.in) + 1 {
				var head, tail Pool
				for i := range tc.in {
					p := &head
					if i >= cut {
						p = &tail
					}
					p.Add(&tc.in[i])
				}
				head.Merge(&tail)
				for _, f := range tc.in {
					head.Spread(f.Samples, f.SRTT, f.RTTVAR)
				}
				if got := head.Estimator(); got != tc.want {
					t.Fatalf("pools cut at %d, merged: %+v, want %+v", cut, got, tc.want)
				}
			}
		})
	}
}
