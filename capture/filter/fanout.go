package filter

import (
	"fmt"

	"github.com/gometro/go-metro/capture/packet"
	"golang.org/x/net/bpf"
)

// FanoutHash is the program with which the kernel spreads the frames of an
// interface over the capture workers of one instance (PACKET_FANOUT_CBPF:
// the kernel runs it on every frame and hands the frame to member
// result % members). It returns a hash of the innermost IP addresses and
// TCP ports that packet.Decode reaches, through every encapsulation Decode
// crosses, and it is symmetric in the two ends: both directions of a
// connection, tunnelled or not, reach the same worker, so no connection is
// ever split between two flow tables.
//
// Why not the kernel's own PACKET_FANOUT_HASH: its flow hash is symmetric
// for bare TCP, but it stops at the outer UDP header of VXLAN, Geneve and
// GTP-U, whose source port each tunnel endpoint derives from the inner
// flow by a hash that is not symmetric (Linux: udp_flow_src_port), so the
// two directions of a tunnelled connection would go to different workers.
//
// What the program follows is exactly what Decode follows: VLAN tags (up
// to packet.MaxVLANTags per Ethernet header), IPv4 with options, IPv6 with
// up to packet.MaxIPv6ExtHeaders extension headers, and the encapsulations
// of packet.Encap to packet.MaxTunnelDepth levels, with the same limits (8
// MPLS labels, 4 GTP-U extension headers) and the same per-direction
// variables read rather than assumed (GRE checksum and sequence fields,
// Geneve option lengths, MPLS stack depths, GTP-U extension chains).
// Where Decode would give up (fragments, deeper nesting, anything not TCP)
// the program hashes the addresses of the innermost IP header it reached,
// or returns 0 without one: such frames are not timed, so whichever worker
// gets them does not matter, and that choice too depends only on what is
// the same in both directions.
//
// A frame is read from skb->data, which the kernel leaves at the network
// header of a frame received and at the link header of one sent (the fanout
// runs before any packet socket adjusts it): sent frames of Ethernet and
// loopback devices are read from byte 14, everything else from byte 0, and
// the EtherType comes from skb->protocol (a VLAN tag the kernel left in
// the data, as the inner tag of QinQ, is then the first thing there in
// both directions). Loads past the linear part of the buffer (headers split
// into pages by a driver) are copied by the kernel, so they cannot fail
// for one direction only. Devices whose sent frames carry another link
// header than Ethernet's are not supported: their two directions would be
// read at different offsets.
func FanoutHash() []bpf.RawInstruction {
	raw, err := fanoutProgram(kernelPrologue)
	if err != nil {
		panic(err) // a fixed program: any error is a bug, caught by its tests
	}
	return raw
}

// Kernel values the prologue reads (linux/if_packet.h, linux/if_arp.h).
const (
	packetOutgoing = 4   // PACKET_OUTGOING
	arphrdEther    = 1   // ARPHRD_ETHER
	arphrdLoopback = 772 // ARPHRD_LOOPBACK
)

// kernelPrologue leaves X at the offset of the frame's first header after
// the link header and A holding its EtherType, from the socket buffer's
// metadata (see FanoutHash), then goes to start.
func kernelPrologue(a *asm, start int) {
	in, eth := a.newLabel(), a.newLabel()
	a.emit(bpf.LoadExtension{Num: bpf.ExtType})
	a.jne(packetOutgoing, in)
	a.emit(bpf.LoadExtension{Num: bpf.ExtLinkLayerType})
	a.jeq(arphrdEther, eth)
	a.jeq(arphrdLoopback, eth)
	a.mark(in)
	a.emit(bpf.LoadConstant{Dst: bpf.RegX, Val: 0})
	a.emit(bpf.LoadExtension{Num: bpf.ExtProto})
	a.ja(start)
	a.mark(eth)
	a.emit(bpf.LoadConstant{Dst: bpf.RegX, Val: ethHeaderLen})
	a.emit(bpf.LoadExtension{Num: bpf.ExtProto})
	a.ja(start)
}

