package flow

import (
	"math"
	"net/netip"
	"testing"

	"github.com/gometro/go-metro/capture/packet"
	"github.com/gometro/go-metro/capture/rtt"
)

var (
	localIP6  = netip.MustParseAddr("2001:db8::1")
	remoteIP6 = netip.MustParseAddr("2001:db8::2")
)

// hp is one crafted segment for the duplicate and health scenarios: out=true
// is ours; times in ms. Each packet states what it must do to the table:
// add a sequence (kernel-style) sample of wantSample ms, count a capture duplicate, count a
// retransmission; anything else it did would fail the test.
type hp struct {
	out          bool
	flags        uint8
	seq, ack, n  uint32
	ipid         uint16 // IPv4 only: IPv6 has none
	tsval, tsecr uint32
	win          uint16 // advertised window; 0 means 1000 unless zeroWin
	zeroWin      bool
	atMS         float64
	wantSample   float64
	wantReported float64 // the sample's own figures (see ev); 0: wantSample
	iface        uint32  // the interface the frame was captured on (packet.Packet.IfIndex); 0 unknown
	wantDup      bool
	wantRetrans  bool
}

func (e hp) packet(v6 bool) packet.Packet {
	p := packet.Packet{Flags: e.flags, Seq: e.seq, Ack: e.ack, PayloadLen: e.n, Window: e.win, IfIndex: e.iface}
	if p.Window == 0 && !e.zeroWin {
		p.Window = 1000
	}
	src, dst := netip.AddrFrom16(localIP.As16()), netip.AddrFrom16(remoteIP.As16())
	if v6 {
		src, dst = localIP6, remoteIP6
	} else {
		p.IPID = e.ipid
	}
	p.IPv6 = v6
	sp, dp := uint16(40000), uint16(443)
	if !e.out {
		src, dst, sp, dp = dst, src, dp, sp
	}
	p.Src, p.Dst, p.SrcPort, p.DstPort = src.As16(), dst.As16(), sp, dp
	if e.tsval != 0 || e.tsecr != 0 {
		p.HasTimestamps, p.TSval, p.TSecr = true, e.tsval, e.tsecr
	}
	return p
}

// playHealth feeds the packets to a fresh table, checking each packet's
// effect, and returns the table.
func playHealth(t *testing.T, v6 bool, evs []hp) *Table {
	t.Helper()
	locals := localSet{netip.AddrFrom16(localIP.As16()).As16(): true, localIP6.As16(): true}
	tb := NewTable(TableConfig{MaxFlows: 16, IdleTTL: ms(1e6), ExpTTL: ms(1e6)}, locals, nil)
	base := int64(1_700_000_000) * 1e9
	for i, e := range evs {
		before := tb.Counters()
		var seqBefore rtt.Estimator
		if f := firstFlow(tb); f != nil {
			seqBefore = f.seq
		}
		p := e.packet(v6)
		at := base + int64(e.atMS*1e6)
		tb.Process(&p, at)
		after := tb.Counters()
		f := firstFlow(tb)
		gotSample, last, input := f.seq.Samples-seqBefore.Samples, f.seq.Last, srttInput(seqBefore, f.seq)
		reported := e.wantSample
		if e.wantReported != 0 {
			reported = e.wantReported
		}
		gotDup := after.Duplicates - before.Duplicates
		gotRetrans := after.Retransmits - before.Retransmits
		switch {
		case e.wantSample == 0 && gotSample != 0:
			t.Fatalf("packet %d (%+v): unexpected sample %.3f ms", i, e, float64(last)/1e6)
		case e.wantSample != 0 && (gotSample != 1 || last != ms(reported) || input < ms(e.wantSample)-7 || input > ms(e.wantSample)+7):
			t.Fatalf("packet %d (%+v): %d samples (last %.3f ms, smoothed RTT took %.3f ms), want one of %.3f ms (figures %.3f ms)",
				i, e, gotSample, float64(last)/1e6, float64(input)/1e6, e.wantSample, reported)
		case (gotDup == 1) != e.wantDup || gotDup > 1:
			t.Fatalf("packet %d (%+v): %d duplicates counted, want dup=%v", i, e, gotDup, e.wantDup)
		case (gotRetrans == 1) != e.wantRetrans || gotRetrans > 1:
			t.Fatalf("packet %d (%+v): %d retransmissions counted, want retrans=%v", i, e, gotRetrans, e.wantRetrans)
		}
	}
	return tb
}

