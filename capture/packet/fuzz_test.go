package packet

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// fuzzLinks maps the fuzzer's selector byte to a link type. The last entry
// is one the decoder does not know, to keep that path fuzzed too.
var fuzzLinks = [...]LinkType{
	LinkTypeEthernet, LinkTypeLinuxSLL, LinkTypeSLL2, LinkTypeNull,
	LinkTypeRaw, LinkTypeIPv4, LinkTypeIPv6, 147,
}

func linkSelector(l LinkType) byte {
	for i, x := range fuzzLinks {
		if x == l {
			return byte(i)
		}
	}
	panic(fmt.Sprintf("link %d not in fuzzLinks", l))
}

// oracle is gopacket's reading of a frame, reduced to the fields Decode
// produces plus the facts needed to explain an accepted discrepancy.
type oracle struct {
	accepted bool   // gopacket decoded a TCP layer without error
	errText  string // gopacket's decode error, if any
	pkt      Packet // valid when accepted

	// Facts about an accepted frame, used to explain our rejections.
	shapeOK       bool // link, VLAN tags, one IP layer (+ IPv6 ext headers), TCP
	vlanTags      int
	extHeaders    int
	versionOK     bool // the IP version nibble matches the layer gopacket used
	badKnownOpt   bool // MSS/WS/SACK-permitted/TS/SACK option of the wrong length
	segLenTooLong bool // the TCP header reaches past the IP length fields
}