// Scratch memory of the fanout program. X holds the offset of the header
// being read throughout; A is free.
const (
	mAddr  = 0 // the address hash of the innermost IP header so far
	mPorts = 1 // the TCP ports' hash
	mTmp   = 2
	mTmp2  = 3
	mX     = 4 // X saved while X serves as an operand
)

// Header sizes and values the program needs beyond filter.go's and
// tunnel.go's (packet's own are unexported).
const (
	ethHeaderLen   = 14
	vlanTagLen     = 4
	etherTEB       = 0x6558 // Ethernet inside GRE or Geneve
	etherERSPAN    = 0x88be // ERSPAN type I (no GRE sequence) and II
	etherERSPAN3   = 0x22eb
	etherWCCP      = 0x883e
	greFlagC       = 0x8000
	greFlagK       = 0x2000
	greFlagS       = 0x1000
	greVerOrR      = 0x4007 // version bits and the obsolete routing flag
	pppIPv4        = 0x0021
	pppIPv6        = 0x0057
	ipv6ExtHopOpts = 0
	ipv6ExtRouting = 43
	ipv6ExtDstOpts = 60
	ipv6ExtAH      = 51
)

// fanoutBlocks are the labels of one nesting depth's code: each header
// Decode may meet there.
type fanoutBlocks struct {
	vxlan, geneve, gre, erspan2, erspan3, gtpu, mpls, pppoe, pbb int // entered with X at their header (UDP's for the UDP ones)
	ethernet                                                     int // X at an Ethernet header inside a tunnel
	etherPayload                                                 int // A: an EtherType, X right after it
	innerIP                                                      int // an IP header told by its version nibble
	ipv4, ipv6, udp                                              int
}

// fanout generates the program; a is its assembler.
type fanout struct {
	a                 *asm
	d                 [packet.MaxTunnelDepth + 1]fanoutBlocks
	tcp, addrOnly, no int
}

// fanoutProgram assembles the program with the given prologue, which must
// leave X and A as kernelPrologue does and go to its start label (tests
// use one that reads a whole Ethernet frame).
func fanoutProgram(prologue func(a *asm, start int)) ([]bpf.RawInstruction, error) {
	g := &fanout{a: &asm{}}
	a := g.a
	for d := range g.d {
		b := &g.d[d]
		for _, l := range []*int{&b.vxlan, &b.geneve, &b.gre, &b.erspan2, &b.erspan3, &b.gtpu, &b.mpls, &b.pppoe, &b.pbb,
			&b.ethernet, &b.etherPayload, &b.innerIP, &b.ipv4, &b.ipv6, &b.udp} {
			*l = a.newLabel()
		}
	}
	g.tcp, g.addrOnly, g.no = a.newLabel(), a.newLabel(), a.newLabel()

	// No IP header reached yet: 0, unless one is.
	a.emit(bpf.LoadConstant{Dst: bpf.RegA, Val: 0})
	a.emit(bpf.StoreScratch{Src: bpf.RegA, N: mAddr})
	prologue(a, g.d[0].etherPayload)
	// Every jump goes forward (classic BPF has no other kind), so each
	// depth's code comes after the code that enters it, and within a depth
	// a header's code after the code of the headers that lead to it.
	for d := range g.d {
		g.depth(d)
	}
	g.terminals()
	ins, err := a.resolve()
	if err != nil {
		return nil, err
	}
	raw, err := bpf.Assemble(ins)
	if err != nil {
		return nil, fmt.Errorf("filter: assembling the fanout program: %w", err)
	}
	if len(raw) > MaxInstructions {
		return nil, fmt.Errorf("%w: the fanout program needs %d instructions", ErrTooLarge, len(raw))
	}
	return raw, nil
}

// Small emitters. ld loads size bytes at X+off into A.
func (g *fanout) ld(off uint32, size int) { g.a.emit(bpf.LoadIndirect{Off: off, Size: size}) }

// advance adds n to X (A is lost).
func (g *fanout) advance(n uint32) {
	g.a.emit(bpf.TXA{})
	g.a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: n})
	g.a.emit(bpf.TAX{})
}

