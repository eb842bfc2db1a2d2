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

	// Facts about the frame, used to explain our rejections.
	shapeOK       bool // every layer is one Decode knows, in an order it follows
	vlanTags      int  // most VLAN tags in front of one EtherType
	extHeaders    int  // most IPv6 extension headers after one IPv6 header
	versionOK     bool // every IP version nibble matches the layer gopacket used
	badKnownOpt   bool // MSS/WS/SACK-permitted/TS/SACK option of the wrong length
	segLenTooLong bool // the TCP header reaches past the IP length fields

	// Tunnel facts, collected whether or not gopacket reached TCP.
	encaps         int  // encapsulations crossed, counted as Decode's depth
	mplsLabels     int  // labels of the longest MPLS stack
	gtpExts        int  // most GTP-U extension headers
	udpBySrcPort   bool // gopacket chose VXLAN/Geneve/GTP-U by the UDP source port
	udpLenBad      bool // UDP length shorter than its header or longer than the IP payload
	vxlanNoVNI     bool // VXLAN header without the I (VNI valid) flag
	geneveVersion  bool // Geneve version bits not 0
	geneveBadOpts  bool // Geneve options run past their total length
	greUnsupported bool // GRE version != 0 or routing present
	greAckBit      bool // the version-1 acknowledgment bit set in a version-0 GRE header
	erspanTypeI    bool // ERSPAN (0x88BE) in GRE without a sequence number
	erspanVersion  bool // ERSPAN II header whose version is not 1
	gtpNotGPDU     bool // GTP-U version/protocol type not 1, or not a G-PDU
	pppoeNotData   bool // PPPoE version/type/code not those of session data
	gtpNoExt       bool // GTP-U E flag set with next extension type 0 (none)
	innerZeroLen   bool // an IP header inside a tunnel with length field 0
	gtpCut         bool // the GTP-U length reaches past the captured bytes
	unknownEncap   bool // PBB, ERSPAN type III or WCCP, which gopacket does not know
	qinq9100       bool // a 0x9100 tag after an 802.1Q tag, which gopacket stops at silently
}

// gopacketLinkDecoders is gopacket's decoder for each link type it decodes
// from the first byte. gopacket v1.1.19 registers no decoder for
// LINKTYPE_IPV4/IPV6, so those start at the IP layer.
var gopacketLinkDecoders = map[LinkType]gopacket.Decoder{
	LinkTypeEthernet: layers.LinkTypeEthernet,
	LinkTypeLinuxSLL: layers.LinkTypeLinuxSLL,
	LinkTypeNull:     layers.LinkTypeNull,
	LinkTypeRaw:      layers.LinkTypeRaw,
	LinkTypeIPv4:     layers.LayerTypeIPv4,
	LinkTypeIPv6:     layers.LayerTypeIPv6,
}