// doubled returns evs with every frame captured twice, the copy gap ms
// later (a mirror port, "any", merged files): each copy of one of our
// segments is a duplicate and changes nothing else.
func doubled(evs []hp, gap float64) []hp {
	var out []hp
	for _, e := range evs {
		c := e
		c.atMS += gap
		c.wantSample, c.wantRetrans = 0, false
		p := e.packet(false)
		c.wantDup = e.out && p.SeqLen() > 0
		out = append(out, e, c)
	}
	return out
}

func TestCaptureDuplicates(t *testing.T) {
	const isn = 1000
	// A connection with IP IDs and timestamps, every frame captured once.
	conn := []hp{
		{out: true, flags: S, seq: isn, ipid: 1, tsval: 100, atMS: 0},
		{flags: SA, seq: 5000, ack: isn + 1, ipid: 900, tsval: 7000, tsecr: 100, atMS: 20, wantSample: 20},
		{out: true, flags: A, seq: isn + 1, ack: 5001, ipid: 2, tsval: 120, tsecr: 7000, atMS: 20.1},
		{out: true, flags: PA, seq: isn + 1, ack: 5001, n: 100, ipid: 3, tsval: 120, tsecr: 7000, atMS: 20.2},
		{out: true, flags: PA, seq: isn + 101, ack: 5001, n: 100, ipid: 4, tsval: 120, tsecr: 7000, atMS: 20.3},
		{flags: A, seq: 5001, ack: isn + 101, ipid: 901, tsval: 7020, tsecr: 120, atMS: 40.2, wantSample: 20},
		{flags: PA, seq: 5001, ack: isn + 201, n: 500, ipid: 902, tsval: 7020, tsecr: 120, atMS: 40.4, wantSample: 20.1},
		{out: true, flags: F | A, seq: isn + 201, ack: 5501, ipid: 5, tsval: 141, tsecr: 7020, atMS: 41},
		{flags: F | A, seq: 5501, ack: isn + 202, ipid: 903, tsval: 7041, tsecr: 141, atMS: 61, wantSample: 20},
	}
	noTS := func(evs []hp) []hp {
		out := append([]hp(nil), evs...)
		for i := range out {
			out[i].tsval, out[i].tsecr = 0, 0
		}
		return out
	}
	noID := func(evs []hp) []hp {
		out := append([]hp(nil), evs...)
		for i := range out {
			out[i].ipid = 0
		}
		return out
	}
	tests := []struct {
		name string
		v6   bool
		evs  []hp
	}{
		{"v4 single capture", false, conn},
		{"v4 doubled, IP ID and TSval (mirror port)", false, doubled(conn, 0.01)},
		{"v4 doubled, IP ID only", false, doubled(noTS(conn), 0.01)},
		{"v4 doubled, IP ID 0 (RFC 6864), TSval", false, doubled(noID(conn), 0.01)},
		{"v4 doubled, no IP ID, no TSval: exact copies", false, doubled(noID(noTS(conn)), 0.01)},
		{"v6 single capture", true, conn},
		{"v6 doubled, TSval", true, doubled(conn, 0.01)},
		{"v6 doubled, no TSval: exact copies", true, doubled(noTS(conn), 0.01)},

		// Real retransmissions stay retransmissions: Karn still applies.
		{"v4 retransmission has a new IP ID", false, []hp{
			{out: true, flags: PA, seq: isn, ack: 1, n: 100, ipid: 10, atMS: 0},
			{out: true, flags: PA, seq: isn, ack: 1, n: 100, ipid: 11, atMS: 0.2, wantRetrans: true},
			{flags: A, seq: 1, ack: isn + 100, atMS: 10},
		}},
		{"v6 retransmission has a new TSval", true, []hp{
			{out: true, flags: PA, seq: isn, ack: 1, n: 100, tsval: 10, tsecr: 5, atMS: 0},
			{out: true, flags: PA, seq: isn, ack: 1, n: 100, tsval: 11, tsecr: 5, atMS: 1.2, wantRetrans: true},
			// Karn forbids the sequence sample; the kernel times the ACK
			// from the TSval it echoes: tick 11 began by 1 ms (tick 10 by
			// 0), 9 ticks before the ACK (tcp_rtt_tsopt_us).
			{flags: A, seq: 1, ack: isn + 100, tsval: 6, tsecr: 11, atMS: 10, wantSample: 9},
		}},
		{"v6 fast retransmission within one TSval tick (after the peer's dup ACK)", true, []hp{
			{out: true, flags: PA, seq: isn, ack: 1, n: 100, tsval: 10, tsecr: 5, atMS: 0},
			{out: true, flags: PA, seq: isn + 100, ack: 1, n: 100, tsval: 10, tsecr: 5, atMS: 0.01},
			{flags: A, seq: 1, ack: isn, tsval: 6, tsecr: 10, atMS: 0.3}, // duplicate ACK
			{out: true, flags: PA, seq: isn, ack: 1, n: 100, tsval: 10, tsecr: 5, atMS: 0.4, wantRetrans: true},
			// Karn; the echoed tick is still the current one: the kernel
			// takes 1 tick, the least it takes. The figures: 0.7 ms since
			// the tick began.
			{flags: A, seq: 1, ack: isn + 200, tsval: 6, tsecr: 10, atMS: 0.7, wantSample: 1, wantReported: 0.7},
		}},
		{"v6 copies further apart than a tick, after a peer packet, same TSval: copy (merged files)", true, []hp{
			{out: true, flags: PA, seq: isn, ack: 1, n: 100, tsval: 10, tsecr: 5, atMS: 0},
			{flags: PA, seq: 1, ack: isn, n: 10, tsval: 6, tsecr: 9, atMS: 2},
			{out: true, flags: PA, seq: isn, ack: 1, n: 100, tsval: 10, tsecr: 5, atMS: 15, wantDup: true},
			{flags: A, seq: 11, ack: isn + 100, tsval: 7, tsecr: 10, atMS: 30, wantSample: 30},
		}},
		{"v4 copies 30 ms apart with one IP ID: copy (merged files)", false, []hp{
			{out: true, flags: PA, seq: isn, ack: 1, n: 100, ipid: 10, atMS: 0},
			{flags: A, seq: 1, ack: isn, ipid: 50, atMS: 10},
			{out: true, flags: PA, seq: isn, ack: 1, n: 100, ipid: 10, atMS: 30, wantDup: true},
			{flags: A, seq: 1, ack: isn + 100, ipid: 51, atMS: 40, wantSample: 40},
		}},
		{"v4 same IP ID after the window is still a copy: IDs only grow", false, []hp{
			{out: true, flags: PA, seq: isn, ack: 1, n: 100, ipid: 10, atMS: 0},
			{out: true, flags: PA, seq: isn, ack: 1, n: 100, ipid: 10, atMS: 1500, wantDup: true},
			{flags: A, seq: 1, ack: isn + 100, atMS: 1510, wantSample: 1510},
		}},
		{"v4 copy behind many frames (any across a forwarding hop): older IP ID", false, []hp{
			{out: true, flags: PA, seq: isn, ack: 1, n: 100, ipid: 10, atMS: 0},
			{out: true, flags: PA, seq: isn + 100, ack: 1, n: 100, ipid: 11, atMS: 0.01},
			{out: true, flags: PA, seq: isn + 200, ack: 1, n: 100, ipid: 12, atMS: 0.02},
			{out: true, flags: PA, seq: isn + 300, ack: 1, n: 100, ipid: 13, atMS: 0.03},
			{out: true, flags: PA, seq: isn + 400, ack: 1, n: 100, ipid: 14, atMS: 0.04},
			{out: true, flags: PA, seq: isn + 500, ack: 1, n: 100, ipid: 15, atMS: 0.05},
			{out: true, flags: PA, seq: isn + 600, ack: 1, n: 100, ipid: 16, atMS: 0.06},
			{out: true, flags: PA, seq: isn + 700, ack: 1, n: 100, ipid: 17, atMS: 0.07},
			{out: true, flags: PA, seq: isn + 800, ack: 1, n: 100, ipid: 18, atMS: 0.08},
			{out: true, flags: PA, seq: isn, ack: 1, n: 100, ipid: 10, atMS: 0.5, wantDup: true},
			{out: true, flags: PA, seq: isn, ack: 1, n: 100, ipid: 19, atMS: 300, wantRetrans: true},
			{flags: A, seq: 1, ack: isn + 900, atMS: 310},
		}},
		{"v6 copy behind many frames: older TSval", true, []hp{
			{out: true, flags: PA, seq: isn, ack: 1, n: 100, tsval: 10, tsecr: 5, atMS: 0},
			{out: true, flags: PA, seq: isn + 100, ack: 1, n: 100, tsval: 11, tsecr: 5, atMS: 1},
			{out: true, flags: PA, seq: isn + 200, ack: 1, n: 100, tsval: 11, tsecr: 5, atMS: 1.01},
			{out: true, flags: PA, seq: isn + 300, ack: 1, n: 100, tsval: 11, tsecr: 5, atMS: 1.02},
			{out: true, flags: PA, seq: isn + 400, ack: 1, n: 100, tsval: 11, tsecr: 5, atMS: 1.03},
			{out: true, flags: PA, seq: isn + 500, ack: 1, n: 100, tsval: 11, tsecr: 5, atMS: 1.04},
			{out: true, flags: PA, seq: isn + 600, ack: 1, n: 100, tsval: 11, tsecr: 5, atMS: 1.05},
			{out: true, flags: PA, seq: isn + 700, ack: 1, n: 100, tsval: 11, tsecr: 5, atMS: 1.06},
			{out: true, flags: PA, seq: isn + 800, ack: 1, n: 100, tsval: 11, tsecr: 5, atMS: 1.07},
			{flags: A, seq: 1, ack: isn, tsval: 6, tsecr: 10, atMS: 1.1},
			{out: true, flags: PA, seq: isn, ack: 1, n: 100, tsval: 10, tsecr: 5, atMS: 1.2, wantDup: true},
			{flags: A, seq: 1, ack: isn + 900, tsval: 7, tsecr: 11, atMS: 20, wantSample: 20},
		}},
		{"v4 random IP IDs: an older ID on old data is still a retransmission", false, []hp{
			{out: true, flags: PA, seq: isn, ack: 1, n: 100, ipid: 5000, atMS: 0},
			{out: true, flags: PA, seq: isn + 100, ack: 1, n: 100, ipid: 71, atMS: 0.01},
			{out: true, flags: PA, seq: isn, ack: 1, n: 100, ipid: 900, atMS: 200, wantRetrans: true},
			{flags: A, seq: 1, ack: isn + 200, atMS: 210},
		}},
		{"v6 no TSval: RTO retransmission, identical bytes, is a retransmission", true, []hp{
			{out: true, flags: PA, seq: isn, ack: 1, n: 100, atMS: 0},
			{out: true, flags: PA, seq: isn, ack: 1, n: 100, atMS: 200, wantRetrans: true},
			{flags: A, seq: 1, ack: isn + 100, atMS: 210},
		}},
		{"v6 no TSval: identical bytes after a peer packet is a retransmission", true, []hp{
			{out: true, flags: PA, seq: isn, ack: 1, n: 100, atMS: 0},
			{out: true, flags: PA, seq: isn + 100, ack: 1, n: 100, atMS: 0.01},
			{flags: A, seq: 1, ack: isn, atMS: 0.3},
			{out: true, flags: PA, seq: isn, ack: 1, n: 100, atMS: 0.4, wantRetrans: true},
			{flags: A, seq: 1, ack: isn + 200, atMS: 0.7},
		}},
		{"v4 SYN copied: the handshake is still timed", false, []hp{
			{out: true, flags: S, seq: isn, ipid: 0, atMS: 0},
			{out: true, flags: S, seq: isn, ipid: 0, atMS: 0.005, wantDup: true},
			{flags: SA, seq: 5000, ack: isn + 1, atMS: 3, wantSample: 3},
			{flags: SA, seq: 5000, ack: isn + 1, atMS: 3.005},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := playHealth(t, tc.v6, tc.evs)
			var dups, retrans uint64
			for _, e := range tc.evs {
				if e.wantDup {
					dups++
				}
				if e.wantRetrans {
					retrans++
				}
			}
			s := firstFlow(tb).summary()
			if s.Health.Duplicates != dups || s.Retransmits != retrans {
				t.Fatalf("flow: %d duplicates, %d retransmits; want %d, %d", s.Health.Duplicates, s.Retransmits, dups, retrans)
			}
		})
	}
}

