package packet

// Header sizes and protocol numbers the decoder needs. They are spelled out
// here rather than imported so that the hot path depends on nothing but the
// byte slice it is given.
const (
	ethHeaderLen  = 14
	vlanTagLen    = 4
	sllHeaderLen  = 16
	sll2HeaderLen = 20
	nullHeaderLen = 4
	ipv4MinHeader = 20
	ipv6HeaderLen = 40
	tcpMinHeader  = 20
	tcpMaxHeader  = 60 // data offset 15 words: 40 bytes of options

	etherTypeIPv4   = 0x0800
	etherTypeIPv6   = 0x86DD
	etherTypeDot1Q  = 0x8100 // 802.1Q customer tag
	etherTypeDot1AD = 0x88A8 // 802.1ad service tag (QinQ)
	etherTypeQinQ   = 0x9100 // pre-standard QinQ tag still used by some switches

	protoTCP       = 6
	protoHopByHop  = 0
	protoRouting   = 43
	protoFragment  = 44
	protoAH        = 51
	protoDestOpts  = 60
	tcpOptEOL      = 0
	tcpOptNOP      = 1
	tcpOptMSS      = 2
	tcpOptWS       = 3
	tcpOptSACKPerm = 4
	tcpOptSACK     = 5
	tcpOptTS       = 8
)

// MaxHeaderLen is the longest header stack the decoder reads in common
// traffic: Ethernet, two VLAN tags (QinQ), IPv6 without extension headers and
// a TCP header with the most options it can carry. A snaplen below it cuts
// options (timestamps, SACK) off some frames; Linux cooked capture v2 fits.
const MaxHeaderLen = ethHeaderLen + 2*vlanTagLen + ipv6HeaderLen + tcpMaxHeader

// v4MappedPrefix is the first 12 bytes of an IPv4-mapped IPv6 address.
var v4MappedPrefix = [12]byte{10: 0xff, 11: 0xff}

// MaxVLANTags bounds the number of stacked 802.1Q/802.1ad tags Decode skips.
// Real networks use at most two (QinQ); the bound keeps a crafted frame made
// of nothing but tags from costing more than a few comparisons.
const MaxVLANTags = 4

// MaxIPv6ExtHeaders bounds the IPv6 extension headers Decode walks before
// giving up with NotTCP. Real TCP traffic carries zero to two of them.
const MaxIPv6ExtHeaders = 8

// be16 and be32 read big-endian integers. They are written out rather than
// calling encoding/binary so that each caller's single bounds check (done
// before the call) is all the compiler emits.
func be16(b []byte) uint16 {
	_ = b[1]
	return uint16(b[0])<<8 | uint16(b[1])
}