// gopacketDecode runs gopacket on the frame. Decoding is NoCopy so that
// layer slices alias data and header offsets can be computed from their
// capacities.
func gopacketDecode(link LinkType, data []byte) oracle {
	opts := gopacket.DecodeOptions{NoCopy: true}
	var pkt gopacket.Packet
	switch link {
	case LinkTypeEthernet:
		pkt = gopacket.NewPacket(data, layers.LinkTypeEthernet, opts)
	case LinkTypeLinuxSLL:
		pkt = gopacket.NewPacket(data, layers.LinkTypeLinuxSLL, opts)
	case LinkTypeNull:
		pkt = gopacket.NewPacket(data, layers.LinkTypeNull, opts)
	case LinkTypeRaw:
		pkt = gopacket.NewPacket(data, layers.LinkTypeRaw, opts)
	case LinkTypeIPv4:
		// gopacket v1.1.19 registers no decoder for LINKTYPE_IPV4/IPV6.
		pkt = gopacket.NewPacket(data, layers.LayerTypeIPv4, opts)
	case LinkTypeIPv6:
		pkt = gopacket.NewPacket(data, layers.LayerTypeIPv6, opts)
	case LinkTypeSLL2:
		// gopacket v1.1.19 has no SLL2 layer: decode what follows the
		// 20-byte header by its protocol field, as an SLL2 decoder would.
		if len(data) < sll2HeaderLen {
			return oracle{errText: "SLL2 header truncated"}
		}
		et := layers.EthernetType(binary.BigEndian.Uint16(data[0:2]))
		pkt = gopacket.NewPacket(data[sll2HeaderLen:], et, opts)
	default:
		return oracle{errText: "unsupported link"}
	}
	var o oracle
	if el := pkt.ErrorLayer(); el != nil {
		o.errText = el.Error().Error()
	}
	tcpL, _ := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if tcpL == nil || o.errText != "" {
		return o
	}
	o.accepted = true

	// Shape: [link] Dot1Q* (IPv4 | IPv6 ext*) TCP [Payload].
	o.shapeOK = true
	nIP := 0
	var ip4 *layers.IPv4
	var ip6 *layers.IPv6
	for _, l := range pkt.Layers() {
		switch t := l.(type) {
		case *layers.Ethernet, *layers.LinuxSLL, *layers.Loopback:
			if nIP > 0 || o.vlanTags > 0 {
				o.shapeOK = false
			}
		case *layers.Dot1Q:
			o.vlanTags++
			if nIP > 0 {
				o.shapeOK = false
			}
		case *layers.IPv4:
			nIP++
			ip4 = t
		case *layers.IPv6:
			nIP++
			ip6 = t
		case *layers.IPv6HopByHop, *layers.IPv6Destination, *layers.IPv6Routing, *layers.IPSecAH:
			o.extHeaders++
			if ip6 == nil {
				o.shapeOK = false
			}
		case *layers.TCP, gopacket.Payload:
		default:
			o.shapeOK = false
		}
	}
	if nIP != 1 {
		o.shapeOK = false
		return o
	}

	p := &o.pkt
	tcpOff := cap(data) - cap(tcpL.Contents)
	hl := int(tcpL.DataOffset) * 4
	var seg int
	if ip4 != nil {
		o.versionOK = ip4.Version == 4
		p.Src = mapped(ip4.SrcIP)
		p.Dst = mapped(ip4.DstIP)
		p.IPID = ip4.Id
		// gopacket replaces a zero total length by the bytes it was given,
		// which is our rule too when wireLen == len(data).
		ipOff := cap(data) - cap(ip4.Contents)
		seg = int(ip4.Length) - (tcpOff - ipOff)
	} else {
		o.versionOK = ip6.Version == 6
		p.IPv6 = true
		copy(p.Src[:], ip6.SrcIP)
		copy(p.Dst[:], ip6.DstIP)
		ipOff := cap(data) - cap(ip6.Contents)
		if ip6.Length != 0 {
			seg = int(ip6.Length) - (tcpOff - ipOff - ipv6HeaderLen)
		} else {
			// Jumbogram: we use the wire length, not the jumbo option.
			seg = len(data) - tcpOff
		}
	}
	if seg < hl {
		o.segLenTooLong = true
	} else {
		p.PayloadLen = uint32(seg - hl)
	}
	p.SrcPort, p.DstPort = uint16(tcpL.SrcPort), uint16(tcpL.DstPort)
	p.Seq, p.Ack, p.Window = tcpL.Seq, tcpL.Ack, tcpL.Window
	for i, set := range []bool{tcpL.FIN, tcpL.SYN, tcpL.RST, tcpL.PSH, tcpL.ACK, tcpL.URG, tcpL.ECE, tcpL.CWR} {
		if set {
			p.Flags |= 1 << i
		}
	}
	for _, opt := range tcpL.Options {
		d := opt.OptionData
		switch opt.OptionType {
		case layers.TCPOptionKindEndList:
			// gopacket stops at EOL too; the rest is padding.
		case layers.TCPOptionKindMSS:
			o.badKnownOpt = o.badKnownOpt || len(d) != 2
		case layers.TCPOptionKindWindowScale:
			o.badKnownOpt = o.badKnownOpt || len(d) != 1
		case layers.TCPOptionKindSACKPermitted:
			o.badKnownOpt = o.badKnownOpt || len(d) != 0
		case layers.TCPOptionKindTimestamps:
			if len(d) != 8 {
				o.badKnownOpt = true
				continue
			}
			p.HasTimestamps = true
			p.TSval = binary.BigEndian.Uint32(d[0:4])
			p.TSecr = binary.BigEndian.Uint32(d[4:8])
		case layers.TCPOptionKindSACK:
			if len(d) == 0 || len(d)%8 != 0 {
				o.badKnownOpt = true
				continue
			}
			p.SACK = [MaxSACKBlocks]SACKBlock{}
			p.NumSACK = 0
			for ; len(d) >= 8 && p.NumSACK < MaxSACKBlocks; d = d[8:] {
				p.SACK[p.NumSACK] = SACKBlock{binary.BigEndian.Uint32(d[0:4]), binary.BigEndian.Uint32(d[4:8])}
				p.NumSACK++
			}
		}
	}
	return o
}

// whyWeReject returns the accepted reason for rejecting a frame gopacket
// decodes, or "" if there is none (a bug on one side).
func whyWeReject(ours Error, o oracle) string {
	switch ours {
	case ErrNotTCP:
		if !o.shapeOK {
			return "gopacket follows encapsulations (LLC/SNAP, MPLS, PPPoE, IP-in-IP, GRE, AH over IPv4, ...); we decode only [link][VLAN tags] IP [IPv6 ext headers] TCP"
		}
		if o.vlanTags > MaxVLANTags {
			return "we stop after MaxVLANTags stacked VLAN tags; gopacket has no bound"
		}
		if o.extHeaders > MaxIPv6ExtHeaders {
			return "we stop after MaxIPv6ExtHeaders IPv6 extension headers; gopacket has no bound"
		}
	case ErrBadHeader:
		if !o.versionOK {
			return "gopacket does not check the IP version nibble against the EtherType/link type"
		}
		if o.badKnownOpt {
			return "gopacket accepts MSS/WS/SACK-permitted/timestamps/SACK options of the wrong length; we reject them as malformed"
		}
		if o.segLenTooLong {
			return "the IP length fields end inside the TCP header; gopacket does not cross-check (after an IPv6 hop-by-hop header it does not cut the payload to the IPv6 length)"
		}
	}
	return ""
}

