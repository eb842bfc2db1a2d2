package flow

import (
	"testing"

	"github.com/gometro/go-metro/capture/packet"
)

// TestRingsShrinkWhenIdle: a flow that sent a large flight holds a block;
// once everything is acknowledged, a summary has taken its samples and it
// has been idle for the duplicate windows, a sweep moves it back to its
// small rings and returns the block, which another flow then takes; the
// flow goes on timing.
func TestRingsShrinkWhenIdle(t *testing.T) {
	locals := localSet{v4(localIP): true}
	tb := NewTable(TableConfig{MaxFlows: 8, IdleTTL: 1e18, ExpTTL: 1e18, MaxFlights: 1}, locals, nil)
	send := func(seq uint32, ts int64) {
		p := packet.Packet{Src: v4(localIP), Dst: v4(remoteIP), SrcPort: 40000, DstPort: 443,
			Flags: packet.FlagACK, Seq: seq, Ack: 1, PayloadLen: 1000}
		tb.Process(&p, ts)
	}
	ack := func(ack uint32, ts int64) {
		p := packet.Packet{Src: v4(remoteIP), Dst: v4(localIP), SrcPort: 443, DstPort: 40000,
			Flags: packet.FlagACK, Seq: 1, Ack: ack}
		tb.Process(&p, ts)
	}
	ts := int64(1e9)
	for i := range uint32(10) {
		send(1+1000*i, ts+int64(i)*1000)
	}
	f := firstFlow(tb)
	if f.flight() == nil || tb.Counters().FlightsInUse != 1 {
		t.Fatalf("a flight of 10 segments: full-size rings %v, %d in use", f.flight() != nil, tb.Counters().FlightsInUse)
	}
	ack(10001, ts+5e6)
	f.summary()
	tb.Sweep(ts + 5e6 + dupIdentWindow/2)
	if f.flight() == nil {
		t.Fatal("shrunk within the duplicate windows")
	}
	tb.Sweep(ts + 5e6 + 2*dupIdentWindow)
	if f.flight() != nil || tb.Counters().FlightsInUse != 0 {
		t.Fatalf("idle and acknowledged: full-size rings %v, %d in use", f.flight() != nil, tb.Counters().FlightsInUse)
	}
	// Timing goes on from the small rings, and the block serves again.
	ts += 3e9
	send(10001, ts)
	ack(11001, ts+4e6)
	if n := f.seq.Samples; n < 2 || f.seq.Last != 4e6 {
		t.Fatalf("after shrinking: %d samples, last %d ns", n, f.seq.Last)
	}
	for i := range uint32(10) {
		send(11001+1000*i, ts+5e6+int64(i)*1000)
	}
	if f.flight() == nil {
		t.Fatal("the returned block was not handed out again")
	}
}

// TestRingsDenied: with the pool empty, a bulk flow keeps timing within
// its small rings (decimating sooner), and each refusal is counted.
func TestRingsDenied(t *testing.T) {
	locals := localSet{v4(localIP): true}
	tb := NewTable(TableConfig{MaxFlows: 8, IdleTTL: 1e18, ExpTTL: 1e18, MaxFlights: 1}, locals, nil)
	tb.flights.used = int32(len(tb.flights.blocks))
	ts := int64(1e9)
	for i := range uint32(64) {
		p := packet.Packet{Src: v4(localIP), Dst: v4(remoteIP), SrcPort: 40000, DstPort: 443,
			Flags: packet.FlagACK, Seq: 1 + 1000*i, Ack: 1, PayloadLen: 1000}
		tb.Process(&p, ts+int64(i)*1000)
	}
	for i := range uint32(64) {
		p := packet.Packet{Src: v4(remoteIP), Dst: v4(localIP), SrcPort: 443, DstPort: 40000,
			Flags: packet.FlagACK, Seq: 1, Ack: 1001 + 1000*i}
		tb.Process(&p, ts+10e6+int64(i)*1000)
	}
	f := firstFlow(tb)
	c := tb.Counters()
	if f.flight() != nil || c.RingsDenied == 0 || c.Decimations == 0 {
		t.Fatalf("full-size rings %v, denied %d, decimations %d", f.flight() != nil, c.RingsDenied, c.Decimations)
	}
	if f.seq.Samples != 64 {
		t.Fatalf("%d of 64 ACKs timed within the small rings", f.seq.Samples)
	}
}
