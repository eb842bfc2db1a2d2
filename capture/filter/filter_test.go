// The kernel-attach test of these programs is TestLiveFilter in capture/source
// (it needs a capture socket, which lives there).

package filter

import (
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/gometro/go-metro/capture/packet"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/net/bpf"
)

const snap = 128

// frame describes one test frame.
type frame struct {
	src, dst     string
	sport, dport uint16
	proto        layers.IPProtocol // default TCP
	vlans        int               // number of 802.1Q/802.1ad tags (Ethernet only)
	ihl          uint8             // IPv4 header length in words (default 5)
	fragOff      uint16            // IPv4 fragment offset (8-byte units)
	v6ext        bool              // IPv6 destination-options header before TCP
	tcpOptWords  int               // 4-byte words of TCP options (NOPs)
}

// payloadLen is the payload every test frame carries after its L4 header.
const payloadLen = 200

func (f frame) build(t *testing.T, link packet.LinkType) []byte {
	t.Helper()
	src, dst := net.ParseIP(f.src), net.ParseIP(f.dst)
	proto := f.proto
	if proto == 0 {
		proto = layers.IPProtocolTCP
	}
	var ls []gopacket.SerializableLayer
	v4 := src.To4() != nil
	etype := layers.EthernetTypeIPv6
	if v4 {
		etype = layers.EthernetTypeIPv4
	}
	switch link {
	case packet.LinkTypeEthernet:
		eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: etype}
		ls = append(ls, eth)
		for i := range f.vlans {
			if i == 0 {
				eth.EthernetType = layers.EthernetTypeQinQ
				if f.vlans == 1 {
					eth.EthernetType = layers.EthernetTypeDot1Q
				}
			}
			next := layers.EthernetTypeDot1Q
			if i == f.vlans-1 {
				next = etype
			}
			ls = append(ls, &layers.Dot1Q{VLANIdentifier: uint16(10 + i), Type: next})
		}
	case packet.LinkTypeLinuxSLL:
		t.Fatal("use raw prefix")
	}
	var l4 gopacket.SerializableLayer
	var tcp *layers.TCP
	switch proto {
	case layers.IPProtocolTCP:
		tcp = &layers.TCP{SrcPort: layers.TCPPort(f.sport), DstPort: layers.TCPPort(f.dport), Seq: 1, ACK: true, Window: 100}
		for range f.tcpOptWords * 4 {
			tcp.Options = append(tcp.Options, layers.TCPOption{OptionType: layers.TCPOptionKindNop})
		}
		l4 = tcp
	default:
		l4 = &layers.UDP{SrcPort: layers.UDPPort(f.sport), DstPort: layers.UDPPort(f.dport)}
	}
	if v4 {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: proto, SrcIP: src, DstIP: dst, FragOffset: f.fragOff}
		if f.ihl > 5 {
			ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 1}}
			for range int(f.ihl-6) * 4 {
				ip.Options = append(ip.Options, layers.IPv4Option{OptionType: 1})
			}
		}
		ls = append(ls, ip)
		if tcp != nil {
			_ = tcp.SetNetworkLayerForChecksum(ip)
		}
	} else {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: src, DstIP: dst}
		ls = append(ls, ip)
		if f.v6ext {
			// Destination options header (PadN) between IPv6 and TCP.
			ip.NextHeader = layers.IPProtocolIPv6Destination
			l4buf := gopacket.NewSerializeBuffer()
			if err := gopacket.SerializeLayers(l4buf, gopacket.SerializeOptions{FixLengths: true}, l4, gopacket.Payload(make([]byte, payloadLen))); err != nil {
				t.Fatal(err)
			}
			ext := append([]byte{byte(layers.IPProtocolTCP), 0, 1, 4, 0, 0, 0, 0}, l4buf.Bytes()...)
			ls = append(ls, gopacket.Payload(ext))
			buf := gopacket.NewSerializeBuffer()
			if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, ls...); err != nil {
				t.Fatal(err)
			}
			return buf.Bytes()
		}
		if tcp != nil {
			_ = tcp.SetNetworkLayerForChecksum(ip)
		}
	}
	ls = append(ls, l4, gopacket.Payload(make([]byte, payloadLen)))
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, ls...); err != nil {
		t.Fatalf("serialize %+v: %v", f, err)
	}
	b := buf.Bytes()
	if f.ihl > 5 {
		// Check the IHL really is what the test claims.
		off := len(b) - payloadLen - 20 - f.tcpOptWords*4 - int(f.ihl)*4
		if got := b[off] & 0x0f; got != f.ihl {
			t.Fatalf("built IHL %d, want %d", got, f.ihl)
		}
	}
	return b
}