// advanceA adds A to X.
func (g *fanout) advanceA() {
	g.a.emit(bpf.ALUOpX{Op: bpf.ALUOpAdd})
	g.a.emit(bpf.TAX{})
}

// jne jumps to l when A != v, however far l is.
func (g *fanout) jne(v uint32, l int) {
	g.a.emit(bpf.JumpIf{Cond: bpf.JumpEqual, Val: v, SkipTrue: 1, SkipFalse: 0})
	g.a.ja(l)
}

// jset jumps to l when A has any of bits set.
func (g *fanout) jset(bits uint32, l int) {
	g.a.emit(bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: bits, SkipTrue: 0, SkipFalse: 1})
	g.a.ja(l)
}

func (g *fanout) st(n int)  { g.a.emit(bpf.StoreScratch{Src: bpf.RegA, N: n}) }
func (g *fanout) ldm(n int) { g.a.emit(bpf.LoadScratch{Dst: bpf.RegA, N: n}) }

// tunnel returns the label of a header at depth d+1, or, past the deepest
// level Decode crosses, where it gives up: the current IP header's
// addresses for an IP-borne encapsulation (ip), nothing for another.
func (g *fanout) tunnel(d int, ip bool, label func(*fanoutBlocks) int) int {
	if d+1 < len(g.d) {
		return label(&g.d[d+1])
	}
	if ip {
		return g.addrOnly
	}
	return g.no
}

// depth emits the code of every header met at nesting depth d. Depth 0
// is entered at etherPayload by the prologue; deeper ones from the IP or
// EtherType dispatch of the depth before.
func (g *fanout) depth(d int) {
	a, b := g.a, &g.d[d]
	if d > 0 {
		g.udpTunnels(b)
		g.gre(b)
		g.gtpu(b)
		g.mpls(b)
		g.pppoe(b)
		// 802.1ah: the I-TAG (4 bytes), the customer's addresses, and
		// its EtherType.
		a.mark(b.pbb)
		g.ld(16, 2)
		g.st(mTmp)
		g.advance(18)
		g.ldm(mTmp)
		a.ja(b.etherPayload)
		// An Ethernet header inside a tunnel: its EtherType.
		a.mark(b.ethernet)
		g.ld(12, 2)
		g.st(mTmp)
		g.advance(ethHeaderLen)
		g.ldm(mTmp)
	}
	g.etherPayload(d)
	if d > 0 {
		// An IP header told by its version (GTP-U, MPLS, ERSPAN III, WCCP).
		a.mark(b.innerIP)
		g.ld(0, 1)
		a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 4})
		a.jeq(4, b.ipv4)
		a.jeq(6, b.ipv6)
		a.ja(g.no)
	}
	g.ipv4(d)
	g.ipv6(d)
	// UDP: the tunnel is told by the destination port alone, as Decode
	// (and the receiving endpoint's socket) tell it.
	a.mark(b.udp)
	if d+1 < len(g.d) {
		n := &g.d[d+1]
		g.ld(2, 2)
		a.jeq(portVXLAN, n.vxlan)
		a.jeq(portGeneve, n.geneve)
		a.jeq(portGTPU, n.gtpu)
	}
	a.ja(g.addrOnly)
}

// etherPayload emits the dispatch on the EtherType in A, with X right
// after it: VLAN tags, then IP or a link-layer encapsulation.
func (g *fanout) etherPayload(d int) {
	a, b := g.a, &g.d[d]
	a.mark(b.etherPayload)
	for range packet.MaxVLANTags {
		tag, next := a.newLabel(), a.newLabel()
		a.jeq(ether8021Q, tag)
		a.jeq(ether8021AD, tag)
		a.jeq(etherQinQ, tag)
		a.ja(next)
		a.mark(tag)
		g.ld(2, 2)
		g.st(mTmp)
		g.advance(vlanTagLen)
		g.ldm(mTmp)
		a.mark(next)
	}
	a.jeq(etherIPv4, b.ipv4)
	a.jeq(etherIPv6, b.ipv6)
	a.jeq(etherPPPoE, g.tunnel(d, false, func(n *fanoutBlocks) int { return n.pppoe }))
	a.jeq(etherPBB, g.tunnel(d, false, func(n *fanoutBlocks) int { return n.pbb }))
	mpls := g.tunnel(d, false, func(n *fanoutBlocks) int { return n.mpls })
	a.jeq(etherMPLS, mpls)
	a.jeq(etherMPLSMC, mpls)
	a.ja(g.no) // more VLAN tags than Decode skips, or not IP
}