// gopacketDecode runs gopacket on the frame. Decoding is NoCopy so that
// layer slices alias data and header offsets can be computed from their
// capacities.
func gopacketDecode(link LinkType, data []byte) oracle {
	opts := gopacket.DecodeOptions{NoCopy: true}
	// Cap the slice at its length: some gopacket decoders reslice past len
	// (PPPoE's data[2:4] on a 2-byte payload), which with NoCopy would read
	// whatever the fuzzer's buffer held before instead of failing.
	data = data[:len(data):len(data)]
	var pkt gopacket.Packet
	switch dec, ok := gopacketLinkDecoders[link]; {
	case ok:
		pkt = gopacket.NewPacket(data, dec, opts)
	case link == LinkTypeSLL2:
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

	// Shape: [link] Dot1Q* ( (IPv4 | IPv6 ext*) [tunnel] | link tunnel )* (IPv4 | IPv6 ext*) TCP [Payload],
	// and the tunnel context Decode reports, from the same layers.
	o.shapeOK, o.versionOK = true, true
	var tun Tunnel
	var ip4 *layers.IPv4
	var ip6 *layers.IPv6
	var lastIP gopacket.Layer // the latest IP header, for the outer addresses
	var prev gopacket.Layer
	var gre *layers.GRE
	tags, ext, labels := 0, 0, 0
	setOuter := func() {
		switch t := lastIP.(type) {
		case *layers.IPv4:
			tun.OuterSrc, tun.OuterDst = mapped(t.SrcIP), mapped(t.DstIP)
		case *layers.IPv6:
			copy(tun.OuterSrc[:], t.SrcIP)
			copy(tun.OuterDst[:], t.DstIP)
		}
	}
	nIP := 0
	for _, l := range pkt.Layers() {
		if _, isMPLS := l.(*layers.MPLS); !isMPLS {
			labels = 0
		}
		switch t := l.(type) {
		case *layers.Ethernet, *layers.LinuxSLL, *layers.Loopback:
			if et, ok := l.(*layers.Ethernet); ok && et.EthernetType == etherTypePBB ||
				len(t.LayerContents()) >= 16 && link == LinkTypeLinuxSLL && binary.BigEndian.Uint16(t.LayerContents()[14:16]) == etherTypePBB {
				o.unknownEncap = true
			}
			if _, ok := prev.(*layers.Dot1Q); ok {
				o.shapeOK = false // Ethernet right after a tag: LLC-style
			}
			tags = 0
		case *layers.Dot1Q:
			o.unknownEncap = o.unknownEncap || t.Type == etherTypePBB
			o.qinq9100 = o.qinq9100 || t.Type == etherTypeQinQ
			tags++
			o.vlanTags = max(o.vlanTags, tags)
		case *layers.IPv4, *layers.IPv6:
			nIP++
			switch prev.(type) {
			case *layers.IPv4, *layers.IPv6, *layers.IPv6HopByHop, *layers.IPv6Destination, *layers.IPv6Routing:
				tun.Encaps |= EncapIPIP
				o.encaps++
				setOuter()
			case *layers.IPSecAH:
				o.shapeOK = false
			}
			if nIP > 1 {
				if v4, ok := t.(*layers.IPv4); ok && len(v4.Contents) >= 4 && binary.BigEndian.Uint16(v4.Contents[2:4]) == 0 {
					o.innerZeroLen = true
				}
				if v6, ok := t.(*layers.IPv6); ok && v6.Length == 0 {
					o.innerZeroLen = true
				}
			}
			ext = 0
			lastIP = l
			ip4, _ = t.(*layers.IPv4)
			ip6, _ = t.(*layers.IPv6)
			if ip4 != nil && ip4.Version != 4 || ip6 != nil && ip6.Version != 6 {
				o.versionOK = false
			}
		case *layers.IPv6HopByHop, *layers.IPv6Destination, *layers.IPv6Routing, *layers.IPSecAH:
			ext++
			o.extHeaders = max(o.extHeaders, ext)
			if ip6 == nil {
				o.shapeOK = false
			}
		case *layers.UDP:
			if int(t.Length) < 8 && t.Length != 0 {
				o.udpLenBad = true
			}
			// Where the enclosing IP packet ends by its length field.
			udpOff := cap(data) - cap(t.Contents)
			if ip4 != nil && udpOff+int(t.Length) > cap(data)-cap(ip4.Contents)+int(ip4.Length) {
				o.udpLenBad = true
			}
			if ip6 != nil && ip6.Length != 0 && udpOff+int(t.Length) > cap(data)-cap(ip6.Contents)+ipv6HeaderLen+int(ip6.Length) {
				o.udpLenBad = true
			}
			if pl := t.Payload; (t.DstPort == portGTPU || t.SrcPort == portGTPU) && len(pl) >= 12 && pl[0]&0x04 != 0 && pl[11] == 0 {
				o.gtpNoExt = true
			}
			if pl := t.Payload; (t.DstPort == portGTPU || t.SrcPort == portGTPU) && len(pl) >= 4 && 8+int(binary.BigEndian.Uint16(pl[2:4])) > len(pl) {
				o.gtpCut = true
			}
			switch t.DstPort {
			case 4789, 6081, 2152:
			default:
				o.udpBySrcPort = true
			}
		case *layers.VXLAN:
			o.encaps++
			o.vxlanNoVNI = !t.ValidIDFlag
			tun.Encaps |= EncapVXLAN
			tun.ID, tun.IDOf = t.VNI, EncapVXLAN
			setOuter()
		case *layers.Geneve:
			o.encaps++
			o.geneveVersion = t.Contents[0]>>6 != 0
			sum := 0
			for _, opt := range t.Options {
				sum += int(opt.Length)
			}
			o.geneveBadOpts = sum != int(t.OptionsLength)
			tun.Encaps |= EncapGeneve
			tun.ID, tun.IDOf = t.VNI, EncapGeneve
			setOuter()
		case *layers.GRE:
			o.encaps++
			gre = t
			o.greUnsupported = t.Version != 0 || t.RoutingPresent
			o.greAckBit = t.AckPresent
			o.unknownEncap = o.unknownEncap || t.Protocol == etherTypeERSPAN3 || t.Protocol == etherTypeWCCP
			tun.Encaps |= EncapGRE
			if t.KeyPresent {
				tun.ID, tun.IDOf = t.Key, EncapGRE
			}
			setOuter()
		case *layers.ERSPANII:
			o.erspanTypeI = gre != nil && !gre.SeqPresent
			o.erspanVersion = t.Version != 1
			tun.Encaps |= EncapERSPAN
			tun.ID, tun.IDOf = uint32(t.SessionID), EncapERSPAN
		case *layers.GTPv1U:
			o.encaps++
			o.gtpNotGPDU = t.Version != 1 || t.ProtocolType != 1 || t.MessageType != 0xff
			o.gtpExts = max(o.gtpExts, len(t.GTPExtensionHeaders))
			tun.Encaps |= EncapGTPU
			tun.ID, tun.IDOf = t.TEID, EncapGTPU
			setOuter()
		case *layers.PPPoE:
			o.encaps++
			o.pppoeNotData = t.Version != 1 || t.Type != 1 || t.Code != layers.PPPoECodeSession
			switch et := prev.(type) { // gopacket decodes discovery (0x8863) frames the same way
			case *layers.Ethernet:
				o.pppoeNotData = o.pppoeNotData || et.EthernetType == layers.EthernetTypePPPoEDiscovery
			case *layers.Dot1Q:
				o.pppoeNotData = o.pppoeNotData || et.Type == layers.EthernetTypePPPoEDiscovery
			}
			tun.Encaps |= EncapPPPoE
			tun.ID, tun.IDOf = uint32(t.SessionId), EncapPPPoE
		case *layers.PPP:
			if _, ok := prev.(*layers.PPPoE); !ok || t.HasPPTPHeader {
				o.shapeOK = false
			}
		case *layers.MPLS:
			if labels == 0 {
				o.encaps++
			}
			labels++
			o.mplsLabels = max(o.mplsLabels, labels)
			tun.Encaps |= EncapMPLS
			if t.StackBottom {
				tun.ID, tun.IDOf = t.Label, EncapMPLS
			}
		case *layers.TCP, gopacket.Payload, *gopacket.Payload:
		default:
			o.shapeOK = false
		}
		prev = l
	}
	tcpL, _ := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if tcpL == nil || o.errText != "" {
		return o
	}
	o.accepted = true
	if nIP == 0 {
		o.shapeOK = false
		return o
	}

	p := &o.pkt
	p.Tunnel = tun
	tcpOff := cap(data) - cap(tcpL.Contents)
	hl := int(tcpL.DataOffset) * 4
	var seg int
	if ip4 != nil {
		p.Src = mapped(ip4.SrcIP)
		p.Dst = mapped(ip4.DstIP)
		p.IPID = ip4.Id
		// gopacket replaces a zero total length by the bytes it was given,
		// which is our rule too when wireLen == len(data).
		ipOff := cap(data) - cap(ip4.Contents)
		seg = int(ip4.Length) - (tcpOff - ipOff)
	} else {
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
	// Payload reads untunnelled segments only: the bytes captured from the
	// payload's start to the frame's end.
	if tun.Encaps == 0 {
		p.payloadRest = int32(len(data) - tcpOff - hl)
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
			if len(d) == 2 {
				p.MSS = binary.BigEndian.Uint16(d)
			}
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
func whyWeReject(ours Status, o oracle) string {
	if why := whyTunnelsDiffer(o); why != "" {
		return why
	}
	switch ours {
	case NotTCP:
		if !o.shapeOK {
			return "gopacket follows encapsulations we do not (LLC/SNAP, PPTP's PPP, AH over IPv4, ...)"
		}
		if o.vlanTags > MaxVLANTags {
			return "we stop after MaxVLANTags stacked VLAN tags; gopacket has no bound"
		}
		if o.extHeaders > MaxIPv6ExtHeaders {
			return "we stop after MaxIPv6ExtHeaders IPv6 extension headers; gopacket has no bound"
		}
		if o.encaps > MaxTunnelDepth || o.mplsLabels > MaxMPLSLabels || o.gtpExts > MaxGTPExtHeaders {
			return "we stop after MaxTunnelDepth encapsulations, MaxMPLSLabels labels and MaxGTPExtHeaders GTP-U extension headers; gopacket has no bound"
		}
	case BadHeader:
		if !o.versionOK {
			return "gopacket does not check the IP version nibble against the EtherType/link type"
		}
		if o.badKnownOpt {
			return "gopacket accepts MSS/WS/SACK-permitted/timestamps/SACK options of the wrong length; we reject them as malformed"
		}
		if o.segLenTooLong {
			return "the IP length fields end inside the TCP header; gopacket does not cross-check (after an IPv6 hop-by-hop header it does not cut the payload to the IPv6 length)"
		}
		if o.udpLenBad {
			return "a UDP length shorter than the header or longer than the IP payload is malformed for us, as for Linux's udp_rcv; gopacket cuts the payload to whichever is shorter"
		}
	}
	return ""
}

// whyTunnelsDiffer returns the reason, if any, for which gopacket's and our
// reading of a tunnelled frame may differ in outcome or in fields.
func whyTunnelsDiffer(o oracle) string {
	switch {
	case o.udpBySrcPort:
		return "gopacket picks VXLAN/Geneve/GTP-U by the UDP source port too; we, like the receiving endpoint's socket, by the destination port only"
	case o.vxlanNoVNI:
		return "a VXLAN header without the I flag carries no valid VNI; Linux's vxlan_rcv drops it, and so do we; gopacket decodes it"
	case o.geneveVersion:
		return "gopacket ignores the Geneve version; we decode only version 0"
	case o.geneveBadOpts:
		return "gopacket walks Geneve option TLVs and trusts their lengths over the header's total; we skip the options by the total, as a tunnel endpoint does"
	case o.greUnsupported:
		return "we do not decode GRE version 1 (PPTP) nor the obsolete RFC 1701 routing, as Linux's gre_parse_header; gopacket does"
	case o.greAckBit:
		return "gopacket reads the version-1 acknowledgment field in version-0 GRE headers too; we, like Linux, ignore that reserved bit"
	case o.erspanTypeI:
		return "ERSPAN without a GRE sequence number is type I, with no ERSPAN header (Linux's gre_parse_header); gopacket always reads a type II header"
	case o.erspanVersion:
		return "gopacket ignores the ERSPAN II version; we decode 1 only (2 is type III, under its own protocol type)"
	case o.gtpNotGPDU:
		return "we decode only GTP-U version 1 G-PDUs (message type 255), the only ones carrying a user packet; gopacket decodes any message type and version"
	case o.gtpNoExt:
		return "a GTP-U E flag with next extension header type 0 announces no extension header (TS 29.281 5.2.1); gopacket reads one anyway"
	case o.gtpCut:
		return "gopacket wants the whole GTP-U message captured; we check its length against the wire, since a snaplen cuts the payload"
	case o.innerZeroLen:
		return "an IP length 0 inside a tunnel: gopacket takes the bytes it was given, we the length the enclosing headers give, as for the outermost IP header and the wire length"
	case o.pppoeNotData:
		return "we decode PPPoE session data only (EtherType 0x8864, version 1, type 1, code 0); gopacket does not check them"
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
	case strings.Contains(e, fmt.Sprintf("EthernetType %d", etherTypeQinQ)) || o.qinq9100:
		return "gopacket does not know the 0x9100 QinQ tag"
	case link == LinkTypeLinuxSLL && len(data) >= 6 && int(binary.BigEndian.Uint16(data[4:6]))+6 > len(data):
		return "gopacket's LinuxSLL slices the address by its length field and panics when that runs past the frame; we ignore the link address"
	case o.unknownEncap || link == LinkTypeSLL2 && len(data) >= 2 && binary.BigEndian.Uint16(data) == etherTypePBB:
		return "gopacket v1.1.19 has no 802.1ah PBB, ERSPAN type III or WCCP-over-GRE layer"
	case strings.Contains(e, "guess protocol"):
		return "after the bottom MPLS label gopacket guesses only IPv4 (0x45-0x4f) and IPv6; we also decode an Ethernet pseudowire with its control word (first nibble 0)"
	}
	if why := whyTunnelsDiffer(o); why != "" {
		return why
	}
	return ""
}

// gopacketLayers lists gopacket's layers of a frame with their header
// bytes, to explain a fuzz failure.
func gopacketLayers(link LinkType, data []byte) string {
	lt := map[LinkType]gopacket.Decoder{LinkTypeEthernet: layers.LinkTypeEthernet, LinkTypeLinuxSLL: layers.LinkTypeLinuxSLL,
		LinkTypeNull: layers.LinkTypeNull, LinkTypeRaw: layers.LinkTypeRaw, LinkTypeIPv4: layers.LayerTypeIPv4, LinkTypeIPv6: layers.LayerTypeIPv6}[link]
	if lt == nil {
		return ""
	}
	var b strings.Builder
	for _, l := range gopacket.NewPacket(data, lt, gopacket.Default).Layers() {
		fmt.Fprintf(&b, "  %T %x\n", l, l.LayerContents())
	}
	return b.String()
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
		case o.accepted && ours == OK:
			if p.Tunnel.Encaps != 0 {
				o.pkt.payloadRest = p.payloadRest // within the tunnel's bounds; Payload returns nil
			}
			if p != o.pkt && whyTunnelsDiffer(o) == "" {
				t.Fatalf("link %d: decoders disagree\n ours     %+v\n gopacket %+v\n%s", link, p, o.pkt, gopacketLayers(link, data))
			}
		case o.accepted:
			if why := whyWeReject(ours, o); why == "" {
				t.Fatalf("link %d: we reject (%v) a segment gopacket decodes: %+v\n%s", link, ours, o.pkt, gopacketLayers(link, data))
			}
		case ours == OK:
			if why := whyGopacketRejects(link, data, o); why == "" {
				t.Fatalf("link %d: we decode %+v, gopacket rejects: %s\n%s", link, p, o.errText, gopacketLayers(link, data))
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
			if err >= Status(NumStatuses) {
				t.Fatalf("link %d: unknown error kind %d", link, err)
			}
			if pl := p.Payload(data); (err == OK || err == DNS) && p.Tunnel.Encaps == 0 {
				// The payload is a part of the frame, no longer than the IP
				// length says, and ends where the frame or the IP length does.
				if uint64(len(pl)) > uint64(p.PayloadLen) || len(pl) > len(data) {
					t.Fatalf("link %d: payload of %d bytes, PayloadLen %d, frame %d", link, len(pl), p.PayloadLen, len(data))
				}
				if len(pl) > 0 && &pl[len(pl)-1] != &data[len(data)-int(p.payloadRest)+len(pl)-1] {
					t.Fatalf("link %d: payload is not where Decode found it", link)
				}
			}
			if err != OK {
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
			if e := q.Decode(link, data, int(wire)); e != OK || q != p {
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
	add(LinkTypeRaw, serialize(tb, ip6(layers.IPProtocolUDP), &layers.UDP{SrcPort: 53, DstPort: 2}, payload(30))) // DNS
	tcpDNS := tcp(ts)
	tcpDNS.SrcPort = 53
	add(LinkTypeEthernet, serialize(tb, eth(layers.EthernetTypeIPv4), ip4(), tcpDNS, payload(30)))
	add(LinkTypeIPv4, serialize(tb, ip4(layers.IPv4Option{OptionType: 1}, layers.IPv4Option{OptionType: 1}, layers.IPv4Option{OptionType: 1}, layers.IPv4Option{OptionType: 0}), tcp(ts)))
	add(LinkTypeIPv6, patch(serialize(tb, ip6(layers.IPProtocolTCP), tcp()), func(b []byte) { b[4], b[5] = 0, 0 }))
	return seeds
}

// discrepancy is a frame on which gopacket and Decode differ for a listed
// reason.
type discrepancy struct {
	name   string
	link   LinkType
	data   []byte
	ours   Status // OK: we accept, gopacket rejects or decodes other fields
	reason string
}

// TestFuzzDiscrepancies pins each accepted discrepancy with a frame, so the
// list in whyWeReject / whyGopacketRejects cannot rot: if gopacket or our
// decoder changes, the frame no longer shows the difference and this fails.
func TestFuzzDiscrepancies(t *testing.T) {
	e4 := serialize(t, eth(layers.EthernetTypeIPv4), ip4(), tcp(), payload(3))
	cases := []discrepancy{
		{"version nibble", LinkTypeEthernet, patch(e4, func(b []byte) { b[14] = 0x55 }), BadHeader, "version nibble"},
		{"5 vlan tags", LinkTypeEthernet, serialize(t, eth(layers.EthernetTypeDot1Q), dot1q(1, layers.EthernetTypeDot1Q), dot1q(2, layers.EthernetTypeDot1Q),
			dot1q(3, layers.EthernetTypeDot1Q), dot1q(4, layers.EthernetTypeDot1Q), dot1q(5, layers.EthernetTypeIPv4), ip4(), tcp()), NotTCP, "MaxVLANTags"},
		{"9 ext headers", LinkTypeRaw, serialize(t, ip6(60), destOpts(60, 0), destOpts(60, 0), destOpts(60, 0), destOpts(60, 0),
			destOpts(60, 0), destOpts(60, 0), destOpts(60, 0), destOpts(60, 0), destOpts(6, 0), tcp()), NotTCP, "MaxIPv6ExtHeaders"},
		{"ah over ipv4", LinkTypeRaw, serialize(t, func() *layers.IPv4 { ip := ip4(); ip.Protocol = layers.IPProtocolAH; return ip }(), ahHdr(6), tcp()), NotTCP, "AH over IPv4"},
		{"ts length 8", LinkTypeRaw, serialize(t, ip4(), tcp(layers.TCPOption{OptionType: 8, OptionData: make([]byte, 6)})), BadHeader, "wrong length"},
		{"ipv6 length inside tcp after hbh", LinkTypeRaw, patch(serialize(t, ip6(0), hopByHop(6), tcp()), func(b []byte) { b[5] = 8 + 10 }), BadHeader, "cross-check"},
		{"ipv4 bad option", LinkTypeRaw, patch(serialize(t, ip4(layers.IPv4Option{OptionType: 0x94, OptionLength: 4, OptionData: []byte{0, 0}}), tcp()),
			func(b []byte) { b[21] = 2 }), OK, "IPv4 options"},
		{"ipv6 length 0 without jumbo", LinkTypeRaw, patch(serialize(t, ip6(6), tcp()), func(b []byte) { b[4], b[5] = 0, 0 }), OK, "jumbo"},
		{"routing type 4", LinkTypeRaw, serialize(t, ip6(43), routingHdr(6), tcp()), OK, "routing type 0"},
		{"0x9100 tag", LinkTypeEthernet, serialize(t, eth(0x9100), dot1q(1, layers.EthernetTypeIPv4), ip4(), tcp()), OK, "0x9100"},
		{"0x9100 tag after 802.1Q", LinkTypeEthernet, serialize(t, eth(layers.EthernetTypeDot1Q), dot1q(1, 0x9100), dot1q(2, layers.EthernetTypeIPv4), ip4(), tcp()), OK, "0x9100"},
		{"sll address length 256", LinkTypeLinuxSLL, patch(serialize(t, sllHdr(0x0800), ip4(), tcp()), func(b []byte) { b[4] = 1 }), OK, "address"},
	}
	cases = append(cases, tunnelDiscrepancies(t)...)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var p Packet
			ours := p.Decode(tc.link, tc.data, len(tc.data))
			if ours != tc.ours {
				t.Fatalf("Decode = %v, want %v", ours, tc.ours)
			}
			o := gopacketDecode(tc.link, tc.data)
			var why string
			if tc.ours == OK && o.accepted {
				// Both decode: the pinned difference is in the fields.
				if p == o.pkt {
					t.Fatal("both decoders agree: no discrepancy left")
				}
				why = whyTunnelsDiffer(o)
			} else if tc.ours == OK {
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