func run(t *testing.T, prog []bpf.RawInstruction, data []byte) int {
	t.Helper()
	ins, ok := bpf.Disassemble(prog)
	if !ok {
		t.Fatal("program does not disassemble")
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatalf("NewVM: %v", err)
	}
	n, err := vm.Run(data)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return n
}

func TestBuild(t *testing.T) {
	remotes := []netip.Prefix{
		netip.MustParsePrefix("192.0.2.10/32"),
		netip.MustParsePrefix("198.51.100.0/24"),
		netip.MustParsePrefix("10.128.0.0/9"),
		netip.MustParsePrefix("2001:db8::10/128"),
		netip.MustParsePrefix("2001:db8:aa00::/40"),
		netip.MustParsePrefix("fd00:1::/36"),
	}
	ports := []uint16{443, 5432}
	tests := []struct {
		name    string
		f       frame
		remotes []netip.Prefix
		ports   []uint16
		want    bool
	}{
		{"v4 exact remote as dst, dport", frame{src: "10.0.0.1", dst: "192.0.2.10", sport: 40000, dport: 443}, remotes, ports, true},
		{"v4 exact remote as src, sport", frame{src: "192.0.2.10", dst: "10.0.0.1", sport: 5432, dport: 40000}, remotes, ports, true},
		{"v4 /24 remote", frame{src: "10.0.0.1", dst: "198.51.100.77", sport: 40000, dport: 443}, remotes, ports, true},
		{"v4 /9 remote", frame{src: "10.200.1.1", dst: "10.0.0.1", sport: 443, dport: 40000}, remotes, ports, true},
		{"v4 just outside /9", frame{src: "10.127.255.255", dst: "10.0.0.1", sport: 443, dport: 40000}, remotes, ports, false},
		{"v4 other remote", frame{src: "10.0.0.1", dst: "192.0.2.11", sport: 40000, dport: 443}, remotes, ports, false},
		{"v4 other port", frame{src: "10.0.0.1", dst: "192.0.2.10", sport: 40000, dport: 80}, remotes, ports, false},
		{"v4 UDP", frame{src: "10.0.0.1", dst: "192.0.2.10", sport: 40000, dport: 443, proto: layers.IPProtocolUDP}, remotes, ports, false},
		{"v4 options (IHL 8)", frame{src: "10.0.0.1", dst: "192.0.2.10", sport: 40000, dport: 443, ihl: 8}, remotes, ports, true},
		{"v4 options, other port", frame{src: "10.0.0.1", dst: "192.0.2.10", sport: 40000, dport: 80, ihl: 8}, remotes, ports, false},
		{"v4 non-first fragment", frame{src: "10.0.0.1", dst: "192.0.2.10", sport: 40000, dport: 443, fragOff: 185}, nil, nil, false},
		{"v4 one VLAN", frame{src: "10.0.0.1", dst: "192.0.2.10", sport: 40000, dport: 443, vlans: 1}, remotes, ports, true},
		{"v4 QinQ", frame{src: "10.0.0.1", dst: "192.0.2.10", sport: 40000, dport: 443, vlans: 2}, remotes, ports, true},
		{"v4 QinQ other port", frame{src: "10.0.0.1", dst: "192.0.2.10", sport: 40000, dport: 444, vlans: 2}, remotes, ports, false},
		{"v4 three tags", frame{src: "10.0.0.1", dst: "192.0.2.10", sport: 40000, dport: 443, vlans: 3}, nil, nil, false},
		{"v4 no restrictions", frame{src: "1.2.3.4", dst: "5.6.7.8", sport: 1, dport: 2}, nil, nil, true},
		{"v4 only v6 remotes", frame{src: "10.0.0.1", dst: "192.0.2.10", sport: 40000, dport: 443}, remotes[3:], nil, false},
		{"v4 0/0 remote", frame{src: "1.2.3.4", dst: "5.6.7.8", sport: 1, dport: 443}, []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}, ports, true},
		{"v4 mapped remote prefix", frame{src: "10.0.0.1", dst: "203.0.113.5", sport: 1, dport: 2}, []netip.Prefix{netip.MustParsePrefix("::ffff:203.0.113.0/120")}, nil, true},
		{"v6 exact remote dst", frame{src: "2001:db8::1", dst: "2001:db8::10", sport: 40000, dport: 443}, remotes, ports, true},
		{"v6 exact remote src", frame{src: "2001:db8::10", dst: "2001:db8::1", sport: 443, dport: 40000}, remotes, ports, true},
		{"v6 neighbour of exact", frame{src: "2001:db8::1", dst: "2001:db8::11", sport: 40000, dport: 443}, remotes, ports, false},
		{"v6 /40", frame{src: "2001:db8:aaff::1", dst: "2001:db8::1", sport: 5432, dport: 40000}, remotes, ports, true},
		{"v6 outside /40", frame{src: "2001:db8:ab00::1", dst: "2001:db8::1", sport: 5432, dport: 40000}, remotes, ports, false},
		{"v6 /36", frame{src: "2001:db8::1", dst: "fd00:1:fff::1", sport: 40000, dport: 443}, remotes, ports, true},
		{"v6 outside /36", frame{src: "2001:db8::1", dst: "fd00:1:1000::1", sport: 40000, dport: 443}, remotes, ports, false},
		{"v6 other port", frame{src: "2001:db8::1", dst: "2001:db8::10", sport: 40000, dport: 22}, remotes, ports, false},
		{"v6 UDP", frame{src: "2001:db8::1", dst: "2001:db8::10", sport: 40000, dport: 443, proto: layers.IPProtocolUDP}, remotes, ports, false},
		{"v6 VLAN", frame{src: "2001:db8::1", dst: "2001:db8::10", sport: 40000, dport: 443, vlans: 1}, remotes, ports, true},
		{"v6 QinQ", frame{src: "2001:db8::1", dst: "2001:db8::10", sport: 40000, dport: 443, vlans: 2}, remotes, ports, true},
		{"v6 ext header, address matches, port not checked", frame{src: "2001:db8::1", dst: "2001:db8::10", sport: 1, dport: 2, v6ext: true}, remotes, ports, true},
		{"v6 ext header, address does not match", frame{src: "2001:db8::1", dst: "2001:db8::99", sport: 1, dport: 443, v6ext: true}, remotes, ports, false},
		{"v6 only v4 remotes", frame{src: "2001:db8::1", dst: "2001:db8::10", sport: 40000, dport: 443}, remotes[:3], nil, false},
		{"v6 no restrictions", frame{src: "::1", dst: "::2", sport: 1, dport: 2}, nil, nil, true},
		{"v4 TCP options", frame{src: "10.0.0.1", dst: "192.0.2.10", sport: 40000, dport: 443, tcpOptWords: 3}, remotes, ports, true},
		{"v6 TCP options", frame{src: "2001:db8::1", dst: "2001:db8::10", sport: 40000, dport: 443, tcpOptWords: 10}, remotes, ports, true},
		{"v4 headers longer than snaplen", frame{src: "10.0.0.1", dst: "192.0.2.10", sport: 40000, dport: 443, ihl: 15, tcpOptWords: 10}, remotes, ports, true},
	}
	for _, link := range []packet.LinkType{packet.LinkTypeEthernet, packet.LinkTypeRaw} {
		for _, tt := range tests {
			if link != packet.LinkTypeEthernet && tt.f.vlans > 0 {
				continue
			}
			t.Run(linkName(link)+"/"+tt.name, func(t *testing.T) {
				prog, err := Build(link, tt.remotes, tt.ports, snap)
				if err != nil {
					t.Fatal(err)
				}
				data := tt.f.build(t, link)
				got := run(t, prog, data)
				want := 0
				if tt.want {
					want = acceptLen(tt.f, len(data))
				}
				if got != want {
					t.Errorf("filter returned %d, want %d", got, want)
				}
			})
		}
	}
}

