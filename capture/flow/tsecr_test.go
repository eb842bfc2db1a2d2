package flow

import (
	"testing"

	"github.com/gometro/go-metro/capture/packet"
)

// TestACKsOfRetransmittedData: when Karn's rule forbids the sequence
// sample of an ACK of our data, the kernel does not go without one
// (tcp_ack_update_rtt): it takes the SACK sample of the same ACK if it
// newly SACKs data that was never retransmitted, else it times the ACK
// from the TSval it echoes in whole ticks of its 1 ms TSval clock, 1 at
// least (tcp_rtt_tsopt_us). go-metro follows: the smoothed RTT takes the
// kernel's ticks, the sample's figures the time since the echoed TSval's
// tick began, as bounded by the first sighting of our TSvals. Times in
// ms; our TSval clock's tick k begins at k-100 ms unless stated.
func TestACKsOfRetransmittedData(t *testing.T) {
	const isn = 1000
	sack := func(l, r uint32) []packet.SACKBlock { return []packet.SACKBlock{{Left: isn + l, Right: isn + r}} }
	tests := []struct {
		name string
		evs  []ev
	}{
		{"fast retransmission: its ACK is timed from the TSval it echoes", []ev{
			{out: true, flags: PA, seq: isn, ack: 1, n: 1000, tsval: 100, tsecr: 7, atMS: 0},
			{out: true, flags: PA, seq: isn + 1000, ack: 1, n: 1000, tsval: 100, tsecr: 7, atMS: 0.25},
			{out: true, flags: PA, seq: isn + 2000, ack: 1, n: 1000, tsval: 101, tsecr: 7, atMS: 1},
			{flags: A, seq: 1, ack: isn + 1000, tsval: 50, tsecr: 100, atMS: 50, wantSample: 50, wantEcho: 50},
			// isn+1000 was lost: the receiver SACKs isn+2000 and echoes
			// the TSval of its last in-order segment.
			{flags: A, seq: 1, ack: isn + 1000, tsval: 51, tsecr: 100, sack: sack(2000, 3000), atMS: 51, wantSample: 50},
			// Tick 151 began by 51 ms (tick 101 by 1).
			{out: true, flags: PA, seq: isn + 1000, ack: 1, n: 1000, tsval: 151, tsecr: 7, atMS: 51},
			// The retransmission fills the hole; the ACK echoes its
			// TSval. The kernel: tick 201 - 151 = 50 ticks. The figures:
			// 50.5 ms since tick 151 began.
			{flags: A, seq: 1, ack: isn + 3000, tsval: 101, tsecr: 151, atMS: 101.5, wantSample: 50, wantReported: 50.5, wantEcho: 50.5},
		}},
		{"ACK of retransmitted data that newly SACKs new data: the SACK sample", []ev{
			{out: true, flags: PA, seq: isn, ack: 1, n: 1000, tsval: 100, tsecr: 7, atMS: 0},
			{out: true, flags: PA, seq: isn + 1000, ack: 1, n: 1000, tsval: 100, tsecr: 7, atMS: 0.25},
			{out: true, flags: PA, seq: isn + 2000, ack: 1, n: 1000, tsval: 101, tsecr: 7, atMS: 1},
			{out: true, flags: PA, seq: isn + 3000, ack: 1, n: 1000, tsval: 101, tsecr: 7, atMS: 1.25},
			{flags: A, seq: 1, ack: isn + 1000, tsval: 50, tsecr: 100, atMS: 50, wantSample: 50, wantEcho: 50},
			// isn+1000 and isn+3000 were lost.
			{flags: A, seq: 1, ack: isn + 1000, tsval: 51, tsecr: 100, sack: sack(2000, 3000), atMS: 51, wantSample: 50},
			{out: true, flags: PA, seq: isn + 1000, ack: 1, n: 1000, tsval: 152, tsecr: 7, atMS: 52},
			{out: true, flags: PA, seq: isn + 4000, ack: 1, n: 1000, tsval: 152, tsecr: 7, atMS: 52.125},
			// The ACK of the retransmission was lost; the next one covers
			// it (Karn) and newly SACKs isn+4000, sent at 52.125: the
			// kernel's sack_rtt, 50 ms, not the echoed TSval's 50.25.
			{flags: A, seq: 1, ack: isn + 3000, tsval: 102, tsecr: 152, sack: sack(4000, 5000), atMS: 102.125, wantSample: 50, wantEcho: 50.125},
			// The SACK blocks of that cumulative ACK were taken: isn+4000
			// is not timed again by the next SACK.
			{flags: A, seq: 1, ack: isn + 3000, tsval: 103, tsecr: 152, sack: sack(4000, 5000), atMS: 102.25},
		}},
		{"tick bound from the earliest sighting; ticks counted as the kernel does", []ev{
			{out: true, flags: PA, seq: isn, ack: 1, n: 1000, tsval: 100, tsecr: 7, atMS: 0.75},
			// Tick 101 seen at 1.25: it began by then, so tick 100 by 0.25.
			{out: true, flags: PA, seq: isn + 1000, ack: 1, n: 1000, tsval: 101, tsecr: 7, atMS: 1.25},
			{out: true, flags: PA, seq: isn, ack: 1, n: 1000, tsval: 400, tsecr: 7, atMS: 300.5},
			// Karn. Echoes 100 (the retransmission was a duplicate at the
			// receiver): at 350.875 the kernel's clock reads tick 450 (tick
			// 100 began at 0.25 at the latest), 350 ticks after 100. The
			// figures: 350.625 ms since tick 100 began.
			{flags: A, seq: 1, ack: isn + 2000, tsval: 50, tsecr: 100, atMS: 350.875, wantSample: 350, wantReported: 350.625, wantEcho: 350.125},
		}},
		{"the echoed tick is still the current one: one tick, the least the kernel takes", []ev{
			{out: true, flags: PA, seq: isn, ack: 1, n: 100, tsval: 10, tsecr: 5, atMS: 0},
			{out: true, flags: PA, seq: isn + 100, ack: 1, n: 100, tsval: 10, tsecr: 5, atMS: 0.01},
			{flags: A, seq: 1, ack: isn, tsval: 6, tsecr: 10, atMS: 0.3, wantSample: 0.3},
			{out: true, flags: PA, seq: isn, ack: 1, n: 100, tsval: 10, tsecr: 5, atMS: 0.4},
			{flags: A, seq: 1, ack: isn + 200, tsval: 6, tsecr: 10, atMS: 0.7, wantSample: 1, wantReported: 0.7},
		}},
		{"a TSecr newer than any TSval we sent is no sample", []ev{
			{out: true, flags: PA, seq: isn, ack: 1, n: 1000, tsval: 100, tsecr: 7, atMS: 0},
			{out: true, flags: PA, seq: isn, ack: 1, n: 1000, tsval: 300, tsecr: 7, atMS: 200},
			{flags: A, seq: 1, ack: isn + 1000, tsval: 50, tsecr: 301, atMS: 250},
		}},
		{"a TSval clock that does not tick once a millisecond is no sample", []ev{
			// µs TSvals (Linux tcp_usec_ts): 250 ticks in 0.25 ms.
			{out: true, flags: PA, seq: isn, ack: 1, n: 1000, tsval: 1_000_000, tsecr: 7, atMS: 0},
			{out: true, flags: PA, seq: isn + 1000, ack: 1, n: 1000, tsval: 1_000_250, tsecr: 7, atMS: 0.25},
			{out: true, flags: PA, seq: isn, ack: 1, n: 1000, tsval: 1_200_250, tsecr: 7, atMS: 200.25},
			// Karn, and no fallback: the one sample is the first echo.
			{flags: A, seq: 1, ack: isn + 2000, tsval: 50, tsecr: 1_200_250, atMS: 250.25, wantSample: 50},
		}},
		{"no timestamps: Karn leaves the ACK untimed", []ev{
			{out: true, flags: PA, seq: isn, ack: 1, n: 1000, atMS: 0},
			{out: true, flags: PA, seq: isn, ack: 1, n: 1000, atMS: 200},
			{flags: A, seq: 1, ack: isn + 1000, atMS: 250},
		}},
		{"handshake: a retransmitted SYN stays untimed by sequence (Karn)", []ev{
			{out: true, flags: S, seq: isn, tsval: 100, atMS: 0},
			{out: true, flags: S, seq: isn, tsval: 1100, atMS: 1000},
			{flags: SA, seq: 5000, ack: isn + 1, tsval: 9, tsecr: 1100, atMS: 1020, wantSample: 20},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { play(t, tc.evs) })
	}
}
