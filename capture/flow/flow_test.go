package flow

import (
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/gometro/go-metro/capture/packet"
	"github.com/gometro/go-metro/capture/rtt"
)

var (
	localIP  = netip.MustParseAddr("10.0.0.1")
	remoteIP = netip.MustParseAddr("10.0.0.2")
)

type localSet map[[16]byte]bool

func (s localSet) Sides(src, dst *[16]byte) (bool, bool) { return s[*src], s[*dst] }

// ev is one crafted segment: out=true is ours. Times are in ms.
type ev struct {
	out        bool
	flags      uint8
	seq, ack   uint32
	n          uint32 // payload bytes
	tsval      uint32
	tsecr      uint32
	sack       []packet.SACKBlock
	atMS       float64
	wantSample float64 // ms; 0: this packet must not add a sample
	wantN      uint64  // samples this packet adds when both methods time it (default 1)
	// The sample's own figures (Last, Min, Max, the reservoir) are
	// wantSample, or exactly wantReported if set, or anywhere from
	// wantSample to reportedUpTo if that is set; they are never below the
	// sample. What moves the smoothed RTT may be up to slack either side
	// of wantSample (an interpolated send time); 0: exactly wantSample.
	wantReported, reportedUpTo, slack float64
	// wantEcho, if set, is an echo sample (ms) this packet adds besides
	// the sequence sample wantSample: two samples, each checked.
	wantEcho float64
	tunnel   *packet.Tunnel // the tunnel the segment came in, if any
	mss      uint16         // the MSS option's value, if any
	// wantRetrans is how many retransmitted segments the packet counts,
	// checked by playRetrans (not by play).
	wantRetrans uint64
}

const (
	S  = packet.FlagSYN
	A  = packet.FlagACK
	F  = packet.FlagFIN
	R  = packet.FlagRST
	PA = packet.FlagPSH | packet.FlagACK
	SA = packet.FlagSYN | packet.FlagACK
)

func (e ev) packet() packet.Packet {
	p := packet.Packet{Flags: e.flags, Seq: e.seq, Ack: e.ack, PayloadLen: e.n, Window: 1000}
	if e.tunnel != nil {
		p.Tunnel = *e.tunnel
	}
	p.MSS = e.mss
	src, dst := localIP, remoteIP
	sp, dp := uint16(40000), uint16(443)
	if !e.out {
		src, dst, sp, dp = dst, src, dp, sp
	}
	p.Src, p.Dst = netip.AddrFrom16(src.As16()).As16(), netip.AddrFrom16(dst.As16()).As16()
	p.Src = netip.AddrFrom4(src.As4()).As16()
	p.Dst = netip.AddrFrom4(dst.As4()).As16()
	p.SrcPort, p.DstPort = sp, dp
	if e.tsval != 0 || e.tsecr != 0 {
		p.HasTimestamps = true
		p.TSval, p.TSecr = e.tsval, e.tsecr
	}
	p.NumSACK = uint8(copy(p.SACK[:], e.sack))
	return p
}

func ms(f float64) int64 { return int64(math.Round(f * 1e6)) }

// srttInput is the sample that moved e from before to after: SRTT moves by
// (sample-SRTT)/8 truncated toward zero, so the sample is known within 7 ns.
func srttInput(before, after rtt.Estimator) int64 {
	if before.Samples == 0 {
		return after.SRTT
	}
	return before.SRTT + 8*(after.SRTT-before.SRTT)
}

