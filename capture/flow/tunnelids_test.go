package flow

import (
	"net/netip"
	"testing"

	"github.com/gometro/go-metro/capture/packet"
)

// TestTunnelIDPerDirection: a connection whose tunnel carries one
// identifier each way (EVPN asymmetric IRB, per-direction OVS keys, an
// ERSPAN session per mirrored direction) is one flow, timed as any other;
// tenants that share inner and outer addresses under one identifier each
// way stay apart, whatever order their segments come in. Each packet
// states its sample; each case the flows it leaves.
func TestTunnelIDPerDirection(t *testing.T) {
	const isn = 1000
	o1, o2 := v4(netip.MustParseAddr("10.9.0.1")), v4(netip.MustParseAddr("10.9.0.2"))
	geneve := func(vni uint32, out bool) *packet.Tunnel {
		src, dst := o1, o2
		if !out {
			src, dst = o2, o1
		}
		return &packet.Tunnel{Encaps: packet.EncapGeneve, IDOf: packet.EncapGeneve, ID: vni, OuterSrc: src, OuterDst: dst}
	}
	// A mirror session sends both directions from the switch (o1) to the
	// collector (o2), each under its own GRE key.
	erspan := func(key uint32) *packet.Tunnel {
		return &packet.Tunnel{Encaps: packet.EncapGRE | packet.EncapERSPAN, IDOf: packet.EncapGRE, ID: key, OuterSrc: o1, OuterDst: o2}
	}
	tests := []struct {
		name   string
		evs    []ev
		flows  int
		tunnel string // the first flow's tunnel, when it is the point
	}{
		{"Geneve, a VNI per direction, we connect: one flow", []ev{
			{out: true, flags: S, seq: isn, atMS: 0, tunnel: geneve(11, true)},
			// Answers our SYN exactly (ack = ISN+1): the same connection.
			{flags: SA, seq: 5000, ack: isn + 1, atMS: 20, wantSample: 20, tunnel: geneve(10, false)},
			{out: true, flags: A, seq: isn + 1, ack: 5001, atMS: 20.1, tunnel: geneve(11, true)},
			{out: true, flags: PA, seq: isn + 1, ack: 5001, n: 100, atMS: 20.2, tunnel: geneve(11, true)},
			{flags: A, seq: 5001, ack: isn + 101, atMS: 40.2, wantSample: 20, tunnel: geneve(10, false)},
		}, 1, "geneve vni=11/10 outer=10.9.0.1,10.9.0.2"},
		{"Geneve, a VNI per direction, the peer connects: one flow", []ev{
			{flags: S, seq: 5000, atMS: 0, tunnel: geneve(10, false)},
			// Acknowledges the peer's SYN exactly.
			{out: true, flags: SA, seq: isn, ack: 5001, atMS: 0.1, tunnel: geneve(11, true)},
			{flags: A, seq: 5001, ack: isn + 1, atMS: 30.1, wantSample: 30, tunnel: geneve(10, false)},
		}, 1, "geneve vni=11/10 outer=10.9.0.1,10.9.0.2"},
		{"capture starts mid-connection with the peer's data: our ACK of it joins", []ev{
			{flags: PA, seq: 5000, ack: isn, n: 100, atMS: 0, tunnel: geneve(10, false)},
			{out: true, flags: A, seq: isn, ack: 5100, atMS: 0.2, tunnel: geneve(11, true)},
			{out: true, flags: PA, seq: isn, ack: 5100, n: 100, atMS: 1, tunnel: geneve(11, true)},
			{flags: A, seq: 5100, ack: isn + 100, atMS: 21, wantSample: 20, tunnel: geneve(10, false)},
		}, 1, "geneve vni=11/10 outer=10.9.0.1,10.9.0.2"},
		{"ERSPAN, a session per mirrored direction (GRE keys 0 and 33554432): one flow", []ev{
			{out: true, flags: S, seq: isn, atMS: 0, tunnel: erspan(0)},
			{flags: SA, seq: 5000, ack: isn + 1, atMS: 5, wantSample: 5, tunnel: erspan(33554432)},
			{out: true, flags: PA, seq: isn + 1, ack: 5001, n: 100, atMS: 5.1, tunnel: erspan(0)},
			{flags: A, seq: 5001, ack: isn + 101, atMS: 10.1, wantSample: 5, tunnel: erspan(33554432)},
		}, 1, "gre+erspan key=0/33554432 outer=10.9.0.1,10.9.0.2"},
		{"two tenants, one VNI each way, same addresses, connecting at once: two flows", []ev{
			{out: true, flags: S, seq: isn, atMS: 0, tunnel: geneve(10, true)},
			// Another SYN: the first flow has seen our side already.
			{out: true, flags: S, seq: 77000, atMS: 0.5, tunnel: geneve(20, true)},
			{flags: SA, seq: 9000, ack: 77001, atMS: 20.5, wantSample: 20, tunnel: geneve(20, false)},
			{flags: SA, seq: 5000, ack: isn + 1, atMS: 21, wantSample: 21, tunnel: geneve(10, false)},
		}, 2, ""},
		{"a segment of another tenant that does not answer a half flow opens its own", []ev{
			{out: true, flags: S, seq: isn, atMS: 0, tunnel: geneve(10, true)},
			// VNI 20's SYN/ACK acknowledges another ISN: not this SYN's.
			{flags: SA, seq: 9000, ack: 77001, atMS: 5, tunnel: geneve(20, false)},
			{flags: SA, seq: 5000, ack: isn + 1, atMS: 20, wantSample: 20, tunnel: geneve(10, false)},
		}, 2, "geneve vni=10 outer=10.9.0.1,10.9.0.2"},
		{"a flow that saw both directions under one VNI takes no other", []ev{
			{out: true, flags: S, seq: isn, atMS: 0, tunnel: geneve(10, true)},
			{flags: SA, seq: 5000, ack: isn + 1, atMS: 20, wantSample: 20, tunnel: geneve(10, false)},
			{out: true, flags: PA, seq: isn + 1, ack: 5001, n: 100, atMS: 20.1, tunnel: geneve(10, true)},
			// Acknowledges exactly what the flow sent, under VNI 20: still
			// another tenant's, since VNI 10 carries this one's both ways.
			{flags: A, seq: 5001, ack: isn + 101, atMS: 30, tunnel: geneve(20, false)},
			{flags: A, seq: 5001, ack: isn + 101, atMS: 40.1, wantSample: 20, tunnel: geneve(10, false)},
		}, 2, "geneve vni=10 outer=10.9.0.1,10.9.0.2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := play(t, tc.evs)
			if got := tb.Counters().Flows; got != tc.flows {
				t.Fatalf("%d flows, want %d", got, tc.flows)
			}
			if got := firstFlow(tb).key.Tunnel.String(); tc.tunnel != "" && got != tc.tunnel {
				t.Fatalf("tunnel %q, want %q", got, tc.tunnel)
			}
		})
	}
}