// ipv4 emits an IPv4 header: the addresses, then the protocol past the
// options.
func (g *fanout) ipv4(d int) {
	a, b := g.a, &g.d[d]
	a.mark(b.ipv4)
	// Fragments, the first one included, are not decoded.
	g.ld(6, 2)
	g.jset(0x3fff, g.no)
	g.ld(12, 4)
	g.st(mTmp)
	g.ld(16, 4)
	g.xorInto(mTmp) // A = src ^ dst
	g.st(mAddr)
	g.ld(9, 1)
	g.st(mTmp)
	a.xPlusHeaderLen(0, false)
	a.emit(bpf.TAX{})
	g.ldm(mTmp)
	g.ipProto(d)
}

// xorInto sets A to A ^ M[n], keeping X.
func (g *fanout) xorInto(n int) {
	a := g.a
	a.emit(bpf.StoreScratch{Src: bpf.RegX, N: mX})
	a.emit(bpf.LoadScratch{Dst: bpf.RegX, N: n})
	a.emit(bpf.ALUOpX{Op: bpf.ALUOpXor})
	a.emit(bpf.LoadScratch{Dst: bpf.RegX, N: mX})
}

// ipProto dispatches on the IP protocol in A, with X at the payload.
func (g *fanout) ipProto(d int) {
	a, b := g.a, &g.d[d]
	a.jeq(ipProtoTCP, g.tcp)
	a.jeq(ipProtoUDP, b.udp)
	a.jeq(ipProtoGRE, g.tunnel(d, true, func(n *fanoutBlocks) int { return n.gre }))
	a.jeq(ipProtoIPIP, g.tunnel(d, true, func(n *fanoutBlocks) int { return n.ipv4 }))
	a.jeq(ipProtoIPv6, g.tunnel(d, true, func(n *fanoutBlocks) int { return n.ipv6 }))
	a.ja(g.addrOnly)
}

// ipv6 emits an IPv6 header: the addresses folded into one word, then the
// extension headers Decode walks, then the protocol.
func (g *fanout) ipv6(d int) {
	a, b := g.a, &g.d[d]
	a.mark(b.ipv6)
	g.ld(8, 4)
	g.st(mAddr)
	for off := uint32(12); off < 40; off += 4 {
		g.ld(off, 4)
		g.xorInto(mAddr)
		g.st(mAddr)
	}
	g.ld(6, 1)
	g.st(mTmp)
	g.advance(40)
	g.ldm(mTmp)
	proto := a.newLabel()
	for range packet.MaxIPv6ExtHeaders {
		std, ah, next := a.newLabel(), a.newLabel(), a.newLabel()
		a.jeq(ipv6ExtHopOpts, std)
		a.jeq(ipv6ExtRouting, std)
		a.jeq(ipv6ExtDstOpts, std)
		a.jeq(ipv6ExtAH, ah)
		a.ja(proto) // TCP, fragments, ESP, UDP, GRE, IP: no more extension headers
		// (length + 1) * 8 bytes
		a.mark(std)
		g.ld(0, 1)
		g.st(mTmp)
		g.ld(1, 1)
		a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: 1})
		a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 3})
		g.advanceA()
		g.ldm(mTmp)
		a.ja(next)
		// Authentication header: (length + 2) * 4 bytes
		a.mark(ah)
		g.ld(0, 1)
		g.st(mTmp)
		g.ld(1, 1)
		a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: 2})
		a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 2})
		g.advanceA()
		g.ldm(mTmp)
		a.mark(next)
	}
	g.jne(ipProtoTCP, g.no) // Decode walks no more extension headers
	a.mark(proto)
	g.ipProto(d)
}