func be32(b []byte) uint32 {
	_ = b[3]
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// Decode parses one captured frame of the given link type into p.
//
// data is the captured bytes (possibly cut short by the snap length);
// wireLen is the frame's length on the wire as reported by the capture
// (pcap's "len"). wireLen is only used when the IP header does not carry the
// length (IPv4 total length 0 from TSO/BIG TCP, IPv6 payload length 0 from
// jumbograms / BIG TCP); a wireLen smaller than len(data) is treated as
// len(data). An IP length larger than wireLen is not rejected: it only makes
// PayloadLen wrong for a malformed frame, whereas a capture source that
// misreports wireLen would otherwise lose every snaplen-truncated segment.
//
// On success Decode returns OK and has overwritten every field of p. On
// failure it returns the failure class and p's contents are unspecified.
// Decode never allocates, never keeps a reference to data and never panics,
// whatever the input.
func (p *Packet) Decode(link LinkType, data []byte, wireLen int) Status {
	if wireLen < len(data) {
		wireLen = len(data)
	}
	if p.Tunnel.Encaps != 0 {
		// Only tunnelled segments set it (always with an Encaps bit), so
		// the untunnelled path pays a test, not a 40-byte store.
		p.Tunnel = Tunnel{}
	}
	// Ethernet and both cooked captures have a fixed-length header (off
	// bytes) with the EtherType at etypeAt; the other links decode here.
	var off, etypeAt int
	switch link {
	case LinkTypeEthernet:
		off, etypeAt = ethHeaderLen, 12
	case LinkTypeLinuxSLL:
		// pkttype(2) hatype(2) halen(2) addr(8) protocol(2). The link-layer
		// address length is irrelevant to us: the header is always 16 bytes.
		off, etypeAt = sllHeaderLen, 14
	case LinkTypeSLL2:
		// protocol(2) reserved(2) ifindex(4) hatype(2) pkttype(1) halen(1) addr(8).
		off, etypeAt = sll2HeaderLen, 0
	case LinkTypeIPv4:
		return p.decodeIPv4(data, wireLen, 0)
	case LinkTypeIPv6:
		return p.decodeIPv6(data, wireLen, 0)
	case LinkTypeRaw:
		return p.decodeIPAny(data, wireLen, 0)
	case LinkTypeNull:
		if len(data) < nullHeaderLen {
			return Truncated
		}
		// The family is in the capturing host's byte order, which a file
		// does not record. Every family we accept fits in one byte, so the
		// other three bytes tell the order apart.
		var family byte
		switch {
		case data[0] == 0 && data[1] == 0 && data[2] == 0:
			family = data[3] // big-endian
		case data[1] == 0 && data[2] == 0 && data[3] == 0:
			family = data[0] // little-endian
		default:
			return NotTCP
		}
		switch family {
		case 2: // AF_INET everywhere
			return p.decodeIPv4(data[nullHeaderLen:], wireLen-nullHeaderLen, 0)
		case 24, 28, 30, 10: // AF_INET6 on NetBSD/OpenBSD, FreeBSD, Darwin, Linux
			return p.decodeIPv6(data[nullHeaderLen:], wireLen-nullHeaderLen, 0)
		}
		return NotTCP
	default:
		return UnsupportedLink
	}
	if len(data) < off {
		return Truncated
	}

	// The EtherType may be a VLAN tag: libpcap re-inserts stripped tags in
	// front of the protocol field for Ethernet and SLL captures.
	etype, off, err := skipVLANs(be16(data[etypeAt:etypeAt+2]), data, off)
	if err != OK {
		return err
	}
	switch etype {
	case etherTypeIPv4:
		return p.decodeIPv4(data[off:], wireLen-off, 0)
	case etherTypeIPv6:
		return p.decodeIPv6(data[off:], wireLen-off, 0)
	}
	return p.decodeLinkTunnel(etype, data[off:], wireLen-off, 0)
}

// skipVLANs returns the EtherType after the VLAN tags, if any, that etype
// announces at b[off], and the offset past them. It is small enough to be
// inlined into Decode, where nearly every frame takes it with no tag.
func skipVLANs(etype uint16, b []byte, off int) (uint16, int, Status) {
	for i := 0; etype == etherTypeDot1Q || etype == etherTypeDot1AD || etype == etherTypeQinQ; i++ {
		if i == MaxVLANTags {
			return 0, 0, NotTCP
		}
		if len(b) < off+vlanTagLen {
			return 0, 0, Truncated
		}
		etype = be16(b[off+2 : off+4])
		off += vlanTagLen
	}
	return etype, off, OK
}

// decodeIPAny dispatches on the IP version nibble, for raw-IP link types.
func (p *Packet) decodeIPAny(b []byte, wire, depth int) Status {
	if len(b) < 1 {
		return Truncated
	}
	switch b[0] >> 4 {
	case 4:
		return p.decodeIPv4(b, wire, depth)
	case 6:
		return p.decodeIPv6(b, wire, depth)
	}
	return BadHeader
}

// decodeIPv4 decodes an IPv4 header at b[0]; wire is the number of bytes
// from b[0] to the end of the frame on the wire (or, inside a tunnel, of
// the enclosing payload); depth is the number of encapsulations crossed.
func (p *Packet) decodeIPv4(b []byte, wire, depth int) Status {
	if len(b) < ipv4MinHeader {
		return Truncated
	}
	vihl := b[0]
	if vihl>>4 != 4 {
		return BadHeader
	}
	hl := int(vihl&0x0f) << 2
	if hl < ipv4MinHeader {
		return BadHeader
	}
	total := int(be16(b[2:4]))
	if total != 0 && total < hl {
		return BadHeader
	}
	// Any fragment is skipped, the first one included: its TCP header is
	// there, but the segment's length is only known after reassembly, and a
	// wrong length would corrupt sequence tracking.
	if be16(b[6:8])&0x3fff != 0 {
		return NotTCP
	}
	if len(b) < hl {
		return Truncated
	}
	if total == 0 {
		// TSO/GSO super-frames captured on the sender (Windows, Linux BIG
		// TCP) carry total length 0; the frame length is the only truth.
		total = wire
	}
	if b[9] != protoTCP {
		return p.decodeIPTunnel(b[9], b, hl, total-hl, depth)
	}
	// IPv4-mapped form, written as two whole-array stores each: building
	// the array byte by byte is measurably slower.
	*(*[12]byte)(p.Src[:12]) = v4MappedPrefix
	*(*[4]byte)(p.Src[12:]) = [4]byte(b[12:16])
	*(*[12]byte)(p.Dst[:12]) = v4MappedPrefix
	*(*[4]byte)(p.Dst[12:]) = [4]byte(b[16:20])
	p.IPv6 = false
	p.IPID = be16(b[4:6])
	// Options are skipped unparsed: none of them matters to TCP timing, and
	// routers forward packets whatever their options contain.
	return p.decodeTCP(b[hl:], total-hl)
}

// decodeIPv6 decodes an IPv6 header and its extension headers at b[0]; wire
// and depth are as for decodeIPv4.
func (p *Packet) decodeIPv6(b []byte, wire, depth int) Status {
	if len(b) < ipv6HeaderLen {
		return Truncated
	}
	if b[0]>>4 != 6 {
		return BadHeader
	}
	plen := int(be16(b[4:6]))
	if plen == 0 {
		// Jumbogram or BIG TCP: the payload length is in a hop-by-hop
		// option or nowhere; the wire length covers both cases.
		plen = wire - ipv6HeaderLen
	}
	next := b[6]
	off := ipv6HeaderLen
	for i := 0; next != protoTCP; i++ {
		if i == MaxIPv6ExtHeaders {
			return NotTCP
		}
		var hlen int
		switch next {
		case protoHopByHop, protoRouting, protoDestOpts:
			if len(b) < off+2 {
				return Truncated
			}
			hlen = (int(b[off+1]) + 1) << 3
		case protoAH:
			if len(b) < off+2 {
				return Truncated
			}
			hlen = (int(b[off+1]) + 2) << 2
			if hlen < 12 {
				// Next header, length, reserved, SPI and sequence
				// number take 12 bytes before any ICV.
				return BadHeader
			}
		default:
			// Fragment (44, any fragment, for the same reason as IPv4),
			// ESP (50: encrypted), no next header (59), ICMPv6, ... are
			// not TCP; UDP, GRE and IP may be tunnels.
			return p.decodeIPTunnel(next, b, off, plen-(off-ipv6HeaderLen), depth)
		}
		next = b[off]
		off += hlen
		if off-ipv6HeaderLen > plen {
			return BadHeader
		}
		if len(b) < off {
			return Truncated
		}
	}
	p.Src = [16]byte(b[8:24])
	p.Dst = [16]byte(b[24:40])
	p.IPv6 = true
	p.IPID = 0
	return p.decodeTCP(b[off:], plen-(off-ipv6HeaderLen))
}

// decodeTCP decodes the TCP header at b[0]; segLen is the TCP segment length
// (header plus payload) according to the IP layer.
func (p *Packet) decodeTCP(b []byte, segLen int) Status {
	if len(b) < tcpMinHeader {
		return Truncated
	}
	hl := int(b[12]>>4) << 2
	if hl < tcpMinHeader {
		return BadHeader
	}
	if len(b) < hl {
		return Truncated
	}
	if segLen < hl {
		return BadHeader
	}
	p.SrcPort = be16(b[0:2])
	p.DstPort = be16(b[2:4])
	p.Seq = be32(b[4:8])
	p.Ack = be32(b[8:12])
	p.Flags = b[13]
	p.Window = be16(b[14:16])
	p.PayloadLen = uint32(segLen - hl)
	p.payloadRest = int32(len(b) - hl)
	p.HasTimestamps = false
	p.TSval, p.TSecr = 0, 0
	p.MSS = 0
	p.NumSACK = 0
	p.SACK = [MaxSACKBlocks]SACKBlock{}
	if hl == tcpMinHeader {
		return OK
	}
	opts := b[tcpMinHeader:hl]
	// Fast path for the layout Linux, BSD and Windows put first on nearly
	// every segment of a timestamped connection: NOP, NOP, TS(10),
	// possibly followed by NOP, NOP, SACK.
	if len(opts) >= 12 && be32(opts[0:4]) == tcpOptNOP<<24|tcpOptNOP<<16|tcpOptTS<<8|10 {
		p.HasTimestamps = true
		p.TSval = be32(opts[4:8])
		p.TSecr = be32(opts[8:12])
		if len(opts) == 12 {
			return OK
		}
		opts = opts[12:]
	}
	return p.decodeOptions(opts)
}

// decodeOptions walks TCP options. A later timestamps or SACK option
// replaces an earlier one, as in the Linux receiver. Options the engine does
// not use are still length-checked so that garbage is reported as such.
func (p *Packet) decodeOptions(o []byte) Status {
	for len(o) > 0 {
		kind := o[0]
		if kind == tcpOptEOL {
			return OK // the rest is padding
		}
		if kind == tcpOptNOP {
			o = o[1:]
			continue
		}
		if len(o) < 2 {
			return BadHeader
		}
		n := int(o[1])
		if n < 2 || n > len(o) {
			return BadHeader
		}
		switch kind {
		case tcpOptMSS:
			if n != 4 {
				return BadHeader
			}
			p.MSS = be16(o[2:4])
		case tcpOptWS:
			if n != 3 {
				return BadHeader
			}
		case tcpOptSACKPerm:
			if n != 2 {
				return BadHeader
			}
		case tcpOptTS:
			if n != 10 {
				return BadHeader
			}
			p.HasTimestamps = true
			p.TSval = be32(o[2:6])
			p.TSecr = be32(o[6:10])
		case tcpOptSACK:
			if n < 10 || (n-2)&7 != 0 {
				return BadHeader
			}
			// 40 option bytes hold at most 4 blocks, so nothing is dropped
			// in practice; the bound is there for the compiler and reader.
			if p.NumSACK != 0 {
				p.SACK = [MaxSACKBlocks]SACKBlock{} // a second SACK option
			}
			blocks := o[2:n]
			k := 0
			for ; k < MaxSACKBlocks && len(blocks) >= 8; k++ {
				p.SACK[k] = SACKBlock{Left: be32(blocks[0:4]), Right: be32(blocks[4:8])}
				blocks = blocks[8:]
			}
			p.NumSACK = uint8(k)
		}
		o = o[n:]
	}
	return OK
}