func TestConnectionHealth(t *testing.T) {
	const isn = 1000
	tests := []struct {
		name string
		evs  []hp
		want Health
		// wantRefused is the table's refusal counter afterwards.
		wantRefused uint64
	}{
		{"refused: SYN answered by RST/ACK is timed", []hp{
			{out: true, flags: S, seq: isn, ipid: 1, atMS: 0},
			{flags: R | A, seq: 0, ack: isn + 1, atMS: 0.4, wantSample: 0.4},
		}, Health{Role: RoleClient, Refused: true, Handshake: ms(0.4)}, 1},
		{"refused after a SYN retransmission: refusal, no sample (Karn)", []hp{
			{out: true, flags: S, seq: isn, ipid: 1, atMS: 0},
			{out: true, flags: S, seq: isn, ipid: 2, atMS: 1000, wantRetrans: true},
			{flags: R | A, seq: 0, ack: isn + 1, atMS: 1000.4},
		}, Health{Role: RoleClient, Refused: true}, 1},
		{"RST/ACK that does not ack our SYN is not timed", []hp{
			{out: true, flags: S, seq: isn, ipid: 1, atMS: 0},
			{flags: R | A, seq: 0, ack: isn + 7, atMS: 0.4},
		}, Health{Role: RoleClient, Refused: true}, 1},
		{"we refuse the peer's SYN", []hp{
			{flags: S, seq: 5000, atMS: 0},
			{out: true, flags: R | A, seq: 0, ack: 5001, atMS: 0.01},
		}, Health{Role: RoleServer, Refused: true}, 1},
		{"SYN unanswered", []hp{
			{out: true, flags: S, seq: isn, ipid: 1, atMS: 0},
			{out: true, flags: S, seq: isn, ipid: 2, atMS: 1000, wantRetrans: true},
		}, Health{Role: RoleClient, SYNUnanswered: true}, 0},
		{"client: opened, request/response, zero window, closed", []hp{
			{out: true, flags: S, seq: isn, ipid: 1, atMS: 0},
			{flags: SA, seq: 5000, ack: isn + 1, atMS: 10, wantSample: 10},
			{out: true, flags: A, seq: isn + 1, ack: 5001, ipid: 2, atMS: 10.1},
			{out: true, flags: PA, seq: isn + 1, ack: 5001, n: 100, ipid: 3, atMS: 10.2},
			{out: true, flags: PA, seq: isn + 101, ack: 5001, n: 50, ipid: 4, atMS: 10.3},
			{flags: A, seq: 5001, ack: isn + 151, atMS: 20.2, wantSample: 10},
			// 25 ms of server think time after the last request byte (10.3).
			{flags: PA, seq: 5001, ack: isn + 151, n: 1000, atMS: 45.3},
			{flags: PA, seq: 6001, ack: isn + 151, n: 1000, atMS: 45.4},
			{out: true, flags: A, seq: isn + 151, ack: 7001, ipid: 5, zeroWin: true, atMS: 45.5},
			{out: true, flags: A, seq: isn + 151, ack: 7001, ipid: 6, zeroWin: true, atMS: 46},
			{out: true, flags: A, seq: isn + 151, ack: 7001, ipid: 7, atMS: 50},
			// Second request, answered after 5 ms.
			{out: true, flags: PA, seq: isn + 151, ack: 7001, n: 10, ipid: 8, atMS: 60},
			{flags: PA, seq: 7001, ack: isn + 161, n: 10, atMS: 65, wantSample: 5},
			{flags: A, seq: 7011, ack: isn + 161, zeroWin: true, atMS: 66},
			{flags: A, seq: 7011, ack: isn + 161, atMS: 67},
			{out: true, flags: F | A, seq: isn + 161, ack: 7011, ipid: 9, atMS: 70},
			{flags: F | A, seq: 7011, ack: isn + 162, atMS: 80, wantSample: 10},
		}, Health{Role: RoleClient, Opened: true, FIN: true, ZeroWindowsLocal: 1, ZeroWindowsRemote: 1,
			Handshake: ms(10), ResponseSum: ms(35) + ms(5), Responses: 2}, 0},
		{"server: accepted, reset; no response time for connections we accept", []hp{
			{flags: S, seq: 5000, atMS: 0},
			{out: true, flags: SA, seq: isn, ack: 5001, ipid: 1, atMS: 0.1},
			{flags: A, seq: 5001, ack: isn + 1, atMS: 30.1, wantSample: 30},
			{flags: PA, seq: 5001, ack: isn + 1, n: 10, atMS: 31},
			{out: true, flags: PA, seq: isn + 1, ack: 5011, n: 10, ipid: 2, atMS: 32},
			{flags: PA, seq: 5011, ack: isn + 11, n: 10, atMS: 62, wantSample: 30},
			{flags: R | A, seq: 5021, ack: isn + 11, atMS: 63},
		}, Health{Role: RoleServer, Opened: true, Reset: true, Handshake: ms(30)}, 0},
		{"mid-stream RST is a reset, role unknown", []hp{
			{out: true, flags: PA, seq: isn, ack: 1, n: 10, ipid: 1, atMS: 0},
			{flags: R, seq: 1, atMS: 1},
		}, Health{Reset: true}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := playHealth(t, false, tc.evs)
			got := firstFlow(tb).summary().Health
			got.RTTSampled, got.RTTSeen = [ReservoirSize]uint32{}, 0 // TestReservoir's
			if got != tc.want {
				t.Fatalf("health\n got %+v\nwant %+v", got, tc.want)
			}
			if got := tb.Counters().Refused; got != tc.wantRefused {
				t.Fatalf("table counts %d refusals, want %d", got, tc.wantRefused)
			}
		})
	}
}