// play feeds events to a fresh table and checks, packet by packet, that a
// sample appears exactly where one is expected, with the expected value.
func play(t *testing.T, evs []ev) *Table {
	t.Helper()
	locals := localSet{netip.AddrFrom4(localIP.As4()).As16(): true}
	tb := NewTable(TableConfig{MaxFlows: 16, IdleTTL: ms(1e6), ExpTTL: ms(1e6)}, locals, nil)
	base := int64(1_700_000_000) * 1e9
	var seqBefore [16]rtt.Estimator
	for i, e := range evs {
		before := tb.Counters().Samples
		for k := int32(0); k < tb.used; k++ {
			seqBefore[k] = tb.flows[k].seq
		}
		var last, input, echo int64
		p := e.packet()
		tb.Process(&p, base+ms(e.atMS))
		after := tb.Counters().Samples
		if tb.lastIdx >= 0 {
			// The flow the packet went to (the last one found).
			fl := &tb.flows[tb.lastIdx]
			if int(tb.lastIdx) >= int(tb.used) || fl.firstSeen == base+ms(e.atMS) {
				seqBefore[tb.lastIdx] = rtt.Estimator{}
			}
			seqBefore := seqBefore[tb.lastIdx]
			if fl.seq.LastAt == base+ms(e.atMS) {
				last, input = fl.seq.Last, srttInput(seqBefore, fl.seq)
			}
			if fl.echo.LastAt == base+ms(e.atMS) {
				echo = fl.echo.Last
				if e.wantEcho == 0 {
					last, input = echo, echo
				}
			}
		}
		if e.wantEcho != 0 {
			e.wantN = 2
			if echo != ms(e.wantEcho) {
				t.Fatalf("event %d: echo sample %.6f ms, want %.6f ms", i, float64(echo)/1e6, e.wantEcho)
			}
		}
		want, slack := ms(e.wantSample), max(ms(e.slack), 7)
		lo, hi := want, want
		switch {
		case e.wantReported != 0:
			lo, hi = ms(e.wantReported), ms(e.wantReported)
		case e.reportedUpTo != 0:
			hi = ms(e.reportedUpTo)
		}
		switch {
		case e.wantSample == 0 && after != before:
			t.Fatalf("event %d (%+v): unexpected sample %.6f ms", i, e, float64(last)/1e6)
		case e.wantSample != 0 && after != before+max(e.wantN, 1):
			t.Fatalf("event %d (%+v): want one sample of %.6f ms, got %d samples", i, e, e.wantSample, after-before)
		case e.wantSample != 0 && (input < want-slack || input > want+slack):
			t.Fatalf("event %d: the smoothed RTT took %.6f ms, want %.6f ms ± %.6f", i, float64(input)/1e6, e.wantSample, float64(slack)/1e6)
		case e.wantSample != 0 && (last < lo || last > hi):
			t.Fatalf("event %d: sample %.6f ms, want %.6f..%.6f ms", i, float64(last)/1e6, float64(lo)/1e6, float64(hi)/1e6)
		}
	}
	return tb
}

func firstFlow(tb *Table) *Flow {
	for i := int32(0); i < tb.used; i++ {
		if tb.flows[i].state&inUse != 0 {
			return &tb.flows[i]
		}
	}
	return nil
}