// whyGopacketRejects returns the accepted reason for us decoding a frame
// gopacket rejects, or "". gopacket v1.1.19's error texts are matched: the
// version is pinned in go.mod.
func whyGopacketRejects(link LinkType, data []byte, o oracle) string {
	e := o.errText
	switch {
	case strings.Contains(e, "ip4 option") || strings.Contains(e, "IP option"):
		return "gopacket parses IPv4 options and rejects malformed ones; we skip options by IHL since none matters to TCP timing"
	case strings.Contains(e, "IPv6 header option") || strings.Contains(e, "IPv6 header TLV option") ||
		strings.Contains(e, "umbo") || strings.Contains(e, "IPv6 length 0"):
		return "gopacket parses hop-by-hop/destination TLV options and requires a jumbo option for IPv6 payload length 0; we skip the options and take a zero length from the wire (BIG TCP sends none)"
	case strings.Contains(e, "routing"):
		return "gopacket decodes only IPv6 routing type 0; we skip any routing header by its length"
	case strings.Contains(e, fmt.Sprintf("EthernetType %d", etherTypeQinQ)):
		return "gopacket does not know the 0x9100 QinQ tag"
	case link == LinkTypeLinuxSLL && len(data) >= 6 && int(binary.BigEndian.Uint16(data[4:6]))+6 > len(data):
		return "gopacket's LinuxSLL slices the address by its length field and panics when that runs past the frame; we ignore the link address"
	}
	return ""
}

// FuzzDecode is a differential fuzz test against gopacket. Whenever both
// decode a TCP segment, every field the engine uses must agree; whenever
// exactly one of them decodes it, the difference must be one of the listed,
// deliberate ones.
func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s.sel, s.data)
	}
	f.Fuzz(func(t *testing.T, sel byte, data []byte) {
		link := fuzzLinks[int(sel)%len(fuzzLinks)]
		var p Packet
		ours := p.Decode(link, data, len(data))
		o := gopacketDecode(link, data)
		switch {
		case o.accepted && ours == ErrNone:
			if p != o.pkt {
				t.Fatalf("link %d: decoders disagree\n ours     %+v\n gopacket %+v", link, p, o.pkt)
			}
		case o.accepted:
			if why := whyWeReject(ours, o); why == "" {
				t.Fatalf("link %d: we reject (%v) a segment gopacket decodes: %+v", link, ours, o.pkt)
			}
		case ours == ErrNone:
			if why := whyGopacketRejects(link, data, o); why == "" {
				t.Fatalf("link %d: we decode %+v, gopacket rejects: %s", link, p, o.errText)
			}
		}
	})
}