// udpTunnels emits VXLAN and Geneve, entered with X at the UDP header.
func (g *fanout) udpTunnels(b *fanoutBlocks) {
	a := g.a
	// VXLAN: the I flag, then Ethernet.
	a.mark(b.vxlan)
	g.ld(8, 1)
	a.emit(bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x08, SkipTrue: 1, SkipFalse: 0})
	a.ja(g.no)
	g.advance(8 + 8)
	a.ja(b.ethernet)
	// Geneve: version 0, options by their length, then Ethernet or an
	// EtherType.
	a.mark(b.geneve)
	g.ld(8+2, 2)
	g.st(mTmp)
	g.ld(8, 1)
	g.jset(0xc0, g.no)
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0x3f})
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 2})
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: 8 + 8})
	g.advanceA()
	g.ldm(mTmp)
	a.jeq(etherTEB, b.ethernet)
	a.ja(b.etherPayload)
}

// gre emits GRE with its optional fields, and ERSPAN and WCCP behind it.
func (g *fanout) gre(b *fanoutBlocks) {
	a := g.a
	a.mark(b.gre)
	g.ld(2, 2)
	g.st(mTmp2) // the protocol
	g.ld(0, 2)
	g.jset(greVerOrR, g.no)
	g.st(mTmp) // the flags
	g.advance(4)
	for _, f := range []uint32{greFlagC, greFlagK, greFlagS} {
		skip := a.newLabel()
		g.ldm(mTmp)
		a.emit(bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: f, SkipTrue: 1, SkipFalse: 0})
		a.ja(skip)
		g.advance(4)
		a.mark(skip)
	}
	erspan, wccp := a.newLabel(), a.newLabel()
	g.ldm(mTmp2)
	a.jeq(etherTEB, b.ethernet)
	a.jeq(etherERSPAN, erspan)
	a.jeq(etherERSPAN3, b.erspan3)
	a.jeq(etherWCCP, wccp)
	a.ja(b.etherPayload)
	// ERSPAN type I has no header of its own and no GRE sequence number.
	a.mark(erspan)
	g.ldm(mTmp)
	g.jset(greFlagS, b.erspan2)
	a.ja(b.ethernet)
	// WCCPv2 puts 4 bytes before the IP header, WCCPv1 none.
	a.mark(wccp)
	g.ld(0, 1)
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 4})
	a.jeq(4, b.innerIP)
	g.advance(4)
	a.ja(b.innerIP)
	// ERSPAN type II: version 1, 8 bytes, Ethernet.
	a.mark(b.erspan2)
	g.ld(0, 1)
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 4})
	g.jne(1, g.no)
	g.advance(8)
	a.ja(b.ethernet)
	// ERSPAN type III: version 2, 12 bytes and an optional 8-byte
	// sub-header; Ethernet or IP by the frame type.
	a.mark(b.erspan3)
	g.ld(0, 1)
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 4})
	g.jne(2, g.no)
	g.ld(10, 2)
	g.st(mTmp)
	g.advance(12)
	noSub := a.newLabel()
	g.ldm(mTmp)
	a.emit(bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 1, SkipTrue: 1, SkipFalse: 0})
	a.ja(noSub)
	g.advance(8)
	a.mark(noSub)
	g.ldm(mTmp)
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 10})
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0x1f})
	a.jeq(0, b.ethernet)
	a.jeq(2, b.innerIP)
	a.ja(g.no)
}

