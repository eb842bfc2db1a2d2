package filter

import (
	"github.com/gometro/go-metro/capture/packet"
	"golang.org/x/net/bpf"
)

// DNSSnaplen is what a program returns for a DNS answer: the whole frame.
// The kernel keeps no more than the frame holds; 262144 is libpcap's
// largest snapshot length (MAXIMUM_SNAPLEN), so that libpcap, which cuts
// every frame to its snapshot length, can be given this one.
const DNSSnaplen = 262144

const ipProtoTCP = 6

// Pass is what a program lets through besides the headers of the monitored
// TCP segments.
type Pass struct {
	// Tunnels: the outer packets of these encapsulations, up to snaplen
	// (WithTunnels).
	Tunnels packet.Encap
	// DNS: DNS answers, whole (WithDNS).
	DNS bool
}

// WithDNS returns prog preceded by a check that keeps DNS answers whole
// (returning DNSSnaplen): UDP or TCP from source port 53 (RFC 1035 4.2)
// over IPv4 (not a fragment: the decoder skips them) or over IPv6 with UDP
// or TCP as its next header, behind up to two VLAN tags on Ethernet.
// Answers inside tunnels or behind IPv6 extension headers are not checked
// for and take prog's way. Every other frame runs through prog unchanged;
// an empty prog stands for "every frame up to snaplen", as a source with no
// program does.
//
// The check matches on the source port alone, whatever the addresses and
// the direction: the resolver is not a monitored remote, and a host that
// serves DNS sends its answers from port 53 too.
func WithDNS(prog []bpf.RawInstruction, link packet.LinkType, snaplen int) ([]bpf.RawInstruction, error) {
	if len(prog) == 0 {
		prog = []bpf.RawInstruction{{Op: 0x06, K: uint32(snaplen)}} // ret #snaplen
	}
	a := &asm{}
	accept, main := a.newLabel(), a.newLabel()
	v4, v6, ports4, ports6 := a.newLabel(), a.newLabel(), a.newLabel(), a.newLabel()
	// Link layer: as in Build, the IP header is at base+X, X holding the
	// VLAN tags' length.
	base, err := a.linkLayer(link, v4, v6, nil, 0, func() { a.ja(main) })
	if err != nil {
		return nil, err
	}
	ld := func(off uint32, size int) { a.emit(bpf.LoadIndirect{Off: base + off, Size: size}) }
	// ip checks an IP header's protocol byte (at protoOff) for UDP or TCP.
	ip := func(at int, protoOff uint32, ports int) {
		a.mark(at)
		ld(protoOff, 1)
		a.jeq(ipProtoUDP, ports)
		a.jeq(ipProtoTCP, ports)
		a.ja(main)
	}
	ip(v4, 9, ports4)
	ip(v6, 6, ports6)
	a.mark(ports4)
	ld(6, 2) // no fragment: MF or an offset
	a.emit(bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x3fff, SkipTrue: 0, SkipFalse: 1})
	a.ja(main)
	a.xPlusHeaderLen(base, false) // X += IHL*4
	a.emit(bpf.TAX{})
	srcPort := a.newLabel()
	a.ja(srcPort)
	a.mark(ports6)
	a.emit(bpf.TXA{})
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: 40})
	a.emit(bpf.TAX{})
	a.mark(srcPort)
	ld(0, 2) // the UDP or TCP source port
	a.jeq(packet.PortDNS, accept)
	a.ja(main)

	a.mark(accept)
	a.emit(bpf.RetConstant{Val: DNSSnaplen})
	return a.prepend(main, prog, "the DNS check")
}
