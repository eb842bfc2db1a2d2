// Package filter generates the classic BPF program that the kernel runs on
// every frame before it reaches the capture ring, so that traffic the engine
// would ignore (non-TCP, other remotes, other ports) never costs a copy or a
// wake-up. The engine checks the same conditions in user space as well: the
// filter is an optimisation and may be more permissive (IPv6 extension
// headers), never stricter.
package filter

import (
	"fmt"
	"net/netip"

	"github.com/gometro/go-metro/capture/packet"
	"golang.org/x/net/bpf"
)

// MaxInstructions is the kernel's limit on a classic BPF program
// (BPF_MAXINSNS).
const MaxInstructions = 4096

// ErrTooLarge is returned (wrapped) when the remotes and ports do not fit in
// MaxInstructions.
var ErrTooLarge = fmt.Errorf("filter: program exceeds the kernel limit of %d instructions", MaxInstructions)

// Ethertypes of interest.
const (
	etherIPv4   = 0x0800
	etherIPv6   = 0x86dd
	ether8021Q  = 0x8100
	ether8021AD = 0x88a8
	etherQinQ   = 0x9100 // pre-standard 802.1ad, still seen on mirrors
)

// ipv6ExtHeaders are next-header values after which TCP may still follow.
// The filter cannot walk the chain within its budget, so it accepts these and
// lets the user-space decoder decide.
var ipv6ExtHeaders = []uint32{0, 43, 44, 51, 60, 135, 139, 140}

// Build returns a classic BPF program for frames of the given link type that
// accepts only TCP over IPv4 or IPv6 whose source or destination address is
// in remotes (any address if remotes is empty) and whose source or
// destination port is in ports (any port if empty), returning the length of
// its headers (link to TCP options) or snaplen if that is less, and returns 0
// for everything else. IPv6 with extension headers is accepted whole up to
// snaplen.
//
// Ethernet frames may carry up to two 802.1Q/802.1ad tags in the data
// (AF_PACKET usually strips the outer tag, but pcap files and mirror ports
// may not). IPv4 options are honoured through the IHL; IPv4 non-first
// fragments are rejected (they hold no TCP header). IPv6 with TCP as the
// direct next header is checked fully; IPv6 with an extension header is
// accepted when the address matches, and the ports are left to user space.
//
// Programs larger than MaxInstructions return an error wrapping ErrTooLarge
// that names the number of remotes and ports; Fit then falls back to a
// coarser program, and the engine's user-space check keeps filtering
// exactly.
func Build(link packet.LinkType, remotes []netip.Prefix, ports []uint16, snaplen int) ([]bpf.RawInstruction, error) {
	if err := checkInputs(remotes, snaplen); err != nil {
		return nil, err
	}
	b := &builder{accept: bpf.RetConstant{Val: uint32(snaplen)}, reject: bpf.RetConstant{Val: 0}}
	a := &b.asm
	v4, v6, tcp, headers := a.newLabel(), a.newLabel(), a.newLabel(), a.newLabel()

	// Link layer: the IP header starts at base+X, with base the fixed
	// link-header length and X the bytes of VLAN tags (0 elsewhere). Packet
	// offsets always include base in the instruction's constant and keep X
	// for the variable part: libpcap, in cooked ("any") mode, rewrites
	// constant offsets past its synthetic link header and would mistranslate
	// a program that kept the header length in X.
	var err error
	if b.base, err = a.linkLayer(link, v4, v6, nil, 0, func() { a.emit(b.reject) }); err != nil {
		return nil, err
	}
	r4, r6, anyRemote4, anyRemote6 := splitRemotes(remotes)
	b.ipv4(v4, r4, anyRemote4, tcp)
	b.ipv6(v6, r6, anyRemote6) // falls through to tcp
	b.ports(tcp, ports, headers)
	b.headersOnly(headers, snaplen)
	return b.assemble(len(remotes), len(ports))
}

// checkInputs rejects what no program can be built for.
func checkInputs(remotes []netip.Prefix, snaplen int) error {
	if snaplen <= 0 {
		return fmt.Errorf("filter: snaplen %d must be positive", snaplen)
	}
	for _, p := range remotes {
		if !p.IsValid() {
			return fmt.Errorf("filter: invalid remote prefix %v", p)
		}
	}
	return nil
}

