package packet

import (
	"fmt"
	"net/netip"
	"strings"
)

// Encap is a set of encapsulations, one bit each. Decode records in
// Packet.Tunnel.Encaps every encapsulation it crossed to reach the TCP
// segment, so that a caller can drop the ones it was not told to expect
// with one AND.
type Encap uint16

// Encapsulations Decode understands. Each is crossed whatever the caller
// expects; the caller filters on Tunnel.Encaps.
const (
	EncapVXLAN  Encap = 1 << iota // VXLAN, UDP port 4789 (RFC 7348): Ethernet inside
	EncapGeneve                   // Geneve, UDP port 6081 (RFC 8926), options skipped
	EncapGRE                      // GRE, IP protocol 47 (RFC 2784/2890): IP, MPLS, Ethernet (0x6558) or WCCP inside
	EncapERSPAN                   // ERSPAN type I/II (0x88BE) or III (0x22EB) over GRE
	EncapGTPU                     // GTP-U G-PDU, UDP port 2152 (3GPP TS 29.281), extension headers skipped
	EncapIPIP                     // IPv4 or IPv6 directly in IPv4 or IPv6 (IP protocols 4 and 41)
	EncapPPPoE                    // PPPoE session stage, EtherType 0x8864 (RFC 2516)
	EncapMPLS                     // MPLS label stack, EtherTypes 0x8847/0x8848 (RFC 3032)
	EncapPBB                      // 802.1ah provider backbone bridging I-TAG, EtherType 0x88E7
	numEncaps         = iota

	// EncapAll is every encapsulation Decode understands.
	EncapAll Encap = 1<<numEncaps - 1
)

// encapNames are the configuration names of the Encap bits, in bit order.
// They are the one list of names: ParseEncaps, String and the
// documentation (via EncapNames) all read it.
var encapNames = [numEncaps]string{"vxlan", "geneve", "gre", "erspan", "gtpu", "ipip", "pppoe", "mpls", "pbb"}

// idNames say what Tunnel.ID holds for each encapsulation that has one.
var idNames = [numEncaps]string{"vni", "vni", "key", "session", "teid", "", "session", "label", "isid"}

// EncapNames returns the configuration names of all encapsulations, in
// bit order.
func EncapNames() []string { return encapNames[:] }

// ParseEncaps turns configuration names into a set; "all" stands for
// EncapAll. Unknown names are an error that lists the known ones.
func ParseEncaps(names []string) (Encap, error) {
	var set Encap
	for _, n := range names {
		n = strings.ToLower(strings.TrimSpace(n))
		if n == "all" {
			set |= EncapAll
			continue
		}
		i := 0
		for i < numEncaps && encapNames[i] != n {
			i++
		}
		if i == numEncaps {
			return 0, fmt.Errorf("unknown encapsulation %q (known: all, %s)", n, strings.Join(encapNames[:], ", "))
		}
		set |= 1 << i
	}
	return set, nil
}

// Within reports whether a segment that crossed the encapsulations e may be
// timed by an instance that expects want: each of them must be expected,
// except the GRE header that carries ERSPAN, which expecting erspan
// implies.
func (e Encap) Within(want Encap) bool {
	if e&want&EncapERSPAN != 0 {
		e &^= EncapGRE
	}
	return e&^want == 0
}

// Names lists the names of the set's encapsulations in bit order (a fixed
// order, not the nesting order).
func (e Encap) Names() []string {
	var names []string
	for i := range numEncaps {
		if e&(1<<i) != 0 {
			names = append(names, encapNames[i])
		}
	}
	return names
}

// String joins Names with "+"; "" for the empty set.
func (e Encap) String() string { return strings.Join(e.Names(), "+") }

// Tunnel is the encapsulation context of a decoded segment. It is all zero
// for a segment that was not tunnelled.
//
// When tunnels nest (MPLS over GRE, VXLAN mirrored through ERSPAN), ID and
// the outer addresses come from the innermost layer that has them: that is
// the layer closest to the tenant whose TCP connection is being timed.
type Tunnel struct {
	// OuterSrc and OuterDst are the addresses of the IP header that
	// carried the innermost IP-borne encapsulation (IPv4-mapped for IPv4);
	// zero when only link-layer ones (PPPoE, MPLS, PBB) were crossed.
	OuterSrc, OuterDst [16]byte
	// ID is the innermost tunnel identifier: the VXLAN or Geneve VNI, the
	// GRE key, the ERSPAN session, the GTP-U TEID, the PPPoE session, the
	// bottom MPLS label or the PBB I-SID. IDOf says which; 0 means none.
	ID   uint32
	IDOf Encap
	// Encaps is every encapsulation crossed.
	Encaps Encap
}