func TestSamplingRules(t *testing.T) {
	const isn = 1000
	var wrap uint32 = 0xFFFFFF00 // sequence numbers wrap inside the exchange
	tests := []struct {
		name string
		evs  []ev
	}{
		{"connect: SYN timed by SYN/ACK", []ev{
			{out: true, flags: S, seq: isn, atMS: 0},
			{flags: SA, seq: 5000, ack: isn + 1, atMS: 20, wantSample: 20},
			{out: true, flags: A, seq: isn + 1, ack: 5001, atMS: 20.1},
		}},
		{"accept: SYN/ACK timed by ACK", []ev{
			{flags: S, seq: 5000, atMS: 0},
			{out: true, flags: SA, seq: isn, ack: 5001, atMS: 0.1},
			{flags: A, seq: 5001, ack: isn + 1, atMS: 30.1, wantSample: 30},
		}},
		// suricata-verify tls-subjectaltname: the first SYN meets an old
		// connection's ACK (976 M past our ISN), which our RST answers;
		// the SYN, re-sent, then opens the connection normally.
		{"stale ACK of unsent data while the SYN is out is ignored", []ev{
			{out: true, flags: S, seq: isn, atMS: 0},
			{flags: A, seq: 5000, ack: isn + 976_000_000, atMS: 18},
			{out: true, flags: R, seq: isn + 976_000_000, atMS: 18.1},
			{out: true, flags: S, seq: isn, atMS: 3000},
			{flags: SA, seq: 9000, ack: isn + 1, atMS: 3020},
			{out: true, flags: PA, seq: isn + 1, ack: 9001, n: 178, atMS: 3020.5},
			{flags: A, seq: 9001, ack: isn + 179, atMS: 3038.5, wantSample: 18},
		}},
		{"ACK further ahead than any window is ignored", []ev{
			{out: true, flags: PA, seq: isn, ack: 1, n: 100, atMS: 0},
			{flags: A, seq: 1, ack: isn + 100 + 65535<<14 + 1, atMS: 5},
			{out: true, flags: PA, seq: isn + 100, ack: 1, n: 100, atMS: 6},
			{flags: A, seq: 1, ack: isn + 200, atMS: 16, wantSample: 16},
		}},
		{"retransmitted SYN is not timed (Karn)", []ev{
			{out: true, flags: S, seq: isn, atMS: 0},
			{out: true, flags: S, seq: isn, atMS: 1000},
			{flags: SA, seq: 5000, ack: isn + 1, atMS: 1020},
		}},
		{"single small request is timed", []ev{
			{out: true, flags: PA, seq: isn, ack: 1, n: 100, atMS: 0},
			{flags: A, seq: 1, ack: isn + 100, atMS: 12, wantSample: 12},
		}},
		{"one sample per ACK, from the earliest newly acked segment", []ev{
			{out: true, flags: PA, seq: isn, ack: 1, n: 1000, atMS: 0},
			{out: true, flags: PA, seq: isn + 1000, ack: 1, n: 1000, atMS: 1},
			{out: true, flags: PA, seq: isn + 2000, ack: 1, n: 1000, atMS: 2},
			{flags: A, seq: 1, ack: isn + 2000, atMS: 10, wantSample: 10},
			{flags: A, seq: 1, ack: isn + 3000, atMS: 12, wantSample: 10},
		}},
		{"partial ACK keeps the segment's original time", []ev{
			{out: true, flags: PA, seq: isn, ack: 1, n: 3000, atMS: 0},
			{flags: A, seq: 1, ack: isn + 1448, atMS: 10, wantSample: 10},
			{flags: A, seq: 1, ack: isn + 3000, atMS: 11, wantSample: 11},
		}},
		{"retransmitted segment is not timed (Karn)", []ev{
			{out: true, flags: PA, seq: isn, ack: 1, n: 100, atMS: 0},
			{out: true, flags: PA, seq: isn, ack: 1, n: 100, atMS: 200},
			{flags: A, seq: 1, ack: isn + 100, atMS: 210},
		}},
		{"ACK covering segments sent before a retransmission is not timed (Karn)", []ev{
			{out: true, flags: PA, seq: isn, ack: 1, n: 100, atMS: 0},
			{out: true, flags: PA, seq: isn + 100, ack: 1, n: 100, atMS: 1},
			{out: true, flags: PA, seq: isn + 100, ack: 1, n: 100, atMS: 50},
			{flags: A, seq: 1, ack: isn + 200, atMS: 60},
			{out: true, flags: PA, seq: isn + 200, ack: 1, n: 100, atMS: 61},
			{flags: A, seq: 1, ack: isn + 300, atMS: 71, wantSample: 10},
		}},
		{"repacketized retransmission with new data is not timed", []ev{
			{out: true, flags: PA, seq: isn, ack: 1, n: 100, atMS: 0},
			{out: true, flags: PA, seq: isn, ack: 1, n: 300, atMS: 200},
			{flags: A, seq: 1, ack: isn + 300, atMS: 210},
		}},
		{"sequence wraparound", []ev{
			{out: true, flags: PA, seq: wrap, ack: 1, n: 200, atMS: 0},
			{out: true, flags: PA, seq: wrap + 200, ack: 1, n: 200, atMS: 1},
			{flags: A, seq: 1, ack: wrap + 200, atMS: 5, wantSample: 5},
			{flags: A, seq: 1, ack: wrap + 400, atMS: 7, wantSample: 6},
			{flags: A, seq: 1, ack: wrap + 400, atMS: 8}, // duplicate
		}},
		{"keepalive and its ACK are not samples", []ev{
			{out: true, flags: PA, seq: isn, ack: 1, n: 10, atMS: 0},
			{flags: A, seq: 1, ack: isn + 10, atMS: 5, wantSample: 5},
			{out: true, flags: A, seq: isn + 9, ack: 1, n: 1, atMS: 7500},
			{flags: A, seq: 1, ack: isn + 10, atMS: 7505},
			{out: true, flags: A, seq: isn + 9, ack: 1, n: 0, atMS: 9000},
			{flags: A, seq: 1, ack: isn + 10, atMS: 9005},
		}},
		{"window update and duplicate ACK are not samples", []ev{
			{out: true, flags: PA, seq: isn, ack: 1, n: 10, atMS: 0},
			{flags: A, seq: 1, ack: isn + 10, atMS: 5, wantSample: 5},
			{flags: A, seq: 1, ack: isn + 10, atMS: 6},
			{out: true, flags: A, seq: isn + 10, ack: 1, atMS: 7},
			{flags: A, seq: 1, ack: isn + 10, atMS: 8},
		}},
		{"ACK of data the capture never saw sent is not timed", []ev{
			{out: true, flags: PA, seq: isn, ack: 1, n: 10, atMS: 0},
			{flags: A, seq: 1, ack: isn + 500, atMS: 5},
			{out: true, flags: PA, seq: isn + 500, ack: 1, n: 10, atMS: 6},
			{flags: A, seq: 1, ack: isn + 510, atMS: 9, wantSample: 3},
		}},
		{"gap: first newly acked bytes unrecorded, no sample", []ev{
			{out: true, flags: PA, seq: isn, ack: 1, n: 10, atMS: 0},
			{flags: A, seq: 1, ack: isn + 10, atMS: 5, wantSample: 5},
			// isn+10..isn+20 was sent but not captured
			{out: true, flags: PA, seq: isn + 20, ack: 1, n: 10, atMS: 6},
			{flags: A, seq: 1, ack: isn + 30, atMS: 9},
		}},
		{"SACK of new data is timed from the earliest newly SACKed segment", []ev{
			{out: true, flags: PA, seq: isn, ack: 1, n: 100, atMS: 0},
			{out: true, flags: PA, seq: isn + 100, ack: 1, n: 100, atMS: 1},
			{out: true, flags: PA, seq: isn + 200, ack: 1, n: 100, atMS: 2},
			{flags: A, seq: 1, ack: isn, atMS: 11, sack: []packet.SACKBlock{{Left: isn + 100, Right: isn + 200}}, wantSample: 10},
			{flags: A, seq: 1, ack: isn, atMS: 12, sack: []packet.SACKBlock{{Left: isn + 100, Right: isn + 300}}, wantSample: 10},
			{out: true, flags: PA, seq: isn, ack: 1, n: 100, atMS: 13},
			{flags: A, seq: 1, ack: isn + 300, atMS: 23},
		}},
		{"receive-mostly: first echo of our TSval is timed", []ev{
			{flags: PA, seq: 1, ack: isn, n: 1448, tsval: 500, tsecr: 90, atMS: 0},
			{out: true, flags: A, seq: isn, ack: 1449, tsval: 100, tsecr: 500, atMS: 0.1},
			{out: true, flags: A, seq: isn, ack: 2897, tsval: 100, tsecr: 500, atMS: 0.5}, // same TSval: no new entry
			{flags: PA, seq: 2897, ack: isn, n: 1448, tsval: 520, tsecr: 100, atMS: 20.1, wantSample: 20},
			{flags: PA, seq: 4345, ack: isn, n: 1448, tsval: 520, tsecr: 100, atMS: 20.6}, // second echo
			{out: true, flags: A, seq: isn, ack: 5793, tsval: 121, tsecr: 520, atMS: 21},
			{flags: PA, seq: 5793, ack: isn, n: 1448, tsval: 541, tsecr: 121, atMS: 42, wantSample: 21},
		}},
		{"echo of a TSval we never recorded is not timed", []ev{
			{out: true, flags: A, seq: isn, ack: 1, tsval: 100, tsecr: 1, atMS: 0},
			{flags: PA, seq: 1, ack: isn, n: 10, tsval: 5, tsecr: 99, atMS: 10},
		}},
		{"RST and FIN close the flow without samples", []ev{
			{out: true, flags: F | A, seq: isn, ack: 1, atMS: 0},
			{flags: R, seq: 1, atMS: 1},
		}},
		// Flights of 300 segments outgrow the 128 entries, so entries hold
		// several frames; every ACK is still timed from the send time of
		// its earliest newly acked segment, interpolated inside the entry
		// (exact here: equal frames at a steady pace).
		{"decimated flight, ACKs compressed into one burst: every ACK timed", decimatedFlight(isn, 300, 0.125, 1,
			func(k int) float64 { return 50 + float64(k)/64 }, func(int) bool { return true })},
		{"decimated flight, stretch ACKs while the queue grows: every ACK timed", decimatedFlight(isn, 300, 0.125, 3,
			func(k int) float64 { return 20 + float64(3*k)*0.125 + float64(k)/16 }, func(int) bool { return true })},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { play(t, tc.evs) })
	}
}