// splitRemotes sorts normalized remotes by family; a /0 of a family means
// any remote of it.
func splitRemotes(remotes []netip.Prefix) (r4, r6 []netip.Prefix, anyRemote4, anyRemote6 bool) {
	anyRemote4, anyRemote6 = len(remotes) == 0, len(remotes) == 0
	for _, p := range remotes {
		p = normalize(p)
		switch {
		case p.Addr().Is4() && p.Bits() == 0:
			anyRemote4 = true
		case p.Addr().Is4():
			r4 = append(r4, p)
		case p.Bits() == 0:
			anyRemote6 = true
		default:
			r6 = append(r6, p)
		}
	}
	return r4, r6, anyRemote4, anyRemote6
}

// builder emits Build's program, section by section, into asm.
type builder struct {
	asm
	base           uint32 // the fixed link-header length (linkLayer)
	accept, reject bpf.RetConstant
}

// ld loads size bytes at offset off of the IP or TCP header at base+X.
func (b *builder) ld(off uint32, size int) {
	b.emit(bpf.LoadIndirect{Off: b.base + off, Size: size})
}

// version, at label at (IP header at base+X), rejects a frame whose IP
// version is not v.
func (b *builder) version(at int, v uint32) {
	b.mark(at)
	b.ld(0, 1)
	b.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xf0})
	b.jne(v<<4, b.reject)
}

// ipv4, at label at (IP header at base+X): TCP, not a non-first fragment,
// and a source or destination in remotes (unless anyRemote); then X moves
// to the TCP header and the program goes to tcp.
func (b *builder) ipv4(at int, remotes []netip.Prefix, anyRemote bool, tcp int) {
	a := &b.asm
	matched := a.newLabel()
	b.version(at, 4)
	b.ld(9, 1)
	a.jne(6, b.reject)
	b.ld(6, 2)
	a.emit(bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x1fff, SkipTrue: 0, SkipFalse: 1})
	a.emit(b.reject)
	if !anyRemote {
		for _, p := range remotes {
			mask := ^uint32(0) << (32 - p.Bits())
			ip := p.Addr().As4()
			net := uint32(ip[0])<<24 | uint32(ip[1])<<16 | uint32(ip[2])<<8 | uint32(ip[3])
			for _, off := range []uint32{12, 16} {
				b.ld(off, 4)
				if mask != ^uint32(0) {
					a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: mask})
				}
				a.jeq(net, matched)
			}
		}
		a.emit(b.reject)
	}
	a.mark(matched)
	a.xPlusHeaderLen(b.base, false) // X += IHL*4
	a.emit(bpf.TAX{})
	a.ja(tcp)
}

// ipv6, at label at (IP header at base+X): a source or destination in
// remotes (unless anyRemote), and TCP as the next header, after which X
// moves to the TCP header and the program falls through to the ports; an
// extension header is accepted whole.
func (b *builder) ipv6(at int, remotes []netip.Prefix, anyRemote bool) {
	a := &b.asm
	matched := a.newLabel()
	b.version(at, 6)
	if !anyRemote {
		for _, p := range remotes {
			ip := p.Addr().As16()
			for _, addr := range []uint32{8, 24} {
				next := a.newLabel()
				for w := 0; w*32 < p.Bits(); w++ {
					bits := min(p.Bits()-w*32, 32)
					mask := ^uint32(0) << (32 - bits)
					val := (uint32(ip[4*w])<<24 | uint32(ip[4*w+1])<<16 | uint32(ip[4*w+2])<<8 | uint32(ip[4*w+3])) & mask
					b.ld(addr+uint32(4*w), 4)
					if mask != ^uint32(0) {
						a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: mask})
					}
					a.jne(val, next)
				}
				a.ja(matched)
				a.mark(next)
			}
		}
		a.emit(b.reject)
	}
	a.mark(matched)
	b.ld(6, 1)
	tcp6 := a.newLabel()
	a.jeq(6, tcp6)
	for _, h := range ipv6ExtHeaders {
		a.jeqRet(h, b.accept)
	}
	a.emit(b.reject)
	a.mark(tcp6)
	a.emit(bpf.TXA{})
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: 40})
	a.emit(bpf.TAX{})
}

// ports, at label at (TCP header at base+X): a source or destination
// port in ports (any if empty), then on to headers.
func (b *builder) ports(at int, ports []uint16, headers int) {
	a := &b.asm
	a.mark(at)
	if len(ports) > 0 {
		for _, off := range []uint32{0, 2} {
			b.ld(off, 2)
			for _, p := range ports {
				a.jeq(uint32(p), headers)
			}
		}
		a.emit(b.reject)
	}
}

