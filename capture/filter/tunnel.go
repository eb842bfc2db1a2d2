package filter

import (
	"github.com/gometro/go-metro/capture/packet"
	"golang.org/x/net/bpf"
)

// Outer-header signatures of the encapsulations packet.Decode understands.
// The filter stops at the outer header: inner addresses and ports lie past
// variable-length tunnel headers (GRE flags, Geneve options, GTP-U
// extensions, MPLS stacks) that classic BPF cannot walk within its budget.
const (
	etherPPPoE  = 0x8864
	etherMPLS   = 0x8847
	etherMPLSMC = 0x8848
	etherPBB    = 0x88e7

	ipProtoIPIP = 4
	ipProtoIPv6 = 41
	ipProtoGRE  = 47
	ipProtoUDP  = 17

	portVXLAN  = 4789
	portGeneve = 6081
	portGTPU   = 2152
)

// WithTunnels returns prog preceded by a check that accepts (returning
// snaplen) the outer packets of the encapsulations in encaps, coarsely:
// UDP to the VXLAN, Geneve or GTP-U port, IP protocol 47 (GRE, ERSPAN), 4
// and 41 (IP-in-IP), EtherTypes 0x8864 (PPPoE), 0x8847/0x8848 (MPLS) and
// 0x88E7 (802.1ah), behind up to two VLAN tags on Ethernet. Every other
// frame runs through prog unchanged. The engine filters the inner
// addresses and ports of what this lets through in user space.
//
// Outer IPv6 headers are matched when the tunnel protocol is their next
// header; a tunnel behind IPv6 extension headers is not let through.
// IPv4 fragments are never let through (the decoder skips them).
func WithTunnels(prog []bpf.RawInstruction, link packet.LinkType, encaps packet.Encap, snaplen int) ([]bpf.RawInstruction, error) {
	if encaps == 0 {
		return prog, nil
	}
	a := &asm{}
	accept, main := a.newLabel(), a.newLabel()
	v4, v6 := a.newLabel(), a.newLabel()

	// Link layer: as in Build, the IP header is at base+X, X holding the
	// VLAN tags' length.
	var linkTypes []uint32
	if encaps&packet.EncapPPPoE != 0 {
		linkTypes = append(linkTypes, etherPPPoE)
	}
	if encaps&packet.EncapMPLS != 0 {
		linkTypes = append(linkTypes, etherMPLS, etherMPLSMC)
	}
	if encaps&packet.EncapPBB != 0 {
		linkTypes = append(linkTypes, etherPBB)
	}
	base, err := a.linkLayer(link, v4, v6, linkTypes, accept, func() { a.ja(main) })
	if err != nil {
		return nil, err
	}
	ld := func(off uint32, size int) { a.emit(bpf.LoadIndirect{Off: base + off, Size: size}) }

	var protos []uint32
	if encaps&packet.EncapIPIP != 0 {
		protos = append(protos, ipProtoIPIP, ipProtoIPv6)
	}
	if encaps&(packet.EncapGRE|packet.EncapERSPAN) != 0 {
		protos = append(protos, ipProtoGRE)
	}
	var ports []uint32
	for _, p := range []struct {
		e    packet.Encap
		port uint32
	}{{packet.EncapVXLAN, portVXLAN}, {packet.EncapGeneve, portGeneve}, {packet.EncapGTPU, portGTPU}} {
		if encaps&p.e != 0 {
			ports = append(ports, p.port)
		}
	}
	// ip emits the check of an IP header at base+X whose protocol byte is
	// at protoOff; toUDP moves X to the UDP header.
	ip := func(l int, protoOff uint32, toUDP func()) {
		a.mark(l)
		ld(protoOff, 1)
		for _, p := range protos {
			a.jeq(p, accept)
		}
		if len(ports) == 0 {
			a.ja(main)
			return
		}
		a.jne(ipProtoUDP, main)
		toUDP()
		ld(2, 2) // UDP destination port
		for _, p := range ports {
			a.jeq(p, accept)
		}
		a.ja(main)
	}
	ip(v4, 9, func() {
		ld(6, 2) // no fragment: the decoder skips them
		a.emit(bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x3fff, SkipTrue: 0, SkipFalse: 1})
		a.ja(main)
		a.xPlusHeaderLen(base, false) // X += IHL*4
		a.emit(bpf.TAX{})
	})
	ip(v6, 6, func() { // UDP as the next header only
		a.emit(bpf.TXA{})
		a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: 40})
		a.emit(bpf.TAX{})
	})

	a.mark(accept)
	a.emit(bpf.RetConstant{Val: uint32(snaplen)})
	return a.prepend(main, prog, "the tunnel check")
}