// decimatedFlight is a flight of n 1000-byte segments sent gapMS apart,
// then ACKs that each newly acknowledge the next step segments, the k-th
// arriving at ackAt(k); timed(k) says whether it must be timed, from its
// earliest newly acked segment. Times should be exact binary fractions, so
// the expected samples are exact.
func decimatedFlight(isn uint32, n int, gapMS float64, step int, ackAt func(k int) float64, timed func(k int) bool) []ev {
	const mss = 1000
	var evs []ev
	for i := 0; i < n; i++ {
		evs = append(evs, ev{out: true, flags: PA, seq: isn + uint32(i)*mss, ack: 1, n: mss, atMS: float64(i) * gapMS})
	}
	for k := 0; (k+1)*step <= n; k++ {
		e := ev{flags: A, seq: 1, ack: isn + uint32((k+1)*step)*mss, atMS: ackAt(k)}
		if timed(k) {
			// Entries of up to 4 frames: the sample's own figures may be
			// timed from up to 3 frames before the earliest newly acked.
			e.wantSample = e.atMS - float64(k*step)*gapMS
			e.reportedUpTo = e.wantSample + 3*gapMS
		}
		evs = append(evs, e)
	}
	return evs
}

func TestEstimateSourceSelection(t *testing.T) {
	// Handshake sample, then only echo samples: the echo estimator is reported.
	tb := play(t, []ev{
		{out: true, flags: S, seq: 10, tsval: 1, atMS: 0},
		{flags: SA, seq: 100, ack: 11, tsval: 7, tsecr: 1, atMS: 50, wantSample: 50, wantN: 2},
		{out: true, flags: A, seq: 11, ack: 101, tsval: 60, tsecr: 7, atMS: 50.1},
		{flags: PA, seq: 101, ack: 11, n: 1000, tsval: 80, tsecr: 60, atMS: 70.1, wantSample: 20},
	})
	f := firstFlow(tb)
	if got := f.Estimate(); got.Samples != 2 || got.Last != ms(20) {
		t.Fatalf("receive-mostly flow reports %+v, want the echo estimator", got)
	}
	// Once our own data is timed, the kernel-style estimator wins.
	tb = play(t, []ev{
		{out: true, flags: PA, seq: 10, ack: 1, n: 10, tsval: 1, atMS: 0},
		{flags: A, seq: 1, ack: 20, tsval: 7, tsecr: 1, atMS: 30, wantSample: 30, wantN: 2},
	})
	// That ACK produced a seq sample and, as the first echo of TSval 1, an
	// echo sample: play counts samples per packet, so check the split here.
	f = firstFlow(tb)
	if got := f.Estimate(); got != f.seq {
		t.Fatalf("flow with timed data reports %+v, want the sequence estimator", got)
	}
}