// headersOnly, at label at, accepts the frame, keeping the headers and no
// payload byte: base+X (link header, tags, IP header) plus the TCP
// header's length, at most snaplen. The decoder takes lengths from the IP
// header, so that is all it reads; payload in the ring would only cost the
// kernel's copy and ring space (a bulk segment takes 160 bytes of ring
// instead of 304 at snaplen 220).
func (b *builder) headersOnly(at, snaplen int) {
	a := &b.asm
	a.mark(at)
	a.xPlusHeaderLen(b.base+12, true) // the TCP data offset
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: b.base})
	a.emit(bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: uint32(snaplen), SkipTrue: 1})
	a.emit(bpf.RetA{})
	a.emit(b.accept)
}

// assemble resolves the labels and encodes the program, which must fit
// the kernel's limit; the error names the remotes and ports it was for.
func (b *builder) assemble(remotes, ports int) ([]bpf.RawInstruction, error) {
	ins, err := b.resolve()
	if err != nil {
		return nil, err
	}
	if len(ins) > MaxInstructions {
		return nil, fmt.Errorf("%w: %d remotes and %d ports need %d instructions", ErrTooLarge, remotes, ports, len(ins))
	}
	raw, err := bpf.Assemble(ins)
	if err != nil {
		return nil, fmt.Errorf("filter: assembling: %w", err)
	}
	return raw, nil
}

// asm is a tiny assembler with forward labels, because classic BPF jumps are
// relative offsets and conditional ones only reach 255 instructions ahead.
// Conditional jumps here only ever skip one instruction or reach a nearby
// label; long distances go through "ja", whose offset is 32 bits.
type asm struct {
	ins    []bpf.Instruction
	labels []int // label -> instruction index, -1 until marked
	fixups []fixup
}

type fixup struct {
	at    int
	label int
	cond  bool // patch SkipFalse of a JumpIf instead of Skip of a Jump
}

func (a *asm) emit(i bpf.Instruction) { a.ins = append(a.ins, i) }

// linkLayer emits the link-layer prologue of a program (Build's and
// WithTunnels'): a frame goes to label v4 or v6 with X holding the bytes of
// VLAN tags (0 but on Ethernet), so that its IP header starts at base+X;
// a frame whose EtherType is one of also goes to alsoTo; any other frame
// gets other's code. It returns base, the fixed link-header length.
func (a *asm) linkLayer(link packet.LinkType, v4, v6 int, also []uint32, alsoTo int, other func()) (base uint32, err error) {
	switch link {
	case packet.LinkTypeEthernet:
		vlan1, vlan2 := a.newLabel(), a.newLabel()
		ether := func(tags uint32, next int) {
			l4, l6 := a.newLabel(), a.newLabel()
			a.emit(bpf.LoadAbsolute{Off: 12 + tags, Size: 2})
			for _, t := range also {
				a.jeq(t, alsoTo)
			}
			a.jeq(etherIPv4, l4)
			a.jeq(etherIPv6, l6)
			if next >= 0 {
				a.jeq(ether8021Q, next)
				a.jeq(ether8021AD, next)
				a.jeq(etherQinQ, next)
			}
			other()
			a.mark(l4)
			a.emit(bpf.LoadConstant{Dst: bpf.RegX, Val: tags})
			a.ja(v4)
			a.mark(l6)
			a.emit(bpf.LoadConstant{Dst: bpf.RegX, Val: tags})
			a.ja(v6)
		}
		ether(0, vlan1)
		a.mark(vlan1)
		ether(4, vlan2)
		a.mark(vlan2)
		ether(8, -1)
		return 14, nil
	case packet.LinkTypeLinuxSLL, packet.LinkTypeSLL2:
		typeOff, base := uint32(14), uint32(16)
		if link == packet.LinkTypeSLL2 {
			typeOff, base = 0, 20
		}
		a.emit(bpf.LoadConstant{Dst: bpf.RegX, Val: 0})
		a.emit(bpf.LoadAbsolute{Off: typeOff, Size: 2})
		for _, t := range also {
			a.jeq(t, alsoTo)
		}
		a.jeq(etherIPv4, v4)
		a.jeq(etherIPv6, v6)
		other()
		return base, nil
	case packet.LinkTypeRaw, packet.LinkTypeIPv4, packet.LinkTypeIPv6:
		a.ipVersion(link, v4, v6, other)
		return 0, nil
	}
	return 0, fmt.Errorf("filter: unsupported link type %d", link)
}

