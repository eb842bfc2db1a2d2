package flow

import (
	"net/netip"
	"testing"
	"unsafe"

	"github.com/gometro/go-metro/capture/packet"
)

// TestKeyLayout guards the key's size (it is compared on every packet) and
// that it holds no pointer, so the slab stays invisible to the GC.
func TestKeyLayout(t *testing.T) {
	if got := unsafe.Sizeof(Key{}); got != 80 {
		t.Fatalf("Key is %d bytes, want 80 (36 of addresses and ports + 44 of tunnel context)", got)
	}
	t.Logf("a flow key is %d bytes, its tunnel part %d", unsafe.Sizeof(Key{}), unsafe.Sizeof(TunnelKey{}))
}

// TestTunnelKeys checks which packets share a flow: both directions of one
// tunnelled connection do (overlay A>B/B>A and mirror A>B/A>B), tenants
// with the same inner addresses in different tunnels do not, and nor does
// the same connection untunnelled.
func TestTunnelKeys(t *testing.T) {
	o1, o2, o3 := v4(netip.MustParseAddr("10.9.0.1")), v4(netip.MustParseAddr("10.9.0.2")), v4(netip.MustParseAddr("10.9.0.3"))
	tun := func(e packet.Encap, id uint32, src, dst [16]byte) packet.Tunnel {
		return packet.Tunnel{Encaps: e, IDOf: e, ID: id, OuterSrc: src, OuterDst: dst}
	}
	out := func(tn packet.Tunnel) packet.Packet {
		p := synTo(443)
		p.Flags, p.Tunnel = packet.FlagACK, tn
		return p
	}
	in := func(tn packet.Tunnel) packet.Packet {
		p := out(tn)
		p.Src, p.Dst, p.SrcPort, p.DstPort = p.Dst, p.Src, p.DstPort, p.SrcPort
		return p
	}
	cases := []struct {
		name  string
		pkts  []packet.Packet
		flows int
	}{
		{"overlay both directions", []packet.Packet{out(tun(packet.EncapVXLAN, 42, o1, o2)), in(tun(packet.EncapVXLAN, 42, o2, o1))}, 1},
		{"mirror both directions", []packet.Packet{out(tun(packet.EncapVXLAN, 42, o1, o2)), in(tun(packet.EncapVXLAN, 42, o1, o2))}, 1},
		{"two VNIs", []packet.Packet{out(tun(packet.EncapVXLAN, 42, o1, o2)), out(tun(packet.EncapVXLAN, 43, o1, o2))}, 2},
		{"same VNI, other VTEPs", []packet.Packet{out(tun(packet.EncapGeneve, 42, o1, o2)), out(tun(packet.EncapGeneve, 42, o1, o3))}, 2},
		{"vxlan and geneve, same VNI", []packet.Packet{out(tun(packet.EncapVXLAN, 42, o1, o2)), out(tun(packet.EncapGeneve, 42, o1, o2))}, 2},
		{"tunnelled and bare", []packet.Packet{out(tun(packet.EncapGRE, 0, o1, o2)), out(packet.Tunnel{})}, 2},
		{"gtp-u TEID per direction", []packet.Packet{out(tun(packet.EncapGTPU, 1, o1, o2)), in(tun(packet.EncapGTPU, 2, o2, o1))}, 1},
		{"mpls label per direction", []packet.Packet{out(tun(packet.EncapMPLS, 16, [16]byte{}, [16]byte{})), in(tun(packet.EncapMPLS, 17, [16]byte{}, [16]byte{}))}, 1},
		{"pppoe sessions", []packet.Packet{out(tun(packet.EncapPPPoE, 1, [16]byte{}, [16]byte{})), out(tun(packet.EncapPPPoE, 2, [16]byte{}, [16]byte{}))}, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tb := NewTable(TableConfig{MaxFlows: 16, IdleTTL: 1e12, ExpTTL: 1e12}, localSet{v4(localIP): true}, nil)
			for i := range tc.pkts {
				tb.Process(&tc.pkts[i], int64(i+1))
			}
			if got := tb.Counters().Flows; got != tc.flows {
				t.Fatalf("%d flows, want %d", got, tc.flows)
			}
			want := tunnelKey(&tc.pkts[0].Tunnel)
			found := false
			for _, s := range tb.AppendSummaries(nil) {
				found = found || s.Tunnel == want
			}
			if !found {
				t.Fatalf("no summary carries the first packet's tunnel %q", want)
			}
		})
	}
}

func TestTunnelKeyString(t *testing.T) {
	k := tunnelKey(&packet.Tunnel{Encaps: packet.EncapVXLAN, IDOf: packet.EncapVXLAN, ID: 42,
		OuterSrc: v4(netip.MustParseAddr("10.0.0.2")), OuterDst: v4(netip.MustParseAddr("10.0.0.1"))})
	if got, want := k.String(), "vxlan vni=42 outer=10.0.0.1,10.0.0.2"; got != want {
		t.Fatalf("String = %q, want %q", got, want)
	}
	k = tunnelKey(&packet.Tunnel{Encaps: packet.EncapMPLS | packet.EncapGRE, IDOf: packet.EncapMPLS, ID: 16})
	if got, want := k.String(), "gre+mpls"; got != want {
		t.Fatalf("String = %q, want %q", got, want)
	}
	if (TunnelKey{}).String() != "" {
		t.Fatal("untunnelled key has a description")
	}
}
