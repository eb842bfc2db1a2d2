package filter

import (
	"net"
	"net/netip"
	"testing"
	"unsafe"

	"github.com/gometro/go-metro/capture/packet"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

func serializeLayers(t *testing.T, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestWithTunnels runs the combined program on outer packets of each
// encapsulation (inner addresses not monitored) and on bare traffic: a
// tunnel passes exactly when it is expected, bare traffic as Build decides.
func TestWithTunnels(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	eth := func(et layers.EthernetType) *layers.Ethernet {
		return &layers.Ethernet{SrcMAC: mac, DstMAC: mac, EthernetType: et}
	}
	o4 := func(p layers.IPProtocol) *layers.IPv4 {
		return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: p, SrcIP: net.IP{10, 0, 0, 1}, DstIP: net.IP{10, 0, 0, 2}}
	}
	o6 := func(p layers.IPProtocol) *layers.IPv6 {
		return &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: p, SrcIP: net.ParseIP("fd00::1"), DstIP: net.ParseIP("fd00::2")}
	}
	// The inner connection's remote, 203.0.113.9, is not monitored.
	inner := []gopacket.SerializableLayer{
		&layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.IP{192, 168, 0, 1}, DstIP: net.IP{203, 0, 113, 9}},
		&layers.TCP{SrcPort: 1, DstPort: 2, ACK: true}, gopacket.Payload(make([]byte, 20)),
	}
	with := func(ls ...gopacket.SerializableLayer) []gopacket.SerializableLayer { return append(ls, inner...) }
	udp := func(port layers.UDPPort) *layers.UDP { return &layers.UDP{SrcPort: 5555, DstPort: port} }
	frames := []struct {
		name  string
		encap packet.Encap // 0: bare traffic
		link  packet.LinkType
		ls    []gopacket.SerializableLayer
		bare  bool // bare traffic Build accepts
	}{
		{"vxlan", packet.EncapVXLAN, packet.LinkTypeEthernet, with(eth(layers.EthernetTypeIPv4), o4(layers.IPProtocolUDP), udp(4789), &layers.VXLAN{ValidIDFlag: true, VNI: 1}, eth(layers.EthernetTypeIPv4)), false},
		{"vxlan over vlan, ipv6", packet.EncapVXLAN, packet.LinkTypeEthernet, with(eth(layers.EthernetTypeDot1Q), &layers.Dot1Q{VLANIdentifier: 3, Type: layers.EthernetTypeIPv6},
			o6(layers.IPProtocolUDP), udp(4789), &layers.VXLAN{ValidIDFlag: true, VNI: 1}, eth(layers.EthernetTypeIPv4)), false},
		{"geneve", packet.EncapGeneve, packet.LinkTypeEthernet, with(eth(layers.EthernetTypeIPv4), o4(layers.IPProtocolUDP), udp(6081), gopacket.Payload{0, 0, 0x08, 0, 0, 0, 1, 0}), false},
		{"gtp-u over sll", packet.EncapGTPU, packet.LinkTypeLinuxSLL, with(gopacket.Payload{0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 0, 1, 0, 0x08, 0}, o4(layers.IPProtocolUDP), udp(2152),
			&layers.GTPv1U{Version: 1, ProtocolType: 1, MessageType: 0xff, TEID: 1}), false},
		{"gre", packet.EncapGRE, packet.LinkTypeEthernet, with(eth(layers.EthernetTypeIPv4), o4(layers.IPProtocolGRE), &layers.GRE{Protocol: layers.EthernetTypeIPv4}), false},
		{"gre raw ipv6", packet.EncapGRE, packet.LinkTypeRaw, with(o6(layers.IPProtocolGRE), &layers.GRE{Protocol: layers.EthernetTypeIPv4}), false},
		{"ipip", packet.EncapIPIP, packet.LinkTypeEthernet, with(eth(layers.EthernetTypeIPv4), o4(layers.IPProtocolIPv4)), false},
		{"ip6ip", packet.EncapIPIP, packet.LinkTypeEthernet, with(eth(layers.EthernetTypeIPv6), o6(layers.IPProtocolIPv4)), false},
		{"pppoe", packet.EncapPPPoE, packet.LinkTypeEthernet, with(eth(layers.EthernetTypePPPoESession),
			&layers.PPPoE{Version: 1, Type: 1, Code: layers.PPPoECodeSession, SessionId: 1}, &layers.PPP{PPPType: layers.PPPTypeIPv4}), false},
		{"mpls", packet.EncapMPLS, packet.LinkTypeEthernet, with(eth(layers.EthernetTypeMPLSUnicast), &layers.MPLS{Label: 1, StackBottom: true, TTL: 1}), false},
		{"pbb behind b-tag", packet.EncapPBB, packet.LinkTypeEthernet, with(eth(layers.EthernetTypeDot1Q), &layers.Dot1Q{VLANIdentifier: 3, Type: 0x88e7},
			gopacket.Payload{0, 0, 0, 1, 2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0}), false},
		{"udp elsewhere", 0, packet.LinkTypeEthernet, with(eth(layers.EthernetTypeIPv4), o4(layers.IPProtocolUDP), udp(53)), false},
		{"tcp to a monitored remote", 0, packet.LinkTypeEthernet, []gopacket.SerializableLayer{eth(layers.EthernetTypeIPv4),
			&layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.IP{192, 168, 0, 1}, DstIP: net.IP{192, 0, 2, 10}},
			&layers.TCP{SrcPort: 1, DstPort: 2, ACK: true}}, true},
		{"tcp to another remote", 0, packet.LinkTypeEthernet, append([]gopacket.SerializableLayer{eth(layers.EthernetTypeIPv4)}, inner...), false},
	}
	remotes := []netip.Prefix{netip.MustParsePrefix("192.0.2.10/32")}
	for _, set := range []packet.Encap{packet.EncapAll, packet.EncapVXLAN, packet.EncapGRE | packet.EncapMPLS, packet.EncapERSPAN} {
		for _, f := range frames {
			base, err := Build(f.link, remotes, nil, snap)
			if err != nil {
				t.Fatal(err)
			}
			prog, err := WithTunnels(base, f.link, set, snap)
			if err != nil {
				t.Fatal(err)
			}
			want := f.bare
			if f.encap != 0 {
				// ERSPAN travels in GRE: expecting it opens IP protocol 47.
				want = set&f.encap != 0 || f.encap == packet.EncapGRE && set&packet.EncapERSPAN != 0
			}
			n := run(t, prog, serializeLayers(t, f.ls...))
			if got := n != 0; got != want {
				t.Errorf("tunnels %q, %s: accepted %v, want %v", set, f.name, got, want)
			}
			// The prologue keeps a tunnelled frame whole up to snaplen:
			// its inner headers are for the decoder to find.
			if f.encap != 0 && want && n != snap {
				t.Errorf("tunnels %q, %s: kept %d bytes, want snaplen %d", set, f.name, n, snap)
			}
		}
	}
	if base, _ := Build(packet.LinkTypeEthernet, remotes, nil, snap); len(base) == 0 {
		t.Fatal("empty base program")
	} else if same, _ := WithTunnels(base, packet.LinkTypeEthernet, 0, snap); len(same) != len(base) {
		t.Fatal("no tunnels expected, yet the program changed")
	}
}