// gtpu emits a GTP-U G-PDU, entered with X at the UDP header: the
// optional fields and the chain of extension headers, then IP.
func (g *fanout) gtpu(b *fanoutBlocks) {
	a := g.a
	a.mark(b.gtpu)
	g.advance(8)
	g.ld(0, 1)
	g.st(mTmp)
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 4})
	g.jne(3, g.no)
	g.ld(1, 1)
	g.jne(0xff, g.no)
	g.advance(8)
	g.ldm(mTmp)
	a.emit(bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x07, SkipTrue: 1, SkipFalse: 0})
	a.ja(b.innerIP)
	withE := a.newLabel()
	g.ldm(mTmp)
	g.jset(0x04, withE)
	g.advance(4)
	a.ja(b.innerIP) // S or PN only: the next-type byte means nothing
	a.mark(withE)
	// With E, the last of the 4 optional bytes is the first extension
	// header's type; each extension header has its length in 4-byte units
	// first and the next one's type in its last byte, as Decode walks
	// them. Each next type is read before X moves past it.
	g.ld(3, 1)
	g.st(mTmp)
	g.advance(4)
	g.ldm(mTmp)
	for range packet.MaxGTPExtHeaders {
		a.jeq(0, b.innerIP)
		g.ld(0, 1)
		a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 2})
		a.jeq(0, g.no)
		a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpSub, Val: 1})
		g.advanceA()
		g.ld(0, 1)
		g.st(mTmp)
		g.advance(1)
		g.ldm(mTmp)
	}
	a.jeq(0, b.innerIP)
	a.ja(g.no)
}

// mpls emits an MPLS label stack, to its bottom, and what follows:
// Ethernet behind a pseudowire control word, or IP.
func (g *fanout) mpls(b *fanoutBlocks) {
	a := g.a
	a.mark(b.mpls)
	bottom := a.newLabel()
	for range packet.MaxMPLSLabels {
		g.ld(0, 4)
		g.st(mTmp)
		g.advance(4)
		g.ldm(mTmp)
		g.jset(0x100, bottom)
	}
	a.ja(g.no)
	a.mark(bottom)
	g.ld(0, 1)
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 4})
	g.jne(0, b.innerIP)
	g.advance(4)
	a.ja(b.ethernet)
}

// pppoe emits a PPPoE session header and the PPP protocol, in its long or
// compressed form.
func (g *fanout) pppoe(b *fanoutBlocks) {
	a := g.a
	a.mark(b.pppoe)
	short := a.newLabel()
	g.ld(0, 2)
	g.jne(0x1100, g.no)
	g.ld(6, 1)
	g.jset(1, short)
	g.ld(6, 2)
	g.st(mTmp)
	g.advance(8)
	g.ldm(mTmp)
	a.jeq(pppIPv4, b.ipv4)
	a.jeq(pppIPv6, b.ipv6)
	a.ja(g.no)
	a.mark(short)
	g.st(mTmp)
	g.advance(7)
	g.ldm(mTmp)
	a.jeq(pppIPv4, b.ipv4)
	a.jeq(pppIPv6, b.ipv6)
	a.ja(g.no)
}

// terminals emits the endings: a TCP header's ports, the mix, and 0.
func (g *fanout) terminals() {
	a := g.a
	a.mark(g.tcp)
	g.ld(0, 2)
	g.st(mTmp)
	g.ld(2, 2)
	g.xorInto(mTmp)
	mix := a.newLabel()
	a.ja(mix)
	a.mark(g.addrOnly)
	a.emit(bpf.LoadConstant{Dst: bpf.RegA, Val: 0})
	a.mark(mix)
	// A = ports, M[mAddr] = addresses: h = addr*k1 ^ ports, then
	// murmur3's finaliser, so that the low bits the kernel's modulo keeps
	// depend on every input bit.
	g.st(mPorts)
	g.ldm(mAddr)
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpMul, Val: 0x9e3779b1})
	g.xorInto(mPorts)
	for _, k := range []struct{ shift, mul uint32 }{{16, 0x85ebca6b}, {13, 0xc2b2ae35}, {16, 0}} {
		g.st(mTmp)
		a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: k.shift})
		g.xorInto(mTmp)
		if k.mul != 0 {
			a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpMul, Val: k.mul})
		}
	}
	a.emit(bpf.RetA{})
	a.mark(g.no)
	a.emit(bpf.RetConstant{Val: 0})
}