// sampleFlow is a flow of a table whose recent-frames pool has a block
// for it (or none, without one), for the reservoir tests.
func sampleFlow(t testing.TB, withBlock bool) (*Table, *Flow) {
	tb := NewTable(TableConfig{MaxFlows: 4, IdleTTL: 1e18, ExpTTL: 1e18}, localSet{v4(localIP): true}, nil)
	if !withBlock {
		tb.recents.used = int32(len(tb.recents.blocks)) // every block handed out
	}
	syn := synTo(443)
	tb.Process(&syn, 1)
	return tb, firstFlow(tb)
}

func TestReservoir(t *testing.T) {
	// Fewer samples than the reservoir: all kept, in order, the first
	// smallRes in the small rings, then in full-size ones.
	tb, f := sampleFlow(t, true)
	for i := int64(1); i <= 5; i++ {
		f.addSample(i*1000, i, &tb.sc)
	}
	if h := f.summary().Health; h.RTTSeen != 5 || [6]uint32(h.RTTSampled[:6]) != [6]uint32{1, 2, 3, 4, 5, 0} || f.recent() == nil {
		t.Fatalf("small interval: seen %d sampled %v, full-size block %v", h.RTTSeen, h.RTTSampled, f.recent() != nil)
	}
	// Many samples: the kept ones are a uniform subset, of the full size,
	// or of the small size when the pool has no block to give. Offer
	// 1..1000 µs to many reservoirs and look at where the kept values
	// fall: each tenth of the interval should hold a tenth of them.
	for _, tc := range []struct {
		block bool
		size  int
	}{{true, ReservoirSize}, {false, smallRes}} {
		const trials, n = 4000, 1000
		var deciles [10]int
		ts := int64(1_700_000_000) * 1e9
		for k := 0; k < trials; k++ {
			tb, f := sampleFlow(t, tc.block)
			for i := int64(1); i <= n; i++ {
				ts += 37_000 + i%7*1000 // capture times as they come
				f.addSample(i*1000, ts, &tb.sc)
			}
			h := f.summary().Health
			if h.RTTSeen != n {
				t.Fatalf("seen %d, offered %d", h.RTTSeen, n)
			}
			for _, v := range h.RTTSampled[:tc.size] {
				deciles[(v-1)*10/n]++
			}
		}
		want := trials * tc.size / 10
		// Binomial sd ~ sqrt(want*0.9): 76 at the full size; allow 4 sd.
		slack := 4 * int(math.Sqrt(float64(want)*0.9))
		for d, got := range deciles {
			if got < want-slack || got > want+slack {
				t.Fatalf("reservoir of %d: decile %d holds %d kept samples, want %d±%d: %v", tc.size, d, got, want, slack, deciles)
			}
		}
	}
}

func TestSummaryHandsOverReservoir(t *testing.T) {
	tb := playHealth(t, false, []hp{
		{out: true, flags: PA, seq: 1000, ack: 1, n: 10, ipid: 1, atMS: 0},
		{flags: A, seq: 1, ack: 1010, atMS: 7, wantSample: 7},
	})
	f := firstFlow(tb)
	if h := f.summary().Health; h.RTTSeen != 1 || h.RTTSampled[0] != 7000 {
		t.Fatalf("first summary: seen %d, sampled %v", h.RTTSeen, h.RTTSampled)
	}
	if h := f.summary().Health; h.RTTSeen != 0 {
		t.Fatalf("second summary: seen %d samples again", h.RTTSeen)
	}
}