// HasOuter reports whether the outer addresses were set.
func (t *Tunnel) HasOuter() bool { return t.OuterSrc != [16]byte{} || t.OuterDst != [16]byte{} }

// String describes the tunnel as replay and the check report it, for
// instance "vxlan vni=42 outer=10.0.0.1>10.0.0.2"; "" when not tunnelled.
func (t Tunnel) String() string {
	if t.Encaps == 0 {
		return ""
	}
	s := t.Encaps.String()
	if t.IDOf != 0 {
		for i := range numEncaps {
			if t.IDOf == 1<<i {
				s += fmt.Sprintf(" %s=%d", idNames[i], t.ID)
			}
		}
	}
	if t.HasOuter() {
		s += fmt.Sprintf(" outer=%s>%s", netip.AddrFrom16(t.OuterSrc).Unmap(), netip.AddrFrom16(t.OuterDst).Unmap())
	}
	return s
}

// Bounds on what Decode walks inside tunnels, so that a crafted frame made
// of nothing but encapsulation headers costs a few comparisons. Real
// traffic nests at most two encapsulations (ERSPAN of VXLAN, MPLS over
// GRE), stacks two to three MPLS labels and one or two GTP-U extension
// headers.
const (
	MaxTunnelDepth   = 4 // encapsulations crossed before giving up with NotTCP
	MaxMPLSLabels    = 8
	MaxGTPExtHeaders = 4
)

// MaxTunnelHeaderLen is the largest header stack Decode reads with one
// encapsulation, the snaplen a capture of tunnelled traffic needs: outer
// Ethernet 14 + two VLAN tags 8 + IPv6 40 + the largest tunnel header (GRE
// with checksum, key and sequence 16 + ERSPAN type III with its
// platform-specific sub-header 20; UDP 8 + Geneve 8 + up to 20 bytes of
// options is as long) + inner Ethernet 14 + two VLAN tags 8 + IPv6 40 + TCP
// with 40 bytes of options 60 = 220. A shorter snaplen cuts the inner TCP
// header of such frames (counted as truncated): VXLAN over IPv4 to an
// untagged IPv4 frame needs 14+20+8+8+14+20+60 = 144 bytes. Longer Geneve
// options, more MPLS labels or nested tunnels need more. It is separate
// from the bare-traffic minimum because most instances see no tunnel.
const MaxTunnelHeaderLen = ethHeaderLen + 2*vlanTagLen + ipv6HeaderLen + greMaxHeader + erspan3HeaderLen + erspan3SubHeaderLen +
	MaxHeaderLen // the inner stack, as bare

// Tunnel header sizes, protocol numbers and ports.
const (
	udpHeaderLen        = 8
	vxlanHeaderLen      = 8
	geneveHeaderLen     = 8
	greMinHeader        = 4
	greMaxHeader        = 16
	erspan2HeaderLen    = 8
	erspan3HeaderLen    = 12
	erspan3SubHeaderLen = 8
	gtpHeaderLen        = 8
	gtpOptHeaderLen     = 4 // sequence, N-PDU, next extension type
	pppoeHeaderLen      = 6
	mplsLabelLen        = 4
	pbbHeaderLen        = 4 + 12 // I-TAG TCI + I-SID, customer DA and SA
	mplsCWLen           = 4      // pseudowire control word (RFC 4385)
	wccpHeaderLen       = 4      // WCCPv2 redirect header

	protoIPIP = 4
	protoIPv6 = 41
	protoUDP  = 17
	protoGRE  = 47

	portVXLAN  = 4789
	portGeneve = 6081
	portGTPU   = 2152

	etherTypeTEB     = 0x6558 // transparent Ethernet bridging: Ethernet inside GRE/Geneve
	etherTypeERSPAN  = 0x88BE // ERSPAN type I (no GRE sequence) and II
	etherTypeERSPAN3 = 0x22EB
	etherTypeWCCP    = 0x883E // Cisco WCCP redirect over GRE
	etherTypePPPoE   = 0x8864
	etherTypeMPLS    = 0x8847
	etherTypeMPLSMC  = 0x8848
	etherTypePBB     = 0x88E7

	greFlagC = 0x8000 // checksum present
	greFlagR = 0x4000 // routing present (RFC 1701, obsolete)
	greFlagK = 0x2000 // key present (RFC 2890)
	greFlagS = 0x1000 // sequence number present (RFC 2890)
	greVer   = 0x0007

	pppIPv4 = 0x0021
	pppIPv6 = 0x0057
)

