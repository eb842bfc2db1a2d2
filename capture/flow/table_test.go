package flow

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/gometro/go-metro/capture/packet"
)

func v4(a netip.Addr) [16]byte { return netip.AddrFrom4(a.As4()).As16() }

func synTo(remotePort uint16) packet.Packet {
	return packet.Packet{
		Src: v4(localIP), Dst: v4(remoteIP),
		SrcPort: 40000, DstPort: remotePort, Flags: packet.FlagSYN, Seq: 1,
	}
}

// TestIndexMatchesModel churns flows through a small table with random
// creations and expiries and checks after every step that every live flow
// is found through the index and that no dead flow is.
func TestIndexMatchesModel(t *testing.T) {
	locals := localSet{v4(localIP): true}
	tb := NewTable(TableConfig{MaxFlows: 64, IdleTTL: 50, ExpTTL: 50}, locals, nil)
	rng := rand.New(rand.NewPCG(1, 2))
	lastSeen := map[uint16]int64{}
	for now := int64(1); now < 20000; now++ {
		port := uint16(rng.IntN(80))
		p := synTo(port)
		p.Flags = packet.FlagACK // established-looking traffic
		tb.Process(&p, now)
		lastSeen[port] = now
		if now%7 == 0 {
			tb.Sweep(now)
			for port, ls := range lastSeen {
				if now-ls > 50 {
					delete(lastSeen, port)
				}
			}
		}
		c := tb.Counters()
		if c.Flows > 64 {
			t.Fatalf("table holds %d flows, cap is 64", c.Flows)
		}
		if c.EvictedActive == 0 && c.Flows != len(lastSeen) {
			t.Fatalf("step %d: table has %d flows, model %d", now, c.Flows, len(lastSeen))
		}
		// Every indexed flow must be found by its key.
		for i := int32(0); i < tb.used; i++ {
			f := &tb.flows[i]
			if f.state&inUse == 0 {
				continue
			}
			k := f.key
			before := tb.Counters().Created
			if got := tb.lookup(&k, &packet.Packet{}, now, true); got != f {
				t.Fatalf("step %d: flow %d not found through the index", now, i)
			}
			if tb.Counters().Created != before {
				t.Fatalf("step %d: lookup of a live flow created a new one", now)
			}
		}
	}
}

func TestEvictionPrefersHalfOpenAndClosed(t *testing.T) {
	locals := localSet{v4(localIP): true}
	const max = 32
	tb := NewTable(TableConfig{MaxFlows: max, IdleTTL: 1e18, ExpTTL: 1e18}, locals, nil)
	// Eight real connections that exchanged data and were timed.
	for port := uint16(1); port <= 8; port++ {
		out := packet.Packet{Src: v4(localIP), Dst: v4(remoteIP), SrcPort: 40000, DstPort: port,
			Flags: packet.FlagACK | packet.FlagPSH, Seq: 100, Ack: 1, PayloadLen: 10}
		in := packet.Packet{Src: v4(remoteIP), Dst: v4(localIP), SrcPort: port, DstPort: 40000,
			Flags: packet.FlagACK, Seq: 1, Ack: 110}
		tb.Process(&out, int64(port))
		tb.Process(&in, int64(port)+5)
	}
	// A port scan far past the cap: SYNs, half of them answered by RST.
	for i := 0; i < 10000; i++ {
		port := uint16(1000 + i)
		syn := synTo(port)
		tb.Process(&syn, int64(100+i))
		if i%2 == 0 {
			rst := packet.Packet{Src: v4(remoteIP), Dst: v4(localIP), SrcPort: port, DstPort: 40000,
				Flags: packet.FlagRST | packet.FlagACK, Ack: 2}
			tb.Process(&rst, int64(100+i))
		}
	}
	c := tb.Counters()
	if c.Flows != max {
		t.Fatalf("flows = %d, want the cap %d", c.Flows, max)
	}
	if c.EvictedActive != 0 {
		t.Fatalf("%d established flows were evicted by a port scan", c.EvictedActive)
	}
	if c.EvictedHalfOpen == 0 || c.EvictedClosed == 0 {
		t.Fatalf("eviction counters did not move: %+v", c)
	}
	timed := 0
	for _, s := range tb.AppendSummaries(nil) {
		if s.RTT.Samples > 0 {
			timed++
		}
	}
	if timed != 8 {
		t.Fatalf("%d timed connections survive the scan, want 8", timed)
	}
}

