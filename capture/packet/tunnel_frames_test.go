package packet

import (
	"encoding/binary"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// Tunnel test frames. gopacket serializes UDP, VXLAN, GRE, ERSPAN II,
// GTP-U (without extension headers), PPPoE, PPP and MPLS; Geneve, ERSPAN
// III, GTP-U extension headers and 802.1ah I-TAGs are written by hand.

var (
	outerSrc4 = net.IP{10, 0, 0, 1}
	outerDst4 = net.IP{10, 0, 0, 2}
	outerSrc6 = net.ParseIP("fd00::1")
	outerDst6 = net.ParseIP("fd00::2")
)

func outer4(proto layers.IPProtocol) *layers.IPv4 {
	ip := ip4()
	ip.SrcIP, ip.DstIP, ip.Protocol = outerSrc4, outerDst4, proto
	return ip
}

func outer6(next layers.IPProtocol) *layers.IPv6 {
	ip := ip6(next)
	ip.SrcIP, ip.DstIP = outerSrc6, outerDst6
	return ip
}

func udpTo(port layers.UDPPort) *layers.UDP { return &layers.UDP{SrcPort: 51234, DstPort: port} }

func vxlan(vni uint32) *layers.VXLAN { return &layers.VXLAN{ValidIDFlag: true, VNI: vni} }

// geneve is a Geneve header with protocol proto and optWords 4-byte words of
// options (one option TLV of that size, class 0x0102, type 0x80).
func geneve(vni uint32, proto uint16, optWords int) rawLayer {
	b := make(rawLayer, 8+4*optWords)
	b[0] = byte(optWords)
	binary.BigEndian.PutUint16(b[2:], proto)
	binary.BigEndian.PutUint32(b[4:], vni<<8)
	if optWords > 0 {
		binary.BigEndian.PutUint16(b[8:], 0x0102)
		b[10], b[11] = 0x80, byte(optWords-1)
	}
	return b
}

func gre(proto layers.EthernetType) *layers.GRE { return &layers.GRE{Protocol: proto} }

func greKey(proto layers.EthernetType, key uint32, checksum, seq bool) *layers.GRE {
	return &layers.GRE{Protocol: proto, KeyPresent: true, Key: key, ChecksumPresent: checksum, SeqPresent: seq, Seq: 9}
}

func erspan2(session uint16) *layers.ERSPANII {
	return &layers.ERSPANII{Version: 1, VLANIdentifier: 5, SessionID: session, Index: 3}
}

// erspan3 is an ERSPAN type III header; frameType 0 is Ethernet, 2 is IP;
// sub adds the 8-byte platform-specific sub-header.
func erspan3(session uint16, frameType uint16, sub bool) rawLayer {
	n := 12
	if sub {
		n += 8
	}
	b := make(rawLayer, n)
	binary.BigEndian.PutUint16(b[0:], 2<<12|7) // version 2, VLAN 7
	binary.BigEndian.PutUint16(b[2:], session)
	binary.BigEndian.PutUint32(b[4:], 0xdeadbeef) // timestamp
	f := frameType << 10
	if sub {
		f |= 1
	}
	binary.BigEndian.PutUint16(b[10:], f)
	return b
}

func gtpu(teid uint32) *layers.GTPv1U {
	return &layers.GTPv1U{Version: 1, ProtocolType: 1, MessageType: 0xff, TEID: teid}
}

// gtpuExt is a GTP-U G-PDU header with a sequence number and two extension
// headers (a PDU session container of 4 bytes and one of 8), written by
// hand because gopacket v1.1.19 serializes extension lengths wrongly. The
// message length is patched by fixGTPLen.
func gtpuExt(teid uint32) rawLayer {
	b := rawLayer{
		0x30 | 0x04 | 0x02, 0xff, 0, 0, 0, 0, 0, 0, // flags E+S, G-PDU, length, TEID
		0, 1, 0, 0x85, // sequence, N-PDU, next: PDU session container
		1, 0x00, 0x09, 0x40, // 4 bytes, next 0x40
		2, 1, 2, 3, 4, 5, 6, 0, // 8 bytes, next none
	}
	binary.BigEndian.PutUint32(b[4:], teid)
	return b
}

// fixGTPLen sets the GTP-U length field of the header at off in frame.
func fixGTPLen(frame []byte, off int) []byte {
	binary.BigEndian.PutUint16(frame[off+2:], uint16(len(frame)-off-8))
	return frame
}

func pppoe(session uint16) *layers.PPPoE {
	return &layers.PPPoE{Version: 1, Type: 1, Code: layers.PPPoECodeSession, SessionId: session}
}

func ppp(t layers.PPPType) *layers.PPP { return &layers.PPP{PPPType: t} }

func mpls(label uint32, bottom bool) *layers.MPLS {
	return &layers.MPLS{Label: label, StackBottom: bottom, TTL: 64}
}

// pbb is an 802.1ah I-TAG with the customer addresses and EtherType.
func pbb(isid uint32, etype uint16) rawLayer {
	b := make(rawLayer, 18)
	binary.BigEndian.PutUint32(b[0:], 0x60<<24|isid)
	copy(b[4:], []byte{0x02, 0, 0, 0, 0, 3})
	copy(b[10:], []byte{0x02, 0, 0, 0, 0, 4})
	binary.BigEndian.PutUint16(b[16:], etype)
	return b
}

// pwControlWord is the 4-byte pseudowire control word (first nibble 0).
func pwControlWord() rawLayer { return rawLayer{0, 0, 0, 7} }

func tunnelled(p Packet, e Encap, idOf Encap, id uint32, os, od net.IP) Packet {
	p.Tunnel = Tunnel{Encaps: e, IDOf: idOf, ID: id}
	if os != nil {
		p.Tunnel.OuterSrc, p.Tunnel.OuterDst = mapped(os), mapped(od)
	}
	return p
}

// tunnelFrames are valid frames with one or two encapsulations, a TCP
// segment with timestamps inside, and the decode each must give.
func tunnelFrames(tb testing.TB) []frameCase {
	ts := tsOpt(0x01020304, 0xa0b0c0d0)
	in4 := func() []gopacket.SerializableLayer {
		return []gopacket.SerializableLayer{ip4(), tcp(nop(), nop(), ts), payload(testPayload)}
	}
	in6 := func() []gopacket.SerializableLayer {
		return []gopacket.SerializableLayer{ip6(layers.IPProtocolTCP), tcp(nop(), nop(), ts), payload(testPayload)}
	}
	w4 := withTS(want4(testPayload), 0x01020304, 0xa0b0c0d0)
	w6 := withTS(want6(testPayload), 0x01020304, 0xa0b0c0d0)
	f := func(head ...gopacket.SerializableLayer) func(inner []gopacket.SerializableLayer) []byte {
		return func(inner []gopacket.SerializableLayer) []byte { return serialize(tb, append(head, inner...)...) }
	}
	ethIn := func(t layers.EthernetType) *layers.Ethernet {
		e := eth(t)
		e.SrcMAC, e.DstMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 9}, net.HardwareAddr{0x02, 0, 0, 0, 0, 8}
		return e
	}
	gtpFrame := func(inner []gopacket.SerializableLayer) []byte {
		return fixGTPLen(f(eth(layers.EthernetTypeIPv4), outer4(layers.IPProtocolUDP), udpTo(2152), gtpuExt(0x11223344))(inner), 14+20+8)
	}
	return []frameCase{
		{"vxlan4/eth/ipv4", LinkTypeEthernet,
			f(eth(layers.EthernetTypeIPv4), outer4(layers.IPProtocolUDP), udpTo(4789), vxlan(42), ethIn(layers.EthernetTypeIPv4))(in4()),
			tunnelled(w4, EncapVXLAN, EncapVXLAN, 42, outerSrc4, outerDst4)},
		{"vxlan6/eth/vlan/ipv6", LinkTypeEthernet,
			f(eth(layers.EthernetTypeIPv6), outer6(layers.IPProtocolUDP), udpTo(4789), vxlan(0xabcdef), ethIn(layers.EthernetTypeDot1Q), dot1q(3, layers.EthernetTypeIPv6))(in6()),
			tunnelled(w6, EncapVXLAN, EncapVXLAN, 0xabcdef, outerSrc6, outerDst6)},
		{"geneve/opts/eth/ipv4", LinkTypeEthernet,
			f(eth(layers.EthernetTypeIPv4), outer4(layers.IPProtocolUDP), udpTo(6081), geneve(7, 0x6558, 3), ethIn(layers.EthernetTypeIPv4))(in4()),
			tunnelled(w4, EncapGeneve, EncapGeneve, 7, outerSrc4, outerDst4)},
		{"geneve/ipv6", LinkTypeRaw,
			f(outer6(layers.IPProtocolUDP), udpTo(6081), geneve(8, 0x86dd, 0))(in6()),
			tunnelled(w6, EncapGeneve, EncapGeneve, 8, outerSrc6, outerDst6)},
		{"gre/ipv4", LinkTypeEthernet,
			f(eth(layers.EthernetTypeIPv4), outer4(layers.IPProtocolGRE), gre(layers.EthernetTypeIPv4))(in4()),
			tunnelled(w4, EncapGRE, 0, 0, outerSrc4, outerDst4)},
		{"gre-csum-key-seq/ipv6", LinkTypeEthernet,
			f(eth(layers.EthernetTypeIPv6), outer6(layers.IPProtocolGRE), greKey(layers.EthernetTypeIPv6, 0x01020304, true, true))(in6()),
			tunnelled(w6, EncapGRE, EncapGRE, 0x01020304, outerSrc6, outerDst6)},
		{"gre-key/teb/eth/ipv4", LinkTypeLinuxSLL,
			f(sllHdr(0x0800), outer4(layers.IPProtocolGRE), greKey(layers.EthernetTypeTransparentEthernetBridging, 77, false, false), ethIn(layers.EthernetTypeIPv4))(in4()),
			tunnelled(w4, EncapGRE, EncapGRE, 77, outerSrc4, outerDst4)},
		{"gre/mpls/ipv4", LinkTypeEthernet,
			f(eth(layers.EthernetTypeIPv4), outer4(layers.IPProtocolGRE), gre(layers.EthernetTypeMPLSUnicast), mpls(100, true))(in4()),
			tunnelled(w4, EncapGRE|EncapMPLS, EncapMPLS, 100, outerSrc4, outerDst4)},
		{"erspan2/eth/ipv4", LinkTypeEthernet,
			f(eth(layers.EthernetTypeIPv4), outer4(layers.IPProtocolGRE), &layers.GRE{Protocol: layers.EthernetTypeERSPAN, SeqPresent: true, Seq: 5},
				erspan2(300), ethIn(layers.EthernetTypeIPv4))(in4()),
			tunnelled(w4, EncapGRE|EncapERSPAN, EncapERSPAN, 300, outerSrc4, outerDst4)},
		{"erspan1/eth/ipv6", LinkTypeEthernet,
			f(eth(layers.EthernetTypeIPv4), outer4(layers.IPProtocolGRE), gre(layers.EthernetTypeERSPAN), ethIn(layers.EthernetTypeIPv6))(in6()),
			tunnelled(w6, EncapGRE|EncapERSPAN, 0, 0, outerSrc4, outerDst4)},
		{"erspan3-sub/eth/ipv4", LinkTypeEthernet,
			f(eth(layers.EthernetTypeIPv6), outer6(layers.IPProtocolGRE), &layers.GRE{Protocol: 0x22eb, SeqPresent: true, Seq: 5},
				erspan3(1023, 0, true), ethIn(layers.EthernetTypeIPv4))(in4()),
			tunnelled(w4, EncapGRE|EncapERSPAN, EncapERSPAN, 1023, outerSrc6, outerDst6)},
		{"erspan3/ip/ipv6", LinkTypeEthernet,
			f(eth(layers.EthernetTypeIPv4), outer4(layers.IPProtocolGRE), &layers.GRE{Protocol: 0x22eb, SeqPresent: true, Seq: 5},
				erspan3(9, 2, false))(in6()),
			tunnelled(w6, EncapGRE|EncapERSPAN, EncapERSPAN, 9, outerSrc4, outerDst4)},
		{"gre-wccp/ipv4", LinkTypeEthernet,
			f(eth(layers.EthernetTypeIPv4), outer4(layers.IPProtocolGRE), gre(0x883e))(in4()),
			tunnelled(w4, EncapGRE, 0, 0, outerSrc4, outerDst4)},
		{"gre-wccp2/ipv6", LinkTypeEthernet,
			f(eth(layers.EthernetTypeIPv4), outer4(layers.IPProtocolGRE), gre(0x883e), rawLayer{0, 0, 0, 1})(in6()),
			tunnelled(w6, EncapGRE, 0, 0, outerSrc4, outerDst4)},
		{"gtpu/ipv4", LinkTypeEthernet,
			f(eth(layers.EthernetTypeIPv4), outer4(layers.IPProtocolUDP), udpTo(2152), gtpu(0xcafe))(in4()),
			tunnelled(w4, EncapGTPU, EncapGTPU, 0xcafe, outerSrc4, outerDst4)},
		{"gtpu-ext/ipv6", LinkTypeEthernet, gtpFrame(in6()),
			tunnelled(w6, EncapGTPU, EncapGTPU, 0x11223344, outerSrc4, outerDst4)},
		{"ipip4/ipv4", LinkTypeRaw, f(outer4(layers.IPProtocolIPv4))(in4()),
			tunnelled(w4, EncapIPIP, 0, 0, outerSrc4, outerDst4)},
		{"ipip6/ipv4", LinkTypeEthernet, f(eth(layers.EthernetTypeIPv6), outer6(layers.IPProtocolIPv4))(in4()),
			tunnelled(w4, EncapIPIP, 0, 0, outerSrc6, outerDst6)},
		{"sit4/ipv6", LinkTypeEthernet, f(eth(layers.EthernetTypeIPv4), outer4(layers.IPProtocolIPv6))(in6()),
			tunnelled(w6, EncapIPIP, 0, 0, outerSrc4, outerDst4)},
		{"ip6ip6/dstopts/ipv6", LinkTypeIPv6, f(outer6(layers.IPProtocolIPv6Destination), destOpts(layers.IPProtocolIPv6, 0))(in6()),
			tunnelled(w6, EncapIPIP, 0, 0, outerSrc6, outerDst6)},
		{"pppoe/ipv4", LinkTypeEthernet, f(eth(layers.EthernetTypePPPoESession), pppoe(0x1234), ppp(layers.PPPTypeIPv4))(in4()),
			tunnelled(w4, EncapPPPoE, EncapPPPoE, 0x1234, nil, nil)},
		{"vlan/pppoe/ipv6", LinkTypeEthernet, f(eth(layers.EthernetTypeDot1Q), dot1q(7, layers.EthernetTypePPPoESession), pppoe(1), ppp(layers.PPPTypeIPv6))(in6()),
			tunnelled(w6, EncapPPPoE, EncapPPPoE, 1, nil, nil)},
		{"mpls2/ipv4", LinkTypeEthernet, f(eth(layers.EthernetTypeMPLSUnicast), mpls(16, false), mpls(0xfffff, true))(in4()),
			tunnelled(w4, EncapMPLS, EncapMPLS, 0xfffff, nil, nil)},
		{"mpls/ipv6", LinkTypeLinuxSLL, f(sllHdr(0x8847), mpls(3000, true))(in6()),
			tunnelled(w6, EncapMPLS, EncapMPLS, 3000, nil, nil)},
		{"mpls/pw-cw/eth/ipv4", LinkTypeEthernet, f(eth(layers.EthernetTypeMPLSUnicast), mpls(20, false), mpls(21, true), pwControlWord(), ethIn(layers.EthernetTypeIPv4))(in4()),
			tunnelled(w4, EncapMPLS, EncapMPLS, 21, nil, nil)},
		{"pbb/ipv4", LinkTypeEthernet, f(eth(0x88e7), pbb(0x123456, 0x0800))(in4()),
			tunnelled(w4, EncapPBB, EncapPBB, 0x123456, nil, nil)},
		{"btag/pbb/ctag/ipv6", LinkTypeEthernet, f(eth(layers.EthernetTypeDot1Q), dot1q(9, 0x88e7), pbb(5, 0x8100), dot1q(10, layers.EthernetTypeIPv6))(in6()),
			tunnelled(w6, EncapPBB, EncapPBB, 5, nil, nil)},
		{"erspan2/vxlan/ipv4", LinkTypeEthernet,
			f(eth(layers.EthernetTypeIPv4), outer4(layers.IPProtocolGRE), &layers.GRE{Protocol: layers.EthernetTypeERSPAN, SeqPresent: true, Seq: 5},
				erspan2(3), ethIn(layers.EthernetTypeIPv6), outer6(layers.IPProtocolUDP), udpTo(4789), vxlan(5), ethIn(layers.EthernetTypeIPv4))(in4()),
			tunnelled(w4, EncapGRE|EncapERSPAN|EncapVXLAN, EncapVXLAN, 5, outerSrc6, outerDst6)},
	}
}