// mark records that encapsulation e was crossed, with identifier id.
func (t *Tunnel) mark(e Encap, id uint32) {
	t.Encaps |= e
	t.ID, t.IDOf = id, e
}

// setOuter records the addresses of the IP header ip (already checked to
// hold them) as the outer ones.
func (t *Tunnel) setOuter(ip []byte) {
	if ip[0]>>4 == 4 {
		*(*[12]byte)(t.OuterSrc[:12]) = v4MappedPrefix
		*(*[4]byte)(t.OuterSrc[12:]) = [4]byte(ip[12:16])
		*(*[12]byte)(t.OuterDst[:12]) = v4MappedPrefix
		*(*[4]byte)(t.OuterDst[12:]) = [4]byte(ip[16:20])
		return
	}
	t.OuterSrc = [16]byte(ip[8:24])
	t.OuterDst = [16]byte(ip[24:40])
}

// decodeEtherPayload decodes what follows an EtherType field inside a
// tunnel: b starts right after it, wire is the number of bytes from b[0] to
// the end of the enclosing payload. VLAN tags are skipped, then IP or one of
// the link-layer encapsulations is decoded.
func (p *Packet) decodeEtherPayload(etype uint16, b []byte, wire, depth int) Status {
	etype, off, err := skipVLANs(etype, b, 0)
	if err != OK {
		return err
	}
	b, wire = b[off:], wire-off
	switch etype {
	case etherTypeIPv4:
		return p.decodeIPv4(b, wire, depth)
	case etherTypeIPv6:
		return p.decodeIPv6(b, wire, depth)
	}
	return p.decodeLinkTunnel(etype, b, wire, depth)
}

// decodeLinkTunnel decodes the link-layer encapsulation etype names (after
// any VLAN tags): PPPoE, MPLS or 802.1ah.
func (p *Packet) decodeLinkTunnel(etype uint16, b []byte, wire, depth int) Status {
	var decode layerDecoder
	switch etype {
	case etherTypePPPoE:
		decode = (*Packet).decodePPPoE
	case etherTypePBB:
		decode = (*Packet).decodePBB
	case etherTypeMPLS, etherTypeMPLSMC:
		decode = (*Packet).decodeMPLS
	default:
		return NotTCP
	}
	if depth >= MaxTunnelDepth {
		return NotTCP
	}
	return decode(p, b, wire, depth+1)
}

// layerDecoder decodes one encapsulation header at b[0] and what it carries;
// wire and depth are as for decodeIPv4.
type layerDecoder func(p *Packet, b []byte, wire, depth int) Status

// decodeEthernet decodes an Ethernet frame carried inside a tunnel.
func (p *Packet) decodeEthernet(b []byte, wire, depth int) Status {
	if len(b) < ethHeaderLen {
		return Truncated
	}
	return p.decodeEtherPayload(be16(b[12:14]), b[ethHeaderLen:], wire-ethHeaderLen, depth)
}

// decodeIPTunnel decodes the payload of an IP header that is not TCP: ip
// starts at the IP header, hl is the length of the IP header and its
// extension headers, n the payload length according to the IP header.
// Only encapsulations continue; anything else is NotTCP.
func (p *Packet) decodeIPTunnel(proto byte, ip []byte, hl, n, depth int) Status {
	var e Encap
	var decode layerDecoder
	switch proto {
	case protoIPIP:
		e, decode = EncapIPIP, (*Packet).decodeIPv4
	case protoIPv6:
		e, decode = EncapIPIP, (*Packet).decodeIPv6
	case protoGRE:
		e, decode = EncapGRE, (*Packet).decodeGRE
	case protoUDP:
	default:
		return NotTCP
	}
	if depth >= MaxTunnelDepth {
		return NotTCP
	}
	if n < 0 {
		return BadHeader
	}
	// The payload ends where the IP header says, as in every receiver:
	// the Ethernet padding or garbage after it is not the tunnel's.
	b := ip[hl:]
	if n < len(b) {
		b = b[:n]
	}
	if proto == protoUDP {
		// The encapsulation is told by the destination port alone, as the
		// receiving tunnel endpoint's socket does (the source port is a
		// flow hash for VXLAN and Geneve).
		if len(b) < udpHeaderLen {
			return Truncated
		}
		switch be16(b[2:4]) {
		case portVXLAN:
			e, decode = EncapVXLAN, (*Packet).decodeVXLAN
		case portGeneve:
			e, decode = EncapGeneve, (*Packet).decodeGeneve
		case portGTPU:
			e, decode = EncapGTPU, (*Packet).decodeGTPU
		default:
			if depth == 0 && be16(b[0:2]) == PortDNS {
				return p.decodeDNS(b, len(ip)-hl, n)
			}
			return NotTCP
		}
		// The UDP length bounds the datagram too; as in Linux's udp_rcv,
		// one longer than the IP payload or shorter than the header is
		// malformed. 0 is allowed only for IPv6 jumbograms (RFC 2675),
		// then the IP length rules.
		if ulen := int(be16(b[4:6])); ulen != 0 {
			if ulen < udpHeaderLen || ulen > n {
				return BadHeader
			}
			n = ulen
			if n < len(b) {
				b = b[:n]
			}
		}
		b, n = b[udpHeaderLen:], n-udpHeaderLen
	}
	p.Tunnel.Encaps |= e
	p.Tunnel.setOuter(ip)
	return decode(p, b, n, depth+1)
}