// TestWithTunnelsKernelAccepts attaches each combined program to a socket:
// the kernel's classic BPF checker (the one SO_ATTACH_FILTER runs on a
// capture socket too) must accept it. A UDP socket needs no privilege.
func TestWithTunnelsKernelAccepts(t *testing.T) {
	attach := func(prog []bpf.RawInstruction) error { return attachToSocket(t, prog) }
	// The check can fail: a jump past the end is refused.
	if attach([]bpf.RawInstruction{{Op: 0x15, Jt: 5}, {Op: 0x06}}) == nil {
		t.Fatal("the kernel accepted a jump past the end: this test cannot fail")
	}
	remotes := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32")}
	for _, link := range []packet.LinkType{packet.LinkTypeEthernet, packet.LinkTypeLinuxSLL, packet.LinkTypeSLL2,
		packet.LinkTypeRaw, packet.LinkTypeIPv4, packet.LinkTypeIPv6} {
		for _, set := range []packet.Encap{packet.EncapAll, packet.EncapVXLAN, packet.EncapMPLS, packet.EncapIPIP} {
			base, err := Build(link, remotes, []uint16{443}, snap)
			if err != nil {
				t.Fatal(err)
			}
			prog, err := WithTunnels(base, link, set, snap)
			if err != nil {
				t.Fatal(err)
			}
			if err := attach(prog); err != nil {
				t.Errorf("link %d, tunnels %q: kernel refuses the program: %v", link, set, err)
			}
		}
	}
}

// attachToSocket attaches prog to a UDP socket, which needs no privilege:
// the kernel's classic BPF checker, the one SO_ATTACH_FILTER runs on a
// capture socket too, accepts or refuses it.
func attachToSocket(t *testing.T, prog []bpf.RawInstruction) error {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	fp := unix.SockFprog{Len: uint16(len(prog)), Filter: (*unix.SockFilter)(unsafe.Pointer(&prog[0]))}
	return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fp)
}
