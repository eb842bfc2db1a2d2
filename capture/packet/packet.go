// Package packet decodes captured frames into the few TCP/IP fields the RTT
// engine needs, without copying the frame and without allocating.
//
// The decoder is deliberately narrow: it understands the link layers a live
// capture or a capture file produces on Linux (Ethernet with 802.1Q/802.1ad
// tags, Linux cooked capture v1/v2, raw IP, BSD loopback), IPv4 with options,
// IPv6 with extension headers, and TCP with options, plus the encapsulations
// of tunnel.go (VXLAN, Geneve, GRE and ERSPAN, GTP-U, IP-in-IP, PPPoE, MPLS,
// 802.1ah), whose context it records in Packet.Tunnel. A UDP datagram from
// the DNS port outside any tunnel is reported as DNS, its payload (the DNS
// answer) located for Packet.Payload, so that the engine can read it.
// Anything else is reported as a typed status so the caller can count it and
// move on; nothing in a frame is trusted before its length has been checked.
package packet

// LinkType identifies the framing of captured data. Values are the
// LINKTYPE_ numbers used by pcap/pcapng files.
type LinkType uint16

// Link types the decoder understands.
const (
	LinkTypeNull     LinkType = 0   // BSD loopback: 4-byte host-order address family
	LinkTypeEthernet LinkType = 1   // Ethernet II, optionally 802.1Q / 802.1ad tagged
	LinkTypeRaw      LinkType = 101 // raw IPv4 or IPv6, version from the first nibble
	LinkTypeIPv4     LinkType = 228 // raw IPv4
	LinkTypeIPv6     LinkType = 229 // raw IPv6
	LinkTypeLinuxSLL LinkType = 113 // Linux cooked capture v1 (interface "any")
	LinkTypeSLL2     LinkType = 276 // Linux cooked capture v2
)

// TCP flag bits as they appear in the TCP header's flags byte.
const (
	FlagFIN uint8 = 0x01
	FlagSYN uint8 = 0x02
	FlagRST uint8 = 0x04
	FlagPSH uint8 = 0x08
	FlagACK uint8 = 0x10
	FlagURG uint8 = 0x20
	FlagECE uint8 = 0x40
	FlagCWR uint8 = 0x80
)

// MaxSACKBlocks is the most SACK blocks a TCP header can carry (40 option
// bytes: 2 + 4*8 = 34, plus room for NOPs).
const MaxSACKBlocks = 4

// SACKBlock is one selective-acknowledgement range [Left, Right).
type SACKBlock struct {
	Left, Right uint32
}

// Packet holds the decoded fields of one TCP segment. It is meant to be
// reused: Decode overwrites every field, so one Packet serves a whole capture
// without allocation.
type Packet struct {
	// Src and Dst are IPv6 addresses or IPv4-mapped IPv6 addresses
	// (::ffff:a.b.c.d), so that one fixed-size key serves both families.
	Src, Dst [16]byte
	IPv6     bool
	// IPID is the IPv4 identification field (0 for IPv6, which has none):
	// a sender gives every transmission a new one, so two frames with the
	// same segment and the same IPID are copies of one transmission.
	IPID uint16

	SrcPort, DstPort uint16
	Seq, Ack         uint32
	Flags            uint8 // FlagXXX bits
	Window           uint16

	// PayloadLen is the TCP payload length on the wire, computed from the IP
	// length fields, not from the captured bytes (snaplen truncates payload).
	// For TSO/GSO super-frames whose IPv4 total length is 0 (BIG TCP) it is
	// derived from the wire length instead.
	PayloadLen uint32
	// payloadRest is the number of captured bytes from the payload's first
	// byte to the end of the frame Decode was given (Payload).
	payloadRest int32

	// MSS is the maximum segment size option's value (SYN segments carry
	// it), 0 when absent.
	MSS uint16

	// HasTimestamps is true when the TCP timestamps option was present.
	HasTimestamps bool
	TSval, TSecr  uint32

	// SACK holds the first NumSACK blocks of a SACK option, if present.
	NumSACK uint8
	SACK    [MaxSACKBlocks]SACKBlock

	// Tunnel is the encapsulation the segment arrived in; all zero when
	// it was not tunnelled. Src, Dst and the ports above are always the
	// inner (tenant's) ones.
	Tunnel Tunnel

	// IfIndex identifies the interface the frame was captured on, 0 if
	// unknown (source.Source.Interface). Decode does not set it: the
	// capture engine does, for every frame.
	IfIndex uint32
}

// SYN, ACK, FIN, RST report the corresponding flag.
func (p *Packet) SYN() bool { return p.Flags&FlagSYN != 0 }
func (p *Packet) ACK() bool { return p.Flags&FlagACK != 0 }
func (p *Packet) FIN() bool { return p.Flags&FlagFIN != 0 }
func (p *Packet) RST() bool { return p.Flags&FlagRST != 0 }

// SeqLen is the sequence space the segment occupies: payload plus one for
// SYN and one for FIN.
func (p *Packet) SeqLen() uint32 {
	n := p.PayloadLen
	if p.Flags&FlagSYN != 0 {
		n++
	}
	if p.Flags&FlagFIN != 0 {
		n++
	}
	return n
}

// Payload returns the payload of the segment (Decode returned OK) or the
// datagram (DNS) that Decode read from data, which must be the frame Decode
// was given: at most PayloadLen bytes, fewer when the capture cut them. It
// is nil for a tunnelled segment, whose payload the engine never reads.
func (p *Packet) Payload(data []byte) []byte {
	rest := int(p.payloadRest)
	if p.Tunnel.Encaps != 0 || rest < 0 || rest > len(data) {
		return nil
	}
	b := data[len(data)-rest:]
	if uint64(len(b)) > uint64(p.PayloadLen) {
		b = b[:p.PayloadLen]
	}
	return b
}