// PortDNS is the DNS server port (RFC 1035 4.2): Decode returns DNS for a
// UDP datagram from it.
const PortDNS = 53

// decodeDNS reads the UDP header of a datagram from the DNS port outside
// any tunnel (RFC 768): udp starts at the UDP header and is cut to the IP
// payload length n; captured is the number of bytes captured from udp[0]
// to the end of the frame. The UDP length is checked as for tunnels.
func (p *Packet) decodeDNS(udp []byte, captured, n int) Status {
	ulen := int(be16(udp[4:6]))
	if ulen == 0 {
		ulen = n // IPv6 jumbogram (RFC 2675): the IP length rules
	}
	if ulen < udpHeaderLen || ulen > n {
		return BadHeader
	}
	p.SrcPort = be16(udp[0:2])
	p.DstPort = be16(udp[2:4])
	p.PayloadLen = uint32(ulen - udpHeaderLen)
	p.payloadRest = int32(captured - udpHeaderLen)
	return DNS
}

// decodeVXLAN decodes a VXLAN header and the Ethernet frame it carries.
// As in Linux's vxlan_rcv, a header without the I flag (VNI valid) is not
// VXLAN data; the reserved bits are ignored (GBP and GPE extensions set
// some).
func (p *Packet) decodeVXLAN(b []byte, wire, depth int) Status {
	if len(b) < vxlanHeaderLen {
		return Truncated
	}
	if b[0]&0x08 == 0 {
		return NotTCP
	}
	p.Tunnel.mark(EncapVXLAN, be32(b[4:8])>>8)
	return p.decodeEthernet(b[vxlanHeaderLen:], wire-vxlanHeaderLen, depth)
}

// decodeGeneve decodes a Geneve header, skips its options by their total
// length (none matters to TCP timing, and a tunnel endpoint forwards
// unknown non-critical ones), and decodes the payload by its protocol
// type: Ethernet (0x6558) or an EtherType. Version 0 is the only one.
func (p *Packet) decodeGeneve(b []byte, wire, depth int) Status {
	if len(b) < geneveHeaderLen {
		return Truncated
	}
	if b[0]>>6 != 0 {
		return NotTCP
	}
	hl := geneveHeaderLen + int(b[0]&0x3f)<<2
	if len(b) < hl {
		return Truncated
	}
	proto := be16(b[2:4])
	p.Tunnel.mark(EncapGeneve, be32(b[4:8])>>8)
	if proto == etherTypeTEB {
		return p.decodeEthernet(b[hl:], wire-hl, depth)
	}
	return p.decodeEtherPayload(proto, b[hl:], wire-hl, depth)
}