func TestSweepExpiresIdleAndClosed(t *testing.T) {
	locals := localSet{v4(localIP): true}
	tb := NewTable(TableConfig{MaxFlows: 8, IdleTTL: 300, ExpTTL: 60}, locals, nil)
	open := synTo(1)
	open.Flags = packet.FlagACK
	fin := synTo(2)
	fin.Flags = packet.FlagACK | packet.FlagFIN
	tb.Process(&open, 0)
	tb.Process(&fin, 0)
	tests := []struct {
		now       int64
		wantFlows int
	}{
		{now: 60, wantFlows: 2},  // not yet past exp_ttl
		{now: 61, wantFlows: 1},  // closed flow expired
		{now: 300, wantFlows: 1}, // not yet past idle_ttl
		{now: 301, wantFlows: 0}, // idle flow expired
	}
	for _, tc := range tests {
		tb.Sweep(tc.now)
		if got := tb.Counters().Flows; got != tc.wantFlows {
			t.Fatalf("at %d: %d flows, want %d", tc.now, got, tc.wantFlows)
		}
	}
	if got := tb.Counters().Expired; got != 2 {
		t.Fatalf("expired = %d, want 2", got)
	}
}

func TestNotLocalAndFiltered(t *testing.T) {
	locals := localSet{v4(localIP): true}
	watch := func(remote netip.AddrPort) bool { return remote.Port() == 443 }
	tb := NewTable(TableConfig{MaxFlows: 8, IdleTTL: 1e9, ExpTTL: 1e9}, locals, watch)
	stranger := synTo(443)
	stranger.Src = v4(netip.MustParseAddr("192.0.2.9"))
	watched, unwatched := synTo(443), synTo(80)
	for _, p := range []*packet.Packet{&stranger, &watched, &unwatched} {
		tb.Process(p, 1)
	}
	c := tb.Counters()
	if c.NotLocal != 1 || c.Filtered != 1 || c.Flows != 1 {
		t.Fatalf("counters %+v: want 1 not-local, 1 filtered, 1 flow", c)
	}
}

func TestLoopbackBothSidesLocal(t *testing.T) {
	lo := v4(netip.MustParseAddr("127.0.0.1"))
	tb := NewTable(TableConfig{MaxFlows: 8, IdleTTL: 1e18, ExpTTL: 1e18}, localSet{lo: true}, nil)
	data := packet.Packet{Src: lo, Dst: lo, SrcPort: 1, DstPort: 2, Flags: packet.FlagACK, Seq: 10, Ack: 1, PayloadLen: 5}
	ack := packet.Packet{Src: lo, Dst: lo, SrcPort: 2, DstPort: 1, Flags: packet.FlagACK, Seq: 1, Ack: 15}
	tb.Process(&data, 0)
	tb.Process(&ack, 1000)
	c := tb.Counters()
	if c.Flows != 2 || c.Samples != 1 {
		t.Fatalf("loopback: %+v, want two flow views and one sample", c)
	}
}

// TestLocalityChange: Process matches a packet to the previous packet's
// flow without asking Sides, so after LocalityChanged a flow whose end is
// no longer local must not take the next packet, and one between two local
// ends must take it twice (both views).
func TestLocalityChange(t *testing.T) {
	local, remote := v4(localIP), v4(remoteIP)
	data := packet.Packet{Src: local, Dst: remote, SrcPort: 1, DstPort: 2, Flags: packet.FlagACK, Seq: 10, Ack: 1, PayloadLen: 5}
	ack := packet.Packet{Src: remote, Dst: local, SrcPort: 2, DstPort: 1, Flags: packet.FlagACK, Seq: 1, Ack: 15}
	tests := []struct {
		name   string
		after  localSet // the locality from the ACK on
		want   Counters // of the ACK alone
		sample bool
	}{
		{"unchanged", localSet{local: true}, Counters{}, true},
		{"local end no longer local", localSet{}, Counters{NotLocal: 1}, false},
		{"both ends local", localSet{local: true, remote: true}, Counters{Created: 1, Flows: 1}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := NewTable(TableConfig{MaxFlows: 8, IdleTTL: 1e18, ExpTTL: 1e18}, localSet{local: true}, nil)
			d, a := data, ack
			tb.Process(&d, 0)
			before := tb.Counters()
			tb.local = tc.after
			tb.LocalityChanged()
			tb.Process(&a, 1000)
			c := tb.Counters()
			got := Counters{NotLocal: c.NotLocal - before.NotLocal, Created: c.Created - before.Created, Flows: c.Flows - before.Flows}
			if got != tc.want || (c.Samples > before.Samples) != tc.sample {
				t.Fatalf("ACK changed counters by %+v, samples %d -> %d; want %+v, sample %v", got, before.Samples, c.Samples, tc.want, tc.sample)
			}
		})
	}
}

func TestFlowBytes(t *testing.T) {
	// Guard the documented per-flow cost: growing Flow by accident should
	// be a conscious change of the README's number. Most of it is the 128
	// entries of unacknowledged data (16 bytes each) that let a flow time
	// every ACK of a typical flight, as the kernel does; 224 are the
	// duplicate rings, connection health and the 16-sample RTT reservoir;
	// 40 the tunnel context of the key (outer addresses, tunnel ID).
	if FlowBytes > 2696 {
		t.Fatalf("a flow costs %d bytes, more than the 2696-byte budget", FlowBytes)
	}
	t.Logf("a tracked flow costs %d bytes", FlowBytes)
}