// FuzzInvariants feeds the same bytes to every link type with an
// arbitrary wire length and checks what must hold whatever the input: no
// panic, no allocation, and a successful decode that is self-consistent.
func FuzzInvariants(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s.data, uint32(len(s.data)))
		f.Add(s.data, uint32(len(s.data)+100000))
	}
	f.Fuzz(func(t *testing.T, data []byte, wire uint32) {
		for _, link := range fuzzLinks {
			var p Packet
			err := p.Decode(link, data, int(wire))
			if err >= Error(NumErrorKinds) {
				t.Fatalf("link %d: unknown error kind %d", link, err)
			}
			if err != ErrNone {
				continue
			}
			// The payload length comes from a 16-bit IP length field, or
			// from the wire length when that field is 0. (It is not checked
			// against the wire length otherwise: see Decode.)
			if w := max(int(wire), len(data), 0xffff); int(p.PayloadLen) > w {
				t.Fatalf("link %d: payload %d longer than both IP and wire length allow (%d)", link, p.PayloadLen, w)
			}
			if p.NumSACK > MaxSACKBlocks {
				t.Fatalf("link %d: NumSACK %d", link, p.NumSACK)
			}
			for i := int(p.NumSACK); i < MaxSACKBlocks; i++ {
				if p.SACK[i] != (SACKBlock{}) {
					t.Fatalf("link %d: stale SACK block %d: %+v", link, i, p.SACK[i])
				}
			}
			if !p.HasTimestamps && (p.TSval != 0 || p.TSecr != 0) {
				t.Fatalf("link %d: timestamp values without the option", link)
			}
			if !p.IPv6 && [12]byte(p.Src[:12]) != [12]byte{10: 0xff, 11: 0xff} {
				t.Fatalf("link %d: IPv4 source not IPv4-mapped: %v", link, p.Src)
			}
			// Decoding the same bytes into a dirty Packet gives the same result.
			q := Packet{Seq: 1, NumSACK: 4, SACK: [4]SACKBlock{{1, 2}, {3, 4}, {5, 6}, {7, 8}}, HasTimestamps: true, TSval: 9, IPv6: !p.IPv6}
			if e := q.Decode(link, data, int(wire)); e != ErrNone || q != p {
				t.Fatalf("link %d: decode into a used Packet differs: %v %+v vs %+v", link, e, q, p)
			}
		}
	})
}

type fuzzSeed struct {
	sel  byte
	data []byte
}

// fuzzSeeds are the valid frames plus crafted edge cases for each link type.
func fuzzSeeds(tb testing.TB) []fuzzSeed {
	var seeds []fuzzSeed
	for _, fc := range validFrames(tb) {
		seeds = append(seeds, fuzzSeed{linkSelector(fc.link), fc.data})
	}
	add := func(l LinkType, data []byte) { seeds = append(seeds, fuzzSeed{linkSelector(l), data}) }
	ts := tsOpt(1, 2)
	e4 := serialize(tb, eth(layers.EthernetTypeIPv4), ip4(), tcp(nop(), nop(), ts, nop(), nop(), sackOpt(1, 2, 3, 4)), payload(3))
	add(LinkTypeEthernet, e4)
	add(LinkTypeEthernet, patch(e4, func(b []byte) { b[14+6] = 0x20 }))          // fragment
	add(LinkTypeEthernet, patch(e4, func(b []byte) { b[14+2], b[14+3] = 0, 0 })) // TSO
	add(LinkTypeEthernet, append(serialize(tb, eth(layers.EthernetTypeIPv4), ip4(), tcp()), 0, 0, 0, 0, 0, 0))
	add(LinkTypeEthernet, serialize(tb, eth(0x9100), dot1q(1, layers.EthernetTypeDot1Q), dot1q(2, layers.EthernetTypeIPv4), ip4(), tcp(), payload(1)))
	add(LinkTypeEthernet, serialize(tb, eth(layers.EthernetTypeIPv6), ip6(layers.IPProtocolIPv6HopByHop), hopByHop(layers.IPProtocolIPv6Destination),
		destOpts(layers.IPProtocolIPv6Fragment, 0), fragHdr(6, 0, true), tcp(), payload(1)))
	add(LinkTypeLinuxSLL, serialize(tb, sllHdr(0x86dd), ip6(layers.IPProtocolIPv6Destination), destOpts(layers.IPProtocolAH, 0), ahHdr(6), tcp(ts), payload(2)))
	add(LinkTypeSLL2, serialize(tb, sll2Hdr(0x8100), dot1q(5, layers.EthernetTypeIPv4), ip4(), tcp(mssOpt(1460), sackPermOpt(), ts, nop(), wsOpt(7))))
	add(LinkTypeNull, serialize(tb, nullHdr(28, false), ip6(layers.IPProtocolTCP), tcp(ts), payload(1)))
	add(LinkTypeRaw, serialize(tb, ip6(layers.IPProtocolUDP), &layers.UDP{SrcPort: 1, DstPort: 2}, payload(4)))
	add(LinkTypeIPv4, serialize(tb, ip4(layers.IPv4Option{OptionType: 1}, layers.IPv4Option{OptionType: 1}, layers.IPv4Option{OptionType: 1}, layers.IPv4Option{OptionType: 0}), tcp(ts)))
	add(LinkTypeIPv6, patch(serialize(tb, ip6(layers.IPProtocolTCP), tcp()), func(b []byte) { b[4], b[5] = 0, 0 }))
	return seeds
}