// TestDecimatedFlightNeverMisattributes sends flights of 300 segments (past
// the 128 entries) with different pacing and ACKs each segment with its own
// RTT. Without an RTT estimate yet, every sample taken must be the exact RTT
// of its segment: interpolation is used only where frames are of one size
// and evenly spaced, and elsewhere the ACK is not timed rather than timed
// wrong. Once the handshake gave an RTT, entries whose span is within 1/32
// of it interpolate whatever their pacing, and every sample must be within
// that span of the truth. The share of ACKs timed is logged and must stay
// above minTimed.
func TestDecimatedFlightNeverMisattributes(t *testing.T) {
	us := int64(time.Microsecond)
	mss := func(int64) uint32 { return 1000 }
	// Cases without hsRTT: the flow has no RTT yet, so no span budget.
	tests := []struct {
		name     string
		sentUS   func(i int64) int64
		size     func(i int64) uint32
		minTimed float64
		hsRTT    int64 // µs; a handshake first gives the flow this RTT
	}{
		// Steady pace: every entry interpolates exactly.
		{"steady 100 µs", func(i int64) int64 { return 100 * i }, mss, 1, 0},
		// An application writing 10 segments at once every 5 ms: an
		// entry across a pause would shift the interpolated time of the
		// frames after it by up to 5 ms. Only entries that a decimation
		// merged across a pause lose interpolation.
		{"bursts of 10, 5 ms apart", func(i int64) int64 { return i/10*5000 + i%10*10 }, mss, 0.75, 0},
		// 4 frames 50 ms apart do not fit the span field: those entries
		// keep only their first frame's time.
		{"50 ms apart: spans overflow", func(i int64) int64 { return 50000 * i }, mss, 0.25, 0},
		// TSO-like sizes: three 1000-byte frames, then a 4000-byte one.
		// Interpolating by position in an entry of mixed sizes would pick
		// the wrong frame; such frames start new entries instead, and a
		// decimation that merges a run of 1000s with a 4000 keeps only
		// the merged entry's first frame timed: about half the ACKs.
		{"mixed sizes, steady pace", func(i int64) int64 { return 100 * i },
			func(i int64) uint32 { return 1000 + 3000*uint32(i%4/3) }, 0.5, 0},
		// An application writing 33 segments every 10 ms whose last is
		// a little short (950 bytes): the short frame and the next
		// write's first make a two-frame entry across the pause, whose
		// second frame must still be found although the sizes differ.
		{"writes ending in a short frame, 10 ms apart", func(i int64) int64 { return i/33*10000 + i%33*10 },
			func(i int64) uint32 { return 1000 - 50*uint32(i%33/32) }, 0.75, 0},
		// Slow start behind a bottleneck: each ACK releases two frames
		// back to back, ACKs come 580 µs apart. Not evenly spaced, but
		// with a 20 ms RTT known, spans up to 625 µs interpolate.
		{"slow-start pairs, RTT known", func(i int64) int64 { return i/2*580 + i%2*10 }, mss, 0.9, 20000},
		{"mixed sizes, RTT known", func(i int64) int64 { return 100 * i },
			func(i int64) uint32 { return 1000 + 3000*uint32(i%4/3) }, 0.9, 20000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			locals := localSet{netip.AddrFrom4(localIP.As4()).As16(): true}
			tb := NewTable(TableConfig{MaxFlows: 4, IdleTTL: ms(1e9), ExpTTL: ms(1e9)}, locals, nil)
			const n = 300
			base := int64(1_700_000_000) * 1e9
			ends := make([]uint32, n)
			seq := uint32(1)
			if tc.hsRTT > 0 {
				syn := ev{out: true, flags: S, seq: 0}.packet()
				tb.Process(&syn, base-2*tc.hsRTT*us)
				synack := ev{flags: SA, seq: 5000, ack: 1}.packet()
				tb.Process(&synack, base-tc.hsRTT*us)
			}
			budget := tc.hsRTT * us / 32
			for i := int64(0); i < n; i++ {
				p := ev{out: true, flags: PA, seq: seq, ack: 1, n: tc.size(i)}.packet()
				tb.Process(&p, base+tc.sentUS(i)*us)
				seq += tc.size(i)
				ends[i] = seq
			}
			timed := 0
			for i := int64(0); i < n; i++ {
				rtt := 20000*us + i*us // a different RTT per segment
				p := ev{flags: A, seq: 1, ack: ends[i]}.packet()
				before := tb.Counters().Samples
				prev := firstFlow(tb).seq
				tb.Process(&p, base+tc.sentUS(i)*us+rtt)
				if tb.Counters().Samples == before {
					continue
				}
				timed++
				f := firstFlow(tb)
				if got := srttInput(prev, f.seq); got < rtt-budget-7 || got > rtt+budget+7 {
					t.Fatalf("ACK of segment %d: the smoothed RTT took %v, want %v ± %v", i, time.Duration(got), time.Duration(rtt), time.Duration(budget))
				}
				// The sample's own figures are timed from its entry's first
				// frame: at most 3 frames earlier (entries of up to 4).
				high := (tc.sentUS(i) - tc.sentUS(max(i-3, 0))) * us
				if got := f.seq.Last; got < rtt || got > rtt+high {
					t.Fatalf("ACK of segment %d: sample %v, want %v..%v", i, time.Duration(got), time.Duration(rtt), time.Duration(rtt+high))
				}
			}
			t.Logf("%d of %d ACKs timed, every one within %v of its RTT for the smoothed RTT and never below it", timed, n, time.Duration(budget))
			if float64(timed) < tc.minTimed*n {
				t.Fatalf("only %d of %d ACKs timed, want at least %.0f%%", timed, n, 100*tc.minTimed)
			}
		})
	}
}