// tunnelDiscrepancies pins each accepted difference with gopacket on
// tunnelled frames (see whyTunnelsDiffer and whyGopacketRejects).
func tunnelDiscrepancies(tb testing.TB) []discrepancy {
	in4 := []gopacket.SerializableLayer{ip4(), tcp(), payload(3)}
	f := func(ls ...gopacket.SerializableLayer) []byte { return serialize(tb, append(ls, in4...)...) }
	e4 := func(proto layers.IPProtocol) []gopacket.SerializableLayer {
		return []gopacket.SerializableLayer{eth(layers.EthernetTypeIPv4), outer4(proto)}
	}
	vx := func(v *layers.VXLAN, port layers.UDPPort) []byte {
		u := udpTo(port)
		u.SrcPort = 4789
		return f(append(e4(layers.IPProtocolUDP), u, v, eth(layers.EthernetTypeIPv4))...)
	}
	greRouting := rawLayer{0x40, 0, 0x08, 0x00, 0, 0, 0, 0, 0, 0, 0, 0} // R, IPv4, checksum+offset, SRE terminator
	greAck := rawLayer{0x00, 0x80, 0x08, 0x00, 0, 0, 0, 0}              // reserved bit 8 set, IPv4, 4 bytes gopacket reads as ack
	nestIPIP := serialize(tb, outer4(4), outer4(4), outer4(4), outer4(4), outer4(4), ip4(), tcp())
	var labels []gopacket.SerializableLayer
	for i := range 9 {
		labels = append(labels, mpls(uint32(16+i), i == 8))
	}
	gtpMany := rawLayer{0x30 | 0x04, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0x40}
	for i := range 5 {
		next := byte(0x40)
		if i == 4 {
			next = 0
		}
		gtpMany = append(gtpMany, 1, 0, 0, next)
	}
	return []discrepancy{
		{"vxlan by source port", LinkTypeEthernet, vx(vxlan(1), 9999), NotTCP, "source port"},
		{"vxlan without I flag", LinkTypeEthernet, vx(&layers.VXLAN{VNI: 1}, 4789), NotTCP, "I flag"},
		{"geneve version 1", LinkTypeEthernet, patch(f(append(e4(layers.IPProtocolUDP), udpTo(6081), geneve(1, 0x0800, 0))...), func(b []byte) { b[14+20+8] |= 0x40 }),
			NotTCP, "Geneve version"},
		{"gre routing", LinkTypeEthernet, f(append(e4(layers.IPProtocolGRE), greRouting)...), NotTCP, "RFC 1701 routing"},
		{"gre ack bit", LinkTypeEthernet, f(append(e4(layers.IPProtocolGRE), greAck)...), BadHeader, "acknowledgment"},
		{"erspan type I", LinkTypeEthernet, f(append(e4(layers.IPProtocolGRE), gre(layers.EthernetTypeERSPAN), eth(layers.EthernetTypeIPv4))...), OK, "type I"},
		{"erspan II version 2", LinkTypeEthernet, f(append(e4(layers.IPProtocolGRE), &layers.GRE{Protocol: layers.EthernetTypeERSPAN, SeqPresent: true},
			&layers.ERSPANII{Version: 2}, eth(layers.EthernetTypeIPv4))...), NotTCP, "ERSPAN II version"},
		{"erspan III", LinkTypeEthernet, f(append(e4(layers.IPProtocolGRE), &layers.GRE{Protocol: 0x22eb, SeqPresent: true}, erspan3(1, 0, false), eth(layers.EthernetTypeIPv4))...),
			OK, "ERSPAN type III"},
		{"gtp echo", LinkTypeEthernet, f(append(e4(layers.IPProtocolUDP), udpTo(2152), &layers.GTPv1U{Version: 1, ProtocolType: 1, MessageType: 1})...), NotTCP, "G-PDU"},
		{"gtp 5 extension headers", LinkTypeEthernet, fixGTPLen(f(append(e4(layers.IPProtocolUDP), udpTo(2152), gtpMany)...), 14+20+8), NotTCP, "MaxGTPExtHeaders"},
		{"gtp E flag without extension", LinkTypeEthernet, fixGTPLen(f(append(e4(layers.IPProtocolUDP), udpTo(2152),
			rawLayer{0x34, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0})...), 14+20+8), OK, "announces no extension"},
		{"gtp-u cut by snaplen", LinkTypeEthernet, patch(f(append(e4(layers.IPProtocolUDP), udpTo(2152), gtpu(1))...), func(b []byte) {
			b[14+3] += 100      // outer IPv4 length
			b[14+20+5] += 100   // UDP length
			b[14+20+8+3] += 100 // GTP-U length (gopacket's serializer leaves it 0)
		}), OK, "snaplen"},
		{"inner ip length 0", LinkTypeRaw, patch(serialize(tb, outer4(4), ip4(), tcp(), payload(10)), func(b []byte) { b[20+2], b[20+3] = 0, 0; b[3] += 50 }),
			OK, "length 0 inside a tunnel"},
		{"pppoe discovery code", LinkTypeEthernet, f(eth(layers.EthernetTypePPPoESession), &layers.PPPoE{Version: 2, Type: 1, Code: layers.PPPoECodeSession}, ppp(layers.PPPTypeIPv4)),
			NotTCP, "session data"},
		{"udp length past ip", LinkTypeEthernet, patch(f(append(e4(layers.IPProtocolUDP), udpTo(4789), vxlan(1), eth(layers.EthernetTypeIPv4))...),
			func(b []byte) { b[14+20+4] = 0xff }), BadHeader, "udp_rcv"},
		{"5 nested ipip", LinkTypeRaw, nestIPIP, NotTCP, "MaxTunnelDepth"},
		{"9 mpls labels", LinkTypeEthernet, f(append([]gopacket.SerializableLayer{eth(layers.EthernetTypeMPLSUnicast)}, labels...)...), NotTCP, "MaxMPLSLabels"},
		{"pbb", LinkTypeEthernet, f(eth(0x88e7), pbb(1, 0x0800)), OK, "PBB"},
		{"wccp", LinkTypeEthernet, f(append(e4(layers.IPProtocolGRE), gre(0x883e))...), OK, "WCCP"},
		{"geneve bad option", LinkTypeEthernet, patch(f(append(e4(layers.IPProtocolUDP), udpTo(6081), geneve(1, 0x0800, 1))...), func(b []byte) { b[14+20+8+11] = 5 }),
			OK, "Geneve option"},
		{"mpls pseudowire", LinkTypeEthernet, f(eth(layers.EthernetTypeMPLSUnicast), mpls(1, true), pwControlWord(), eth(layers.EthernetTypeIPv4)), OK, "pseudowire"},
	}
}

