package flow

import (
	"net/netip"
	"testing"
)

// TestRetransmissionsInSegments: retransmissions count as the kernel's
// tcpi_total_retrans does, in segments (tcp_skb_pcount): a TSO super-frame
// sent again counts each MSS it holds. The MSS is the smaller of the two
// SYNs' options less 12 bytes of timestamps when the connection has them,
// else the smallest full frame we sent. Each packet states the segments
// it counts as retransmitted.
func TestRetransmissionsInSegments(t *testing.T) {
	const isn = 1000
	const mss = 1448 // 1460 less the timestamps option
	handshake := func(ours, theirs uint16, ts bool) []ev {
		var tv, te uint32
		if ts {
			tv, te = 1, 1
		}
		return []ev{
			{out: true, flags: S, seq: isn - 1, mss: ours, tsval: tv, atMS: 0},
			{flags: SA, seq: 5000, ack: isn, mss: theirs, tsval: tv, tsecr: te, atMS: 10},
			{out: true, flags: A, seq: isn, ack: 5001, tsval: tv, tsecr: te, atMS: 10.1},
		}
	}
	cat := func(parts ...[]ev) []ev {
		var out []ev
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	tests := []struct {
		name string
		evs  []ev
	}{
		{"TSO super-frame sent again: one per MSS it holds", cat(handshake(1460, 1460, true), []ev{
			{out: true, flags: A, seq: isn, ack: 5001, n: 45 * mss, tsval: 2, tsecr: 1, atMS: 11},
			{out: true, flags: PA, seq: isn + 45*mss, ack: 5001, n: 100, tsval: 2, tsecr: 1, atMS: 11.1},
			{out: true, flags: A, seq: isn, ack: 5001, n: 45 * mss, tsval: 300, tsecr: 1, atMS: 300, wantRetrans: 45},
			{out: true, flags: A, seq: isn, ack: 5001, n: 2 * mss, tsval: 900, tsecr: 1, atMS: 900, wantRetrans: 2},
			{out: true, flags: A, seq: isn, ack: 5001, n: mss, tsval: 2100, tsecr: 1, atMS: 2100, wantRetrans: 1},
			// The last MSS is partly filled: a segment still.
			{out: true, flags: PA, seq: isn + 44*mss, ack: 5001, n: mss + 100, tsval: 4500, tsecr: 1, atMS: 4500, wantRetrans: 2},
		})},
		{"the smaller of the two SYNs' MSS", cat(handshake(1460, 1400, true), []ev{
			{out: true, flags: A, seq: isn, ack: 5001, n: 3 * 1388, tsval: 2, tsecr: 1, atMS: 11},
			{out: true, flags: A, seq: isn, ack: 5001, n: 2 * 1388, tsval: 300, tsecr: 1, atMS: 300, wantRetrans: 2},
			{out: true, flags: A, seq: isn, ack: 5001, n: 2*1388 + 1, tsval: 900, tsecr: 1, atMS: 900, wantRetrans: 3},
		})},
		{"no timestamps: the MSS as advertised", cat(handshake(1460, 1460, false), []ev{
			{out: true, flags: A, seq: isn, ack: 5001, n: 2 * 1460, atMS: 11},
			{out: true, flags: A, seq: isn, ack: 5001, n: 2 * 1460, atMS: 300, wantRetrans: 2},
		})},
		{"no handshake: the smallest full frame we sent", []ev{
			{out: true, flags: A, seq: isn, ack: 5001, n: 10 * mss, tsval: 2, tsecr: 1, atMS: 0},
			{out: true, flags: A, seq: isn + 10*mss, ack: 5001, n: mss, tsval: 2, tsecr: 1, atMS: 0.1},
			// The end of a write (PSH) is no full frame.
			{out: true, flags: PA, seq: isn + 11*mss, ack: 5001, n: 500, tsval: 2, tsecr: 1, atMS: 0.2},
			{out: true, flags: A, seq: isn, ack: 5001, n: 10 * mss, tsval: 300, tsecr: 1, atMS: 300, wantRetrans: 10},
		}},
		{"MSS unknown: a frame is a segment", []ev{
			{out: true, flags: PA, seq: isn, ack: 5001, n: 5000, atMS: 0},
			{out: true, flags: PA, seq: isn, ack: 5001, n: 5000, atMS: 300, wantRetrans: 1},
		}},
		{"a SYN sent again is one segment", []ev{
			{out: true, flags: S, seq: isn - 1, mss: 1460, atMS: 0},
			{out: true, flags: S, seq: isn - 1, mss: 1460, atMS: 1000, wantRetrans: 1},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { playRetrans(t, tc.evs) })
	}
}

// playRetrans feeds events to a fresh table and checks, packet by packet,
// the retransmitted segments each one counts, and the flow's total.
func playRetrans(t *testing.T, evs []ev) {
	t.Helper()
	locals := localSet{netip.AddrFrom4(localIP.As4()).As16(): true}
	tb := NewTable(TableConfig{MaxFlows: 16, IdleTTL: ms(1e6), ExpTTL: ms(1e6)}, locals, nil)
	base := int64(1_700_000_000) * 1e9
	var total uint64
	for i, e := range evs {
		before := tb.Counters().Retransmits
		p := e.packet()
		tb.Process(&p, base+ms(e.atMS))
		if got := tb.Counters().Retransmits - before; got != e.wantRetrans {
			t.Fatalf("event %d (%+v): %d retransmitted segments counted, want %d", i, e, got, e.wantRetrans)
		}
		total += e.wantRetrans
	}
	if got := firstFlow(tb).summary().Retransmits; got != total {
		t.Fatalf("flow counts %d retransmitted segments, want %d", got, total)
	}
}