// TestLargeFlightIsSampledEvenly sends a flight of 400 segments, far more
// than a flow's entries, then ACKs every second segment with an RTT that
// differs per ACK. Decimation must keep state bounded, every ACK must be
// timed with the exact RTT of the earliest newly acked segment (a sample
// credited to the wrong segment would differ), over the whole flight.
func TestLargeFlightIsSampledEvenly(t *testing.T) {
	locals := localSet{netip.AddrFrom4(localIP.As4()).As16(): true}
	tb := NewTable(TableConfig{MaxFlows: 4, IdleTTL: ms(1e6), ExpTTL: ms(1e6)}, locals, nil)
	const n, mss = 400, 1000
	sent := func(i int) int64 { return ms(float64(i) * 0.1) }
	for i := 0; i < n; i++ {
		p := ev{out: true, flags: PA, seq: uint32(1 + mss*i), ack: 1, n: mss}.packet()
		tb.Process(&p, sent(i))
		if f := firstFlow(tb); f.segCount > maxOutstanding {
			t.Fatalf("%d entries after %d segments", f.segCount, i+1)
		}
	}
	var timedAt []int
	for k := 1; k <= n/2; k++ {
		rtt := ms(30) + int64(k)*ms(0.01)
		earliest := 2*k - 2
		p := ev{flags: A, seq: 1, ack: uint32(1 + mss*2*k)}.packet()
		before := tb.Counters().Samples
		prev := firstFlow(tb).seq
		at := sent(earliest) + rtt
		tb.Process(&p, at)
		if tb.Counters().Samples == before {
			continue
		}
		f := firstFlow(tb)
		if got := srttInput(prev, f.seq); got < rtt-7 || got > rtt+7 {
			t.Fatalf("ACK %d: the smoothed RTT took %v ns, want %v ns (the earliest newly acked segment's RTT)", k, got, rtt)
		}
		// Entries of up to 4 frames: the sample's own figures are timed
		// from the entry's first frame, at most 3 frames earlier.
		if f.seq.Last < rtt || f.seq.Last > rtt+sent(earliest)-sent(max(earliest-3, 0)) {
			t.Fatalf("ACK %d: sample %v ns, want %v ns or up to 3 frames more", k, f.seq.Last, rtt)
		}
		timedAt = append(timedAt, earliest)
	}
	c := tb.Counters()
	if c.Decimations == 0 {
		t.Fatal("no decimation for a flight of 400 segments")
	}
	if len(timedAt) != n/2 {
		// Interpolation inside decimated entries times every ACK, as the
		// kernel does; equal frames at a steady pace make it exact.
		t.Fatalf("only %d of %d ACKs timed", len(timedAt), n/2)
	}
	if last := timedAt[len(timedAt)-1]; last < 3*n/4 {
		t.Fatalf("timed ACKs stop at segment %d of %d: sampling bunches at the start of the flight", last, n)
	}
	if f := firstFlow(tb); f.segCount != 0 || f.stride != 1 {
		t.Fatalf("after the flight is acked: %d entries, stride %d; want 0 and 1", f.segCount, f.stride)
	}
	t.Logf("%d of %d ACKs timed, %d decimations, timed segments span %d..%d", len(timedAt), n/2, c.Decimations, timedAt[0], timedAt[len(timedAt)-1])
}