func TestEncapNames(t *testing.T) {
	for _, tc := range []struct {
		names []string
		want  Encap
		str   string
		err   string
	}{
		{[]string{"vxlan", " GRE "}, EncapVXLAN | EncapGRE, "vxlan+gre", ""},
		{[]string{"all"}, EncapAll, "vxlan+geneve+gre+erspan+gtpu+ipip+pppoe+mpls+pbb", ""},
		{nil, 0, "", ""},
		{[]string{"vxlan", "nvgre"}, 0, "", `unknown encapsulation "nvgre" (known: all, vxlan, geneve, gre, erspan, gtpu, ipip, pppoe, mpls, pbb)`},
	} {
		got, err := ParseEncaps(tc.names)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%v: error %v, want %q", tc.names, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want || got.String() != tc.str {
			t.Errorf("%v: %v %q %v, want %v %q", tc.names, got, got.String(), err, tc.want, tc.str)
		}
	}
}

func TestEncapWithin(t *testing.T) {
	for _, tc := range []struct {
		crossed, want Encap
		ok            bool
	}{
		{EncapVXLAN, EncapVXLAN | EncapGRE, true},
		{EncapVXLAN, EncapGRE, false},
		{EncapGRE | EncapERSPAN, EncapERSPAN, true}, // erspan implies the GRE that carries it
		{EncapGRE, EncapERSPAN, false},              // but not plain GRE
		{EncapGRE | EncapMPLS, EncapGRE, false},
		{EncapGRE | EncapERSPAN | EncapVXLAN, EncapERSPAN, false},
		{0, 0, true},
	} {
		if got := tc.crossed.Within(tc.want); got != tc.ok {
			t.Errorf("%q within %q = %v, want %v", tc.crossed, tc.want, got, tc.ok)
		}
	}
}