// decodeGRE decodes a GRE header (RFC 2784 with the RFC 2890 key and
// sequence number) and its payload by protocol type: IP, MPLS, PPPoE,
// Ethernet (0x6558) or ERSPAN. Version 1 (PPTP's enhanced GRE) and the
// obsolete RFC 1701 routing are not decoded.
func (p *Packet) decodeGRE(b []byte, wire, depth int) Status {
	if len(b) < greMinHeader {
		return Truncated
	}
	flags := be16(b[0:2])
	if flags&(greVer|greFlagR) != 0 {
		return NotTCP
	}
	proto := be16(b[2:4])
	off := greMinHeader
	if flags&greFlagC != 0 {
		off += 4 // checksum and reserved
	}
	if flags&greFlagK != 0 {
		if len(b) < off+4 {
			return Truncated
		}
		p.Tunnel.mark(EncapGRE, be32(b[off:off+4]))
		off += 4
	}
	if flags&greFlagS != 0 {
		off += 4
	}
	if len(b) < off {
		return Truncated
	}
	b, wire = b[off:], wire-off
	switch proto {
	case etherTypeTEB:
		return p.decodeEthernet(b, wire, depth)
	case etherTypeERSPAN:
		// Type I has no header of its own; Linux tells it from type II
		// by the absent GRE sequence number (gre_parse_header).
		if flags&greFlagS == 0 {
			p.Tunnel.Encaps |= EncapERSPAN
			return p.decodeEthernet(b, wire, depth)
		}
		return p.decodeERSPAN2(b, wire, depth)
	case etherTypeERSPAN3:
		return p.decodeERSPAN3(b, wire, depth)
	case etherTypeWCCP:
		// Cisco WCCP redirection: WCCPv2 puts a 4-byte redirect header
		// before the IP packet, WCCPv1 none; like Wireshark, tell them
		// apart by the IP version nibble.
		if len(b) >= 1 && b[0]>>4 != 4 {
			if len(b) < wccpHeaderLen {
				return Truncated
			}
			b, wire = b[wccpHeaderLen:], wire-wccpHeaderLen
		}
		return p.decodeInnerIP(b, wire, depth)
	}
	return p.decodeEtherPayload(proto, b, wire, depth)
}

// decodeERSPAN2 decodes an ERSPAN type II header: version 1, the session
// ID in the low 10 bits of the second 16-bit word, then the mirrored
// Ethernet frame.
func (p *Packet) decodeERSPAN2(b []byte, wire, depth int) Status {
	if len(b) < erspan2HeaderLen {
		return Truncated
	}
	if b[0]>>4 != 1 {
		return NotTCP
	}
	p.Tunnel.mark(EncapERSPAN, uint32(be16(b[2:4])&0x3ff))
	return p.decodeEthernet(b[erspan2HeaderLen:], wire-erspan2HeaderLen, depth)
}

// decodeERSPAN3 decodes an ERSPAN type III header: version 2, session ID
// as in type II, a timestamp, and flags whose O bit announces an 8-byte
// platform-specific sub-header. Frame type 0 is Ethernet, 2 is IP.
func (p *Packet) decodeERSPAN3(b []byte, wire, depth int) Status {
	if len(b) < erspan3HeaderLen {
		return Truncated
	}
	if b[0]>>4 != 2 {
		return NotTCP
	}
	flags := be16(b[10:12])
	hl := erspan3HeaderLen
	if flags&1 != 0 {
		hl += erspan3SubHeaderLen
	}
	if len(b) < hl {
		return Truncated
	}
	p.Tunnel.mark(EncapERSPAN, uint32(be16(b[2:4])&0x3ff))
	switch ft := flags >> 10 & 0x1f; ft {
	case 0:
		return p.decodeEthernet(b[hl:], wire-hl, depth)
	case 2:
		return p.decodeInnerIP(b[hl:], wire-hl, depth)
	}
	return NotTCP
}

// decodeGTPU decodes a GTP-U header (version 1, protocol type GTP) of a
// G-PDU, skipping the optional sequence/N-PDU fields and the chain of
// extension headers, and the user's IP packet it carries. Other message
// types (echo, error indication, end marker) carry no user packet.
func (p *Packet) decodeGTPU(b []byte, wire, depth int) Status {
	if len(b) < gtpHeaderLen {
		return Truncated
	}
	if b[0]>>4 != 0x3 || b[1] != 0xff {
		return NotTCP
	}
	// The length counts the bytes after the mandatory header; it cannot be
	// checked against the captured bytes (snaplen), only against the UDP
	// payload on the wire.
	msgLen := int(be16(b[2:4]))
	if msgLen > wire-gtpHeaderLen {
		return BadHeader
	}
	wire = gtpHeaderLen + msgLen
	off := gtpHeaderLen
	if b[0]&0x07 != 0 {
		off += gtpOptHeaderLen
		if len(b) < off {
			return Truncated
		}
		// With the E flag, a chain of extension headers: each has its
		// length in 4-byte units (including the length and next-type
		// bytes), content, and the next extension type. Without E, the
		// next-type byte is there (S or PN set) but means nothing.
		next := byte(0)
		if b[0]&0x04 != 0 {
			next = b[off-1]
		}
		for i := 0; next != 0; i++ {
			if i == MaxGTPExtHeaders {
				return NotTCP
			}
			if len(b) < off+1 {
				return Truncated
			}
			n := int(b[off]) << 2
			if n == 0 {
				return BadHeader
			}
			off += n
			if len(b) < off {
				return Truncated
			}
			next = b[off-1]
		}
	}
	p.Tunnel.mark(EncapGTPU, be32(b[4:8]))
	return p.decodeInnerIP(b[off:], wire-off, depth)
}