// acceptLen is what the filter returns for an accepted frame of n bytes:
// its headers, at most snap; the whole frame up to snap for IPv6 with
// extension headers, whose TCP header the filter does not find.
func acceptLen(f frame, n int) int {
	if f.v6ext {
		return min(n, snap)
	}
	return min(n-payloadLen, snap)
}

func linkName(l packet.LinkType) string {
	switch l {
	case packet.LinkTypeEthernet:
		return "ether"
	case packet.LinkTypeRaw:
		return "raw"
	}
	return "other"
}

// TestOtherLinkTypes checks the fixed-header link types by prefixing a raw
// IP packet with the link header.
func TestOtherLinkTypes(t *testing.T) {
	f4 := frame{src: "10.0.0.1", dst: "192.0.2.10", sport: 40000, dport: 443}
	f6 := frame{src: "2001:db8::1", dst: "2001:db8::10", sport: 40000, dport: 443}
	sll := func(proto uint16) []byte {
		h := make([]byte, 16)
		h[14], h[15] = byte(proto>>8), byte(proto)
		return h
	}
	sll2 := func(proto uint16) []byte {
		h := make([]byte, 20)
		h[0], h[1] = byte(proto>>8), byte(proto)
		return h
	}
	tests := []struct {
		name   string
		link   packet.LinkType
		header []byte
		f      frame
		want   bool
	}{
		{"sll v4", packet.LinkTypeLinuxSLL, sll(0x0800), f4, true},
		{"sll v6", packet.LinkTypeLinuxSLL, sll(0x86dd), f6, true},
		{"sll arp", packet.LinkTypeLinuxSLL, sll(0x0806), f4, false},
		{"sll2 v4", packet.LinkTypeSLL2, sll2(0x0800), f4, true},
		{"sll2 v6", packet.LinkTypeSLL2, sll2(0x86dd), f6, true},
		{"ipv4", packet.LinkTypeIPv4, nil, f4, true},
		{"ipv6", packet.LinkTypeIPv6, nil, f6, true},
		{"ipv4 given v6", packet.LinkTypeIPv4, nil, f6, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prog, err := Build(tt.link, []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/64")}, []uint16{443}, snap)
			if err != nil {
				t.Fatal(err)
			}
			data := append(tt.header, tt.f.build(t, packet.LinkTypeRaw)...)
			want := 0
			if tt.want {
				want = acceptLen(tt.f, len(data))
			}
			if got := run(t, prog, data); got != want {
				t.Errorf("filter returned %d, want %d", got, want)
			}
		})
	}
}

