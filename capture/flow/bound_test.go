package flow

import (
	"testing"
)

// TestSamplesNeverBelowTruth: no figure of a sample (Last, Min, Max, the
// reservoir) is ever below the true RTT of the ACK it times; the smoothed
// RTT still takes the kernel's per-ACK estimate. Every packet states its
// expected sample.
func TestSamplesNeverBelowTruth(t *testing.T) {
	const isn = 1000
	tests := []struct {
		name string
		evs  []ev
	}{
		// Capture times finer than the entries' µs: a send time rounded to
		// the nearest µs can come out later than the capture's (1.953 µs
		// -> 2 µs), and the sample 0.047 µs short of the truth. Rounded
		// down (1 µs), the sample errs high by under 1 µs.
		{"send times round down to the µs", []ev{
			{out: true, flags: PA, seq: isn, ack: 1, n: 100, atMS: 0},
			{out: true, flags: PA, seq: isn + 100, ack: 1, n: 100, atMS: 1.0 / 512},
			{flags: A, seq: 1, ack: isn + 100, atMS: 50, wantSample: 50},
			{flags: A, seq: 1, ack: isn + 200, atMS: 50 + 1.0/512, wantSample: 50.000953},
		}},
		// BBR's pacing sends two frames back to back, then pauses: entries
		// of 4 frames (pair, pause, pair) spanning 0.140625 ms, within
		// 1/32 of the 50 ms RTT, interpolate their frames' times evenly,
		// which puts the second frame of a pair 0.031 ms late and its
		// sample that much below the path's 50 ms. Every ACK is still
		// timed for the smoothed RTT, within the entry's span; the
		// sample's own figures are timed from the entry's first frame,
		// the earliest its frames can have been sent.
		{"decimated flight sent in pairs: figures timed from the entry's first frame", pairedFlight(isn, 300, 50)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { play(t, tc.evs) })
	}
}

// pairedFlight is a handshake that gives the flow an RTT of rttMS, then a
// flight of n 1000-byte frames sent in pairs (the second 1/64 ms after the
// first, pairs 1/8 ms apart), then one ACK per frame, rttMS after it was
// sent. Flights over 256 frames end up in entries of 4 frames, the first
// of each pair of pairs: an ACK's figures are timed from there.
func pairedFlight(isn uint32, n int, rttMS float64) []ev {
	const mss, pair, gap = 1000, 1.0 / 8, 1.0 / 64
	sent := func(i int) float64 { return float64(i/2)*pair + float64(i%2)*gap }
	evs := []ev{
		{out: true, flags: S, seq: isn - 1, atMS: -rttMS},
		{flags: SA, seq: 5000, ack: isn, atMS: 0, wantSample: rttMS},
	}
	for i := 0; i < n; i++ {
		evs = append(evs, ev{out: true, flags: PA, seq: isn + uint32(i)*mss, ack: 5001, n: mss, atMS: sent(i)})
	}
	for i := 0; i < n; i++ {
		at := sent(i) + rttMS
		evs = append(evs, ev{flags: A, seq: 5001, ack: isn + uint32(i+1)*mss, atMS: at,
			wantSample: rttMS, slack: pair + gap, wantReported: at - sent(i/4*4)})
	}
	return evs
}
