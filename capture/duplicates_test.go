package capture

import (
	"net/netip"
	"testing"

	"github.com/gometro/go-metro/capture/flow"
	"github.com/gometro/go-metro/capture/packet"
	"github.com/gometro/go-metro/internal/synth"
)

// TestDoubledCaptureTimesLikeTheOriginal replays a simulated capture (loss
// and real retransmissions, IPv4 and IPv6, flows with and without TCP
// timestamps) once as it is and once with every frame captured twice, as a
// mirror port or interface "any" delivers it: the copies must be counted as
// duplicates, and every flow must come out exactly as from the single
// capture (same samples, same estimate, same retransmissions).
func TestDoubledCaptureTimesLikeTheOriginal(t *testing.T) {
	c := synth.Generate(synth.Small())
	var prefixes []netip.Prefix
	for _, a := range c.LocalIPs {
		prefixes = append(prefixes, netip.PrefixFrom(a, a.BitLen()))
	}
	play := func(double bool) *Snapshot {
		e, err := New(Config{File: "memory", LocalIPs: prefixes})
		if err != nil {
			t.Fatal(err)
		}
		var pkt packet.Packet
		for i := range c.Frames {
			f := &c.Frames[i]
			e.handle(&pkt, packet.LinkTypeEthernet, f.Data, f.TS, int(f.WireLen))
			if double {
				e.handle(&pkt, packet.LinkTypeEthernet, f.Data, f.TS, int(f.WireLen))
			}
		}
		return e.snapshot()
	}
	// The copies the engine must recognise: our segments that occupy
	// sequence space.
	local := map[[16]byte]bool{}
	for _, a := range c.LocalIPs {
		local[netip.AddrFrom16(a.As16()).As16()] = true
		local[a.As16()] = true
	}
	var want uint64
	var v6, noTS bool
	var pkt packet.Packet
	for i := range c.Frames {
		f := &c.Frames[i]
		if pkt.Decode(packet.LinkTypeEthernet, f.Data, int(f.WireLen)) == packet.OK && local[pkt.Src] && pkt.SeqLen() > 0 {
			want++
			v6 = v6 || pkt.IPv6
			noTS = noTS || !pkt.HasTimestamps
		}
	}
	if !v6 || !noTS {
		t.Fatalf("the simulated capture lacks IPv6 (%v) or flows without timestamps (%v)", v6, noTS)
	}
	single, doubled := play(false), play(true)
	if single.Stats.Flow.Retransmits == 0 {
		t.Fatal("the simulated capture has no retransmissions: the test would prove nothing")
	}
	if got := doubled.Stats.Flow.Duplicates; got != want {
		t.Errorf("%d duplicates counted, the capture holds %d copies of our segments", got, want)
	}
	if single.Stats.Flow.Duplicates != 0 {
		t.Errorf("the single capture has %d duplicates", single.Stats.Flow.Duplicates)
	}
	if s, d := single.Stats.Flow, doubled.Stats.Flow; s.Samples != d.Samples || s.Retransmits != d.Retransmits || s.KarnSkipped != d.KarnSkipped {
		t.Errorf("single: %d samples, %d retransmits, %d karn-skipped; doubled: %d, %d, %d",
			s.Samples, s.Retransmits, s.KarnSkipped, d.Samples, d.Retransmits, d.KarnSkipped)
	}
	key := func(f *flow.Summary) [2]netip.AddrPort { return [2]netip.AddrPort{f.Local, f.Remote} }
	byKey := map[[2]netip.AddrPort]flow.Summary{}
	for i := range single.Flows {
		byKey[key(&single.Flows[i])] = single.Flows[i]
	}
	for i := range doubled.Flows {
		d := &doubled.Flows[i]
		s, ok := byKey[key(d)]
		if !ok {
			t.Errorf("%v -> %v: only in the doubled capture", d.Local, d.Remote)
			continue
		}
		if d.RTT != s.RTT || d.Retransmits != s.Retransmits {
			t.Errorf("%v -> %v: doubled %+v, %d retransmits; single %+v, %d retransmits",
				d.Local, d.Remote, d.RTT, d.Retransmits, s.RTT, s.Retransmits)
		}
	}
	t.Logf("%d flows, %d samples, %d retransmits; %d duplicates recognised", len(single.Flows),
		single.Stats.Flow.Samples, single.Stats.Flow.Retransmits, doubled.Stats.Flow.Duplicates)
}