// ipVersion sends a frame that starts at its IP header (link types raw,
// IPv4, IPv6) to label v4 or v6 with X = 0, the IP header's offset; a raw
// frame of neither version gets notIP's code.
func (a *asm) ipVersion(link packet.LinkType, v4, v6 int, notIP func()) {
	a.emit(bpf.LoadConstant{Dst: bpf.RegX, Val: 0})
	switch link {
	case packet.LinkTypeIPv4:
		a.ja(v4)
	case packet.LinkTypeIPv6:
		a.ja(v6)
	default:
		a.emit(bpf.LoadAbsolute{Off: 0, Size: 1})
		a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xf0})
		a.jeq(0x40, v4)
		a.jeq(0x60, v6)
		notIP()
	}
}

func (a *asm) newLabel() int {
	a.labels = append(a.labels, -1)
	return len(a.labels) - 1
}

func (a *asm) mark(l int) { a.labels[l] = len(a.ins) }

// xPlusHeaderLen sets A to X plus the length of a header whose 4-bit
// length field, in 32-bit words, is the low (IPv4 IHL) or high (TCP data
// offset) nibble of the byte at packet offset at+X. "ldx 4*([k]&0xf)" (ldx
// msh) would do for IHL, but only takes an absolute offset, and X already
// holds the VLAN tags' length.
func (a *asm) xPlusHeaderLen(at uint32, highNibble bool) {
	a.emit(bpf.LoadIndirect{Off: at, Size: 1})
	if highNibble {
		a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xf0})
		a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 2})
	} else {
		a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0x0f})
		a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 2})
	}
	a.emit(bpf.ALUOpX{Op: bpf.ALUOpAdd})
}

// ja jumps unconditionally to label l.
func (a *asm) ja(l int) {
	a.fixups = append(a.fixups, fixup{at: len(a.ins), label: l})
	a.emit(bpf.Jump{})
}

// jeq jumps to label l when A == v.
func (a *asm) jeq(v uint32, l int) {
	a.emit(bpf.JumpIf{Cond: bpf.JumpEqual, Val: v, SkipTrue: 0, SkipFalse: 1})
	a.ja(l)
}

// jeqRet returns r when A == v.
func (a *asm) jeqRet(v uint32, r bpf.Instruction) {
	a.emit(bpf.JumpIf{Cond: bpf.JumpEqual, Val: v, SkipTrue: 0, SkipFalse: 1})
	a.emit(r)
}

// jne continues when A == v and otherwise goes to label l, or executes the
// return instruction r.
func (a *asm) jne(v uint32, target any) {
	switch t := target.(type) {
	case bpf.RetConstant:
		a.emit(bpf.JumpIf{Cond: bpf.JumpEqual, Val: v, SkipTrue: 1, SkipFalse: 0})
		a.emit(t)
	case int:
		a.fixups = append(a.fixups, fixup{at: len(a.ins), label: t, cond: true})
		a.emit(bpf.JumpIf{Cond: bpf.JumpEqual, Val: v})
	}
}

// prepend ends a check that runs in front of prog: label main is where
// frames the check does not take go on to prog, which starts from a clean
// machine state, as when it runs alone. what names the check in the error
// when the two exceed the kernel's limit.
func (a *asm) prepend(main int, prog []bpf.RawInstruction, what string) ([]bpf.RawInstruction, error) {
	a.mark(main)
	a.emit(bpf.LoadConstant{Dst: bpf.RegX, Val: 0})
	a.emit(bpf.LoadConstant{Dst: bpf.RegA, Val: 0})
	ins, err := a.resolve()
	if err != nil {
		return nil, err
	}
	raw, err := bpf.Assemble(ins)
	if err != nil {
		return nil, fmt.Errorf("filter: assembling: %w", err)
	}
	if n := len(raw) + len(prog); n > MaxInstructions {
		return nil, fmt.Errorf("%w: %s and the filter need %d instructions", ErrTooLarge, what, n)
	}
	return append(raw, prog...), nil
}

func (a *asm) resolve() ([]bpf.Instruction, error) {
	for _, f := range a.fixups {
		to := a.labels[f.label]
		if to < 0 {
			return nil, fmt.Errorf("filter: internal error: label %d never placed", f.label)
		}
		skip := to - f.at - 1
		if skip < 0 {
			return nil, fmt.Errorf("filter: internal error: backward jump at %d", f.at)
		}
		if f.cond {
			if skip > 255 {
				return nil, fmt.Errorf("filter: internal error: conditional jump of %d at %d", skip, f.at)
			}
			j := a.ins[f.at].(bpf.JumpIf)
			j.SkipFalse = uint8(skip)
			a.ins[f.at] = j
			continue
		}
		a.ins[f.at] = bpf.Jump{Skip: uint32(skip)}
	}
	return a.ins, nil
}