// TestFuzzDiscrepancies pins each accepted discrepancy with a frame, so the
// list in whyWeReject / whyGopacketRejects cannot rot: if gopacket or our
// decoder changes, the frame no longer shows the difference and this fails.
func TestFuzzDiscrepancies(t *testing.T) {
	e4 := serialize(t, eth(layers.EthernetTypeIPv4), ip4(), tcp(), payload(3))
	cases := []struct {
		name   string
		link   LinkType
		data   []byte
		ours   Error // ErrNone: we accept, gopacket rejects
		reason string
	}{
		{"version nibble", LinkTypeEthernet, patch(e4, func(b []byte) { b[14] = 0x55 }), ErrBadHeader, "version nibble"},
		{"5 vlan tags", LinkTypeEthernet, serialize(t, eth(layers.EthernetTypeDot1Q), dot1q(1, layers.EthernetTypeDot1Q), dot1q(2, layers.EthernetTypeDot1Q),
			dot1q(3, layers.EthernetTypeDot1Q), dot1q(4, layers.EthernetTypeDot1Q), dot1q(5, layers.EthernetTypeIPv4), ip4(), tcp()), ErrNotTCP, "MaxVLANTags"},
		{"9 ext headers", LinkTypeRaw, serialize(t, ip6(60), destOpts(60, 0), destOpts(60, 0), destOpts(60, 0), destOpts(60, 0),
			destOpts(60, 0), destOpts(60, 0), destOpts(60, 0), destOpts(60, 0), destOpts(6, 0), tcp()), ErrNotTCP, "MaxIPv6ExtHeaders"},
		{"ip-in-ip", LinkTypeRaw, serialize(t, func() *layers.IPv4 { ip := ip4(); ip.Protocol = layers.IPProtocolIPv4; return ip }(), ip4(), tcp()), ErrNotTCP, "encapsulations"},
		{"ts length 8", LinkTypeRaw, serialize(t, ip4(), tcp(layers.TCPOption{OptionType: 8, OptionData: make([]byte, 6)})), ErrBadHeader, "wrong length"},
		{"ipv6 length inside tcp after hbh", LinkTypeRaw, patch(serialize(t, ip6(0), hopByHop(6), tcp()), func(b []byte) { b[5] = 8 + 10 }), ErrBadHeader, "cross-check"},
		{"ipv4 bad option", LinkTypeRaw, patch(serialize(t, ip4(layers.IPv4Option{OptionType: 0x94, OptionLength: 4, OptionData: []byte{0, 0}}), tcp()),
			func(b []byte) { b[21] = 2 }), ErrNone, "IPv4 options"},
		{"ipv6 length 0 without jumbo", LinkTypeRaw, patch(serialize(t, ip6(6), tcp()), func(b []byte) { b[4], b[5] = 0, 0 }), ErrNone, "jumbo"},
		{"routing type 4", LinkTypeRaw, serialize(t, ip6(43), routingHdr(6), tcp()), ErrNone, "routing type 0"},
		{"0x9100 tag", LinkTypeEthernet, serialize(t, eth(0x9100), dot1q(1, layers.EthernetTypeIPv4), ip4(), tcp()), ErrNone, "0x9100"},
		{"sll address length 256", LinkTypeLinuxSLL, patch(serialize(t, sllHdr(0x0800), ip4(), tcp()), func(b []byte) { b[4] = 1 }), ErrNone, "address"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var p Packet
			ours := p.Decode(tc.link, tc.data, len(tc.data))
			if ours != tc.ours {
				t.Fatalf("Decode = %v, want %v", ours, tc.ours)
			}
			o := gopacketDecode(tc.link, tc.data)
			var why string
			if tc.ours == ErrNone {
				if o.accepted {
					t.Fatal("gopacket accepts the frame: no discrepancy left")
				}
				why = whyGopacketRejects(tc.link, tc.data, o)
			} else {
				if !o.accepted {
					t.Fatalf("gopacket rejects the frame (%s): no discrepancy left", o.errText)
				}
				why = whyWeReject(ours, o)
			}
			if !strings.Contains(why, tc.reason) {
				t.Fatalf("reason %q does not mention %q", why, tc.reason)
			}
		})
	}
}