// TestTruncated: a frame cut before the TCP ports, or before the TCP
// header's length, must be rejected, not read out of bounds.
func TestTruncated(t *testing.T) {
	prog, err := Build(packet.LinkTypeEthernet, nil, []uint16{443}, snap)
	if err != nil {
		t.Fatal(err)
	}
	data := frame{src: "10.0.0.1", dst: "192.0.2.10", sport: 40000, dport: 443}.build(t, packet.LinkTypeEthernet)
	if got := run(t, prog, data[:14+20+2]); got != 0 {
		t.Errorf("truncated frame accepted (%d)", got)
	}
	if got := run(t, prog, data[:14+20+12]); got != 0 {
		t.Errorf("frame cut before the TCP data offset accepted (%d)", got)
	}
	if got := run(t, prog, data[:14+20+13]); got != 14+20+20 {
		t.Errorf("frame with the TCP data offset accepted with %d, want its headers' %d", got, 14+20+20)
	}
}

func TestBuildErrors(t *testing.T) {
	if _, err := Build(packet.LinkTypeNull, nil, nil, snap); err == nil {
		t.Error("no error for an unsupported link type")
	}
	if _, err := Build(packet.LinkTypeEthernet, nil, nil, 0); err == nil {
		t.Error("no error for snaplen 0")
	}
	if _, err := Build(packet.LinkTypeEthernet, []netip.Prefix{{}}, nil, snap); err == nil {
		t.Error("no error for an invalid prefix")
	}
	// Many remotes: v6 /128s cost 18 instructions each.
	var many []netip.Prefix
	for i := range 300 {
		many = append(many, netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i), 14: byte(i >> 8)}), 128))
	}
	_, err := Build(packet.LinkTypeEthernet, many, nil, snap)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("300 IPv6 remotes: err = %v, want ErrTooLarge", err)
	}
	// Just under the limit still assembles and the last remote still matches
	// (jumps reach across the whole program).
	prog, err := Build(packet.LinkTypeEthernet, many[:200], []uint16{443}, snap)
	if err != nil {
		t.Fatal(err)
	}
	f := frame{src: "2001:db8::1", dst: netip.AddrFrom16(many[199].Addr().As16()).String(), sport: 1, dport: 443}
	if data := f.build(t, packet.LinkTypeEthernet); run(t, prog, data) != acceptLen(f, len(data)) {
		t.Errorf("last of 200 remotes rejected (len %d)", len(prog))
	}
}