// decodePPPoE decodes a PPPoE session header (version 1, type 1, code 0)
// and the PPP protocol field, possibly compressed to one byte (RFC 1661
// protocol field compression), of an IPv4 or IPv6 packet.
func (p *Packet) decodePPPoE(b []byte, wire, depth int) Status {
	if len(b) < pppoeHeaderLen+1 {
		return Truncated
	}
	if b[0] != 0x11 || b[1] != 0 {
		return NotTCP
	}
	n := int(be16(b[4:6])) // PPP protocol field and payload
	if n > wire-pppoeHeaderLen {
		return BadHeader // Linux's pppoe_rcv drops it too
	}
	proto, pl := uint16(b[6]), 1
	if proto&1 == 0 {
		if len(b) < pppoeHeaderLen+2 {
			return Truncated
		}
		proto, pl = be16(b[6:8]), 2
	}
	if n < pl {
		return BadHeader
	}
	p.Tunnel.mark(EncapPPPoE, uint32(be16(b[2:4])))
	b, n = b[pppoeHeaderLen+pl:], n-pl
	if n < len(b) {
		b = b[:n] // Ethernet padding follows short PPPoE payloads
	}
	switch proto {
	case pppIPv4:
		return p.decodeIPv4(b, n, depth)
	case pppIPv6:
		return p.decodeIPv6(b, n, depth)
	}
	return NotTCP
}

// decodeMPLS walks an MPLS label stack to its bottom and decodes the
// payload, which MPLS does not name: like every router that looks past a
// label stack, it is guessed from the first nibble. 4 and 6 are IPv4 and
// IPv6; 0 is the control word of an Ethernet pseudowire (RFC 4385/4448),
// followed by the customer's Ethernet frame. A pseudowire without a control
// word is not decoded: its first nibble is a MAC address's and may be
// anything, 4 and 6 included.
//
// The tunnel ID is the bottom label: in L3VPNs and pseudowires that is the
// service label, which tells tenants apart; the labels above it are
// transport labels, swapped at every hop.
func (p *Packet) decodeMPLS(b []byte, wire, depth int) Status {
	off := 0
	for i := 0; ; i++ {
		if i == MaxMPLSLabels {
			return NotTCP
		}
		if len(b) < off+mplsLabelLen {
			return Truncated
		}
		l := be32(b[off : off+4])
		off += mplsLabelLen
		if l&0x100 != 0 {
			p.Tunnel.mark(EncapMPLS, l>>12)
			break
		}
	}
	b, wire = b[off:], wire-off
	if len(b) < 1 {
		return Truncated
	}
	if b[0]>>4 == 0 {
		if len(b) < mplsCWLen {
			return Truncated
		}
		return p.decodeEthernet(b[mplsCWLen:], wire-mplsCWLen, depth)
	}
	return p.decodeInnerIP(b, wire, depth)
}

// decodeInnerIP decodes an IP packet whose version only its first nibble
// tells (GTP-U, MPLS, ERSPAN type III); anything else is not TCP.
func (p *Packet) decodeInnerIP(b []byte, wire, depth int) Status {
	if len(b) >= 1 && b[0]>>4 != 4 && b[0]>>4 != 6 {
		return NotTCP
	}
	return p.decodeIPAny(b, wire, depth)
}

// decodePBB decodes an 802.1ah I-TAG (priority, drop eligibility, use
// customer address and the 24-bit I-SID), the customer's addresses, and the
// customer frame from its EtherType on.
func (p *Packet) decodePBB(b []byte, wire, depth int) Status {
	if len(b) < pbbHeaderLen+2 {
		return Truncated
	}
	p.Tunnel.mark(EncapPBB, be32(b[0:4])&0xffffff)
	return p.decodeEtherPayload(be16(b[pbbHeaderLen:pbbHeaderLen+2]), b[pbbHeaderLen+2:], wire-pbbHeaderLen-2, depth)
}
