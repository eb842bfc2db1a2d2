package packet

import (
	"encoding/binary"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// Test frames are built with gopacket's serializers so that the tests do not
// share the decoder's idea of where fields live. Only the headers gopacket
// v1.1.19 cannot serialize (Linux SLL/SLL2, IPv6 routing, fragment and AH)
// are written by hand, as rawLayer.

var (
	testSrc4 = net.IP{192, 0, 2, 1}
	testDst4 = net.IP{198, 51, 100, 2}
	testSrc6 = net.ParseIP("2001:db8::1")
	testDst6 = net.ParseIP("2001:db8:ffff::2")
)

const (
	testSrcPort = 40000
	testDstPort = 443
	testSeq     = 0xfffffff0 // near the wrap, to catch sign mistakes
	testAck     = 2000
	testWindow  = 512
	testPayload = 100
)

// rawLayer is a hand-written header for what gopacket cannot serialize.
type rawLayer []byte

func (r rawLayer) SerializeTo(b gopacket.SerializeBuffer, _ gopacket.SerializeOptions) error {
	buf, err := b.PrependBytes(len(r))
	if err != nil {
		return err
	}
	copy(buf, r)
	return nil
}

func (r rawLayer) LayerType() gopacket.LayerType { return gopacket.LayerTypePayload }

func serialize(tb testing.TB, ls ...gopacket.SerializableLayer) []byte {
	tb.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, ls...); err != nil {
		tb.Fatalf("serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func eth(t layers.EthernetType) *layers.Ethernet {
	return &layers.Ethernet{
		SrcMAC:       net.HardwareAddr{0x02, 0, 0, 0, 0, 1},
		DstMAC:       net.HardwareAddr{0x02, 0, 0, 0, 0, 2},
		EthernetType: t,
	}
}

func dot1q(vid uint16, t layers.EthernetType) *layers.Dot1Q {
	return &layers.Dot1Q{VLANIdentifier: vid, Type: t}
}

func ip4(opts ...layers.IPv4Option) *layers.IPv4 {
	return &layers.IPv4{
		Version: 4, IHL: 5, TTL: 64, Id: 7,
		Flags:    layers.IPv4DontFragment,
		Protocol: layers.IPProtocolTCP,
		SrcIP:    testSrc4, DstIP: testDst4,
		Options: opts,
	}
}

func ip6(next layers.IPProtocol) *layers.IPv6 {
	return &layers.IPv6{
		Version: 6, HopLimit: 64, NextHeader: next,
		SrcIP: testSrc6, DstIP: testDst6,
	}
}

func tcp(opts ...layers.TCPOption) *layers.TCP {
	return &layers.TCP{
		SrcPort: testSrcPort, DstPort: testDstPort,
		Seq: testSeq, Ack: testAck, ACK: true, PSH: true,
		Window:  testWindow,
		Options: opts,
	}
}

func payload(n int) gopacket.Payload { return make(gopacket.Payload, n) }

func nop() layers.TCPOption { return layers.TCPOption{OptionType: layers.TCPOptionKindNop} }
func eol() layers.TCPOption { return layers.TCPOption{OptionType: layers.TCPOptionKindEndList} }

func tsOpt(val, ecr uint32) layers.TCPOption {
	d := make([]byte, 8)
	binary.BigEndian.PutUint32(d, val)
	binary.BigEndian.PutUint32(d[4:], ecr)
	return layers.TCPOption{OptionType: layers.TCPOptionKindTimestamps, OptionData: d}
}

func sackOpt(edges ...uint32) layers.TCPOption {
	d := make([]byte, 4*len(edges))
	for i, e := range edges {
		binary.BigEndian.PutUint32(d[4*i:], e)
	}
	return layers.TCPOption{OptionType: layers.TCPOptionKindSACK, OptionData: d}
}

func mssOpt(v uint16) layers.TCPOption {
	return layers.TCPOption{OptionType: layers.TCPOptionKindMSS, OptionData: []byte{byte(v >> 8), byte(v)}}
}

func wsOpt(v byte) layers.TCPOption {
	return layers.TCPOption{OptionType: layers.TCPOptionKindWindowScale, OptionData: []byte{v}}
}

func sackPermOpt() layers.TCPOption {
	return layers.TCPOption{OptionType: layers.TCPOptionKindSACKPermitted}
}

// hopByHop and destOpts carry one PadN option so that gopacket's serializer
// produces an 8-byte header.
func hopByHop(next layers.IPProtocol) *layers.IPv6HopByHop {
	h := &layers.IPv6HopByHop{Options: []*layers.IPv6HopByHopOption{{OptionType: 1, OptionData: make([]byte, 4)}}}
	h.NextHeader = next
	return h
}

func destOpts(next layers.IPProtocol, extra8 int) *layers.IPv6Destination {
	h := &layers.IPv6Destination{Options: []*layers.IPv6DestinationOption{{OptionType: 1, OptionData: make([]byte, 4+8*extra8)}}}
	h.NextHeader = next
	return h
}

// routingHdr is a type-4 (segment routing style) header with no addresses
// left: next, len=1 (16 bytes), type, segments left, 12 bytes of data.
func routingHdr(next layers.IPProtocol) rawLayer {
	b := make(rawLayer, 16)
	b[0], b[1], b[2], b[3] = byte(next), 1, 4, 0
	return b
}

// ahHdr is an IPv6 authentication header with a 12-byte ICV: payload length
// field 4 means (4+2)*4 = 24 bytes.
func ahHdr(next layers.IPProtocol) rawLayer {
	b := make(rawLayer, 24)
	b[0], b[1] = byte(next), 4
	binary.BigEndian.PutUint32(b[4:], 0x1234) // SPI
	binary.BigEndian.PutUint32(b[8:], 1)      // sequence
	return b
}

// fragHdr is an IPv6 fragment header.
func fragHdr(next layers.IPProtocol, offset uint16, more bool) rawLayer {
	b := make(rawLayer, 8)
	b[0] = byte(next)
	fo := offset << 3
	if more {
		fo |= 1
	}
	binary.BigEndian.PutUint16(b[2:], fo)
	binary.BigEndian.PutUint32(b[4:], 99)
	return b
}

// sllHdr is a Linux cooked v1 header: packet type, ARPHRD_ETHER, address.
func sllHdr(proto uint16) rawLayer {
	b := make(rawLayer, 16)
	binary.BigEndian.PutUint16(b[0:], 4) // outgoing
	binary.BigEndian.PutUint16(b[2:], 1) // ARPHRD_ETHER
	binary.BigEndian.PutUint16(b[4:], 6)
	copy(b[6:], []byte{0x02, 0, 0, 0, 0, 1})
	binary.BigEndian.PutUint16(b[14:], proto)
	return b
}

// sll2Hdr is a Linux cooked v2 header.
func sll2Hdr(proto uint16) rawLayer {
	b := make(rawLayer, 20)
	binary.BigEndian.PutUint16(b[0:], proto)
	binary.BigEndian.PutUint32(b[4:], 3) // ifindex
	binary.BigEndian.PutUint16(b[8:], 1) // ARPHRD_ETHER
	b[10] = 4                            // outgoing
	b[11] = 6
	copy(b[12:], []byte{0x02, 0, 0, 0, 0, 1})
	return b
}

// nullHdr is a BSD loopback header with the family in the given order.
func nullHdr(family uint32, bigEndian bool) rawLayer {
	b := make(rawLayer, 4)
	if bigEndian {
		binary.BigEndian.PutUint32(b, family)
	} else {
		binary.LittleEndian.PutUint32(b, family)
	}
	return b
}

// Expected decodes of the default layers above.

func mapped(ip net.IP) (a [16]byte) {
	copy(a[:], ip.To16())
	return a
}

func want4(payloadLen uint32) Packet {
	return Packet{
		Src: mapped(testSrc4), Dst: mapped(testDst4),
		SrcPort: testSrcPort, DstPort: testDstPort,
		Seq: testSeq, Ack: testAck, Flags: FlagACK | FlagPSH, Window: testWindow,
		PayloadLen: payloadLen, IPID: 7, // ip4's Id
		payloadRest: int32(payloadLen), // the frames end with their payload
	}
}

func want6(payloadLen uint32) Packet {
	p := want4(payloadLen)
	p.Src, p.Dst, p.IPv6, p.IPID = mapped(testSrc6), mapped(testDst6), true, 0
	return p
}

func withTS(p Packet, val, ecr uint32) Packet {
	p.HasTimestamps, p.TSval, p.TSecr = true, val, ecr
	return p
}

// frameCase is one valid frame of each link type, reused by the truncation
// test, the overwrite test and the fuzz seeds.
type frameCase struct {
	name string
	link LinkType
	data []byte
	want Packet
}

func validFrames(tb testing.TB) []frameCase {
	ts := tsOpt(0x01020304, 0xa0b0c0d0)
	wantTS4 := withTS(want4(testPayload), 0x01020304, 0xa0b0c0d0)
	wantTS6 := withTS(want6(testPayload), 0x01020304, 0xa0b0c0d0)
	return append([]frameCase{
		{"eth/ipv4/tcp+ts", LinkTypeEthernet,
			serialize(tb, eth(layers.EthernetTypeIPv4), ip4(), tcp(nop(), nop(), ts), payload(testPayload)), wantTS4},
		{"eth/vlan/ipv4/tcp+ts", LinkTypeEthernet,
			serialize(tb, eth(layers.EthernetTypeDot1Q), dot1q(10, layers.EthernetTypeIPv4), ip4(), tcp(nop(), nop(), ts), payload(testPayload)), wantTS4},
		{"eth/qinq/ipv6/hbh/tcp+ts", LinkTypeEthernet,
			serialize(tb, eth(layers.EthernetTypeQinQ), dot1q(100, layers.EthernetTypeDot1Q), dot1q(10, layers.EthernetTypeIPv6),
				ip6(layers.IPProtocolIPv6HopByHop), hopByHop(layers.IPProtocolTCP), tcp(nop(), nop(), ts), payload(testPayload)), wantTS6},
		{"sll/ipv4/tcp+ts", LinkTypeLinuxSLL,
			serialize(tb, sllHdr(0x0800), ip4(), tcp(nop(), nop(), ts), payload(testPayload)), wantTS4},
		{"sll2/ipv6/tcp+ts", LinkTypeSLL2,
			serialize(tb, sll2Hdr(0x86dd), ip6(layers.IPProtocolTCP), tcp(nop(), nop(), ts), payload(testPayload)), wantTS6},
		{"null-le/ipv4/tcp", LinkTypeNull,
			serialize(tb, nullHdr(2, false), ip4(), tcp(), payload(testPayload)), want4(testPayload)},
		{"null-be/ipv6/tcp", LinkTypeNull,
			serialize(tb, nullHdr(30, true), ip6(layers.IPProtocolTCP), tcp(), payload(testPayload)), want6(testPayload)},
		{"raw/ipv4-options/tcp+ts", LinkTypeRaw,
			serialize(tb, ip4(layers.IPv4Option{OptionType: 0x94, OptionLength: 4, OptionData: []byte{0, 0}}), tcp(nop(), nop(), ts), payload(testPayload)), wantTS4},
		{"raw/ipv6/dst/rt/ah/tcp", LinkTypeRaw,
			serialize(tb, ip6(layers.IPProtocolIPv6Destination), destOpts(layers.IPProtocolIPv6Routing, 1),
				routingHdr(layers.IPProtocolAH), ahHdr(layers.IPProtocolTCP), tcp(), payload(testPayload)), want6(testPayload)},
		{"ipv4/tcp+sack", LinkTypeIPv4,
			serialize(tb, ip4(), tcp(nop(), nop(), sackOpt(10, 20, 30, 40, 50, 60, 70, 80)), payload(testPayload)),
			func() Packet {
				p := want4(testPayload)
				p.NumSACK = 4
				p.SACK = [4]SACKBlock{{10, 20}, {30, 40}, {50, 60}, {70, 80}}
				return p
			}()},
		{"ipv6/tcp+ts", LinkTypeIPv6,
			serialize(tb, ip6(layers.IPProtocolTCP), tcp(nop(), nop(), ts), payload(testPayload)), wantTS6},
	}, tunnelFrames(tb)...)
}
