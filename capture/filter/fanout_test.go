package filter

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/gometro/go-metro/capture/packet"
	"golang.org/x/net/bpf"
)

// The fanout program is run here by x/net/bpf's interpreter, with
// prologues that stand in for the kernel's: a sent frame is read whole
// from its Ethernet header (X = 14, the EtherType from the frame), a
// received one from its network header, the kernel having moved the outer
// VLAN tag into metadata (X = 0, the EtherType given).

// sentPrologue reads a whole Ethernet frame.
func sentPrologue(a *asm, start int) {
	a.emit(bpf.LoadConstant{Dst: bpf.RegX, Val: ethHeaderLen})
	a.emit(bpf.LoadAbsolute{Off: 12, Size: 2})
	a.ja(start)
}

// receivedPrologue reads a frame from its network header, with etype as
// skb->protocol.
func receivedPrologue(etype uint16) func(a *asm, start int) {
	return func(a *asm, start int) {
		a.emit(bpf.LoadConstant{Dst: bpf.RegX, Val: 0})
		a.emit(bpf.LoadConstant{Dst: bpf.RegA, Val: uint32(etype)})
		a.ja(start)
	}
}

type fanoutVM struct {
	sent     *bpf.VM
	received map[uint16]*bpf.VM
}

func newFanoutVM(t *testing.T) *fanoutVM {
	t.Helper()
	return &fanoutVM{sent: vmFor(t, sentPrologue), received: map[uint16]*bpf.VM{}}
}

func vmFor(t *testing.T, prologue func(a *asm, start int)) *bpf.VM {
	t.Helper()
	raw, err := fanoutProgram(prologue)
	if err != nil {
		t.Fatal(err)
	}
	ins, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("the fanout program does not disassemble")
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatal(err)
	}
	return vm
}

// hashSent runs the program on a whole Ethernet frame as sent.
func (v *fanoutVM) hashSent(t *testing.T, frame []byte) uint32 {
	t.Helper()
	h, err := v.sent.Run(frame)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(h)
}

// hashReceived runs it on the same frame as received: the kernel strips
// the Ethernet header and the first VLAN tag, if any.
func (v *fanoutVM) hashReceived(t *testing.T, frame []byte) uint32 {
	t.Helper()
	etype, off := binary.BigEndian.Uint16(frame[12:]), ethHeaderLen
	if etype == ether8021Q || etype == ether8021AD || etype == etherQinQ {
		etype, off = binary.BigEndian.Uint16(frame[16:]), off+vlanTagLen
	}
	vm := v.received[etype]
	if vm == nil {
		vm = vmFor(t, receivedPrologue(etype))
		v.received[etype] = vm
	}
	h, err := vm.Run(frame[off:])
	if err != nil {
		t.Fatal(err)
	}
	return uint32(h)
}

// A stack is a connection's headers, innermost first (after TCP and its
// IP header): the layers built around them. A layer's choices that may
// differ between the two directions of one connection (GRE's optional
// fields, MPLS stack depths, IPv6 extension headers, VLAN tags...) are
// drawn for each frame separately, from the frame's own random source.
type stack struct {
	inner6 bool
	layers []layer
}

type layer uint8

const (
	lVXLAN layer = iota
	lGeneveEth
	lGeneveIP
	lGRE
	lGREEth
	lERSPAN1
	lERSPAN2
	lERSPAN3Eth
	lERSPAN3IP
	lWCCP
	lGTPU
	lIPIP
	lMPLS
	lMPLSEth
	lPPPoE
	lPBB
	numLayers
)

var layerNames = [numLayers]string{"vxlan", "geneve-eth", "geneve-ip", "gre", "gre-eth", "erspan1", "erspan2", "erspan3-eth", "erspan3-ip", "wccp", "gtpu", "ipip", "mpls", "mpls-eth", "pppoe", "pbb"}

func (s stack) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "tcp/ip%d", map[bool]int{false: 4, true: 6}[s.inner6])
	for _, l := range s.layers {
		b.WriteString(" in " + layerNames[l])
	}
	return b.String()
}

// conn is one connection: its stack and its inner and outer addresses.
type conn struct {
	stack
	a, b   netip.AddrPort // inner ends
	oa, ob []netip.Addr   // outer addresses, one pair per IP-borne layer
	mirror bool           // the outer headers carry both directions A>B (a mirror session)
}

// payload is what a layer wraps: bytes and what they are.
type payload struct {
	b    []byte
	kind uint16 // an EtherType; etherTEB for an Ethernet frame
}

// frame builds the frame of c in direction dir (0: a>b), with r drawing
// what may differ between directions.
func (c *conn) frame(dir int, r *rand.Rand) []byte {
	src, dst := c.a, c.b
	if dir == 1 {
		src, dst = dst, src
	}
	tcp := make([]byte, 20)
	binary.BigEndian.PutUint16(tcp[0:], src.Port())
	binary.BigEndian.PutUint16(tcp[2:], dst.Port())
	tcp[12], tcp[13] = 5<<4, 0x10
	p := ipPacket(src.Addr(), dst.Addr(), 6, tcp, r)
	outer := 0
	for _, l := range c.layers {
		var oa, ob netip.Addr
		if isIPBorne(l) {
			oa, ob = c.oa[outer], c.ob[outer]
			if dir == 1 && !c.mirror {
				oa, ob = ob, oa
			}
		}
		switch l {
		case lVXLAN:
			v := []byte{0x08, 0, 0, 0, 0, 0, 42, 0}
			p = udpIn(oa, ob, 4789, append(v, ethFrame(p, r)...), r)
		case lGeneveEth, lGeneveIP:
			opts := 4 * r.IntN(3)
			g := make([]byte, 8+opts)
			g[0] = byte(opts / 4)
			proto := etherTEB
			body := p.b
			if l == lGeneveEth {
				body = ethFrame(p, r)
			} else {
				proto = int(p.kind)
			}
			binary.BigEndian.PutUint16(g[2:], uint16(proto))
			p = udpIn(oa, ob, 6081, append(g, body...), r)
		case lGRE, lGREEth:
			proto, body := p.kind, p.b
			if l == lGREEth {
				proto, body = etherTEB, ethFrame(p, r)
			}
			p = greIn(oa, ob, proto, r.IntN(2) == 0, body, r)
		case lERSPAN1:
			p = greIn(oa, ob, etherERSPAN, false, ethFrame(p, r), r)
		case lERSPAN2:
			e := []byte{0x10, 0, 0, 7, 0, 0, 0, 0}
			p = greIn(oa, ob, etherERSPAN, true, append(e, ethFrame(p, r)...), r)
		case lERSPAN3Eth, lERSPAN3IP:
			e := make([]byte, 12)
			e[0], e[3] = 0x20, 7
			body := ethFrame(p, r)
			if l == lERSPAN3IP {
				e[10] = 2 << 2 // frame type 2: IP
				body = p.b
			}
			if r.IntN(2) == 0 {
				e[11] |= 1 // O: an 8-byte sub-header
				e = append(e, make([]byte, 8)...)
			}
			p = greIn(oa, ob, etherERSPAN3, r.IntN(2) == 0, append(e, body...), r)
		case lWCCP:
			body := p.b
			if r.IntN(2) == 0 {
				body = append([]byte{0, 0, 0, 0}, body...) // WCCPv2's redirect header
			}
			p = greIn(oa, ob, etherWCCP, r.IntN(2) == 0, body, r)
		case lGTPU:
			h := []byte{0x30, 0xff, 0, 0, 0, 0, 0, 1}
			var ext []byte
			if n := r.IntN(4); n > 0 {
				h[0] |= 0x04 // E
				ext = []byte{0, 0, 0, 0x85}
				for i := range n {
					e := []byte{1, 0, 0, 0x85}
					if i == n-1 {
						e[3] = 0
					}
					ext = append(ext, e...)
				}
			} else if r.IntN(2) == 0 {
				h[0] |= 0x02 // S: the optional fields, no chain
				ext = []byte{0, 1, 0, 0}
			}
			body := append(ext, p.b...)
			binary.BigEndian.PutUint16(h[2:], uint16(len(body)))
			p = udpIn(oa, ob, 2152, append(h, body...), r)
		case lIPIP:
			proto := byte(4)
			if p.kind == etherIPv6 {
				proto = 41
			}
			p = ipPacket(oa, ob, proto, p.b, r)
		case lMPLS, lMPLSEth:
			body := p.b
			if l == lMPLSEth {
				body = append([]byte{0, 0, 0, 0}, ethFrame(p, r)...) // control word
			}
			n := 1 + r.IntN(4)
			st := make([]byte, 4*n)
			for i := range n {
				binary.BigEndian.PutUint32(st[4*i:], uint32(100+i)<<12|64)
			}
			st[4*n-2] |= 1 // bottom of stack
			p = payload{append(st, body...), etherMPLS}
		case lPPPoE:
			proto := []byte{0, 0x21}
			if p.kind == etherIPv6 {
				proto[1] = 0x57
			}
			if r.IntN(2) == 0 {
				proto = proto[1:] // protocol field compression
			}
			h := []byte{0x11, 0, 0, 9, 0, 0}
			binary.BigEndian.PutUint16(h[4:], uint16(len(proto)+len(p.b)))
			p = payload{append(append(h, proto...), p.b...), etherPPPoE}
		case lPBB:
			h := make([]byte, 18)
			h[3] = 5
			binary.BigEndian.PutUint16(h[16:], p.kind)
			p = payload{append(h, p.b...), etherPBB}
		}
		if isIPBorne(l) {
			outer++
		}
	}
	return ethFrame(p, r)
}

func isIPBorne(l layer) bool {
	return l != lMPLS && l != lMPLSEth && l != lPPPoE && l != lPBB
}

// ethFrame puts p in an Ethernet frame with up to two VLAN tags.
func ethFrame(p payload, r *rand.Rand) []byte {
	f := make([]byte, 12, 14+8+len(p.b))
	f[0], f[6] = 2, 2
	for range r.IntN(3) {
		f = append(f, 0x81, 0, 0, 5)
	}
	f = binary.BigEndian.AppendUint16(f, p.kind)
	return append(f, p.b...)
}

// ipPacket wraps body in an IPv4 header (with options, sometimes) or an
// IPv6 one (with extension headers, sometimes).
func ipPacket(src, dst netip.Addr, proto byte, body []byte, r *rand.Rand) payload {
	if src.Is4() {
		opts := 4 * r.IntN(3)
		h := make([]byte, 20+opts)
		h[0] = byte(0x40 | (20+opts)/4)
		binary.BigEndian.PutUint16(h[2:], uint16(len(h)+len(body)))
		h[8], h[9] = 64, proto
		s, d := src.As4(), dst.As4()
		copy(h[12:], s[:])
		copy(h[16:], d[:])
		for i := 20; i < len(h); i++ {
			h[i] = 1 // NOP options
		}
		return payload{append(h, body...), etherIPv4}
	}
	var ext []byte
	next := proto
	for i := range r.IntN(3) {
		e := make([]byte, 8*(1+i%2))
		e[0], e[1] = next, byte(i%2)
		next = []byte{ipv6ExtHopOpts, ipv6ExtDstOpts}[i%2]
		if i > 0 && next == ipv6ExtHopOpts {
			next = ipv6ExtRouting // hop-by-hop only first
		}
		ext = append(e, ext...)
	}
	h := make([]byte, 40)
	h[0], h[6], h[7] = 0x60, next, 64
	binary.BigEndian.PutUint16(h[4:], uint16(len(ext)+len(body)))
	s, d := src.As16(), dst.As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	return payload{append(append(h, ext...), body...), etherIPv6}
}

func udpIn(src, dst netip.Addr, port uint16, body []byte, r *rand.Rand) payload {
	u := make([]byte, 8)
	binary.BigEndian.PutUint16(u[0:], uint16(49152+r.IntN(16384))) // a flow hash, different each way
	binary.BigEndian.PutUint16(u[2:], port)
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(body)))
	return ipPacket(src, dst, 17, append(u, body...), r)
}

func greIn(src, dst netip.Addr, proto uint16, seq bool, body []byte, r *rand.Rand) payload {
	var h []byte
	flags := uint16(0)
	if r.IntN(2) == 0 {
		flags |= greFlagC
	}
	if r.IntN(2) == 0 {
		flags |= greFlagK
	}
	if seq {
		flags |= greFlagS
	}
	h = binary.BigEndian.AppendUint16(h, flags)
	h = binary.BigEndian.AppendUint16(h, proto)
	for _, f := range []uint16{greFlagC, greFlagK, greFlagS} {
		if flags&f != 0 {
			h = append(h, 0, 0, 0, 7)
		}
	}
	return ipPacket(src, dst, 47, append(h, body...), r)
}

// randomStack draws a stack Decode follows to its TCP: at most
// packet.MaxTunnelDepth encapsulations, each wrapping what it can carry.
func randomStack(r *rand.Rand) stack {
	s := stack{inner6: r.IntN(2) == 0}
	for range r.IntN(packet.MaxTunnelDepth + 1) {
		s.layers = append(s.layers, layer(r.IntN(int(numLayers))))
	}
	return s
}

func randomAddr(r *rand.Rand, v6 bool) netip.Addr {
	if v6 {
		var a [16]byte
		a[0], a[1] = 0xfd, byte(r.IntN(256))
		for i := 8; i < 16; i++ {
			a[i] = byte(r.IntN(256))
		}
		return netip.AddrFrom16(a)
	}
	return netip.AddrFrom4([4]byte{10, byte(r.IntN(256)), byte(r.IntN(256)), byte(1 + r.IntN(254))})
}

func randomConn(r *rand.Rand) *conn {
	c := &conn{stack: randomStack(r), mirror: r.IntN(3) == 0}
	c.a = netip.AddrPortFrom(randomAddr(r, c.inner6), uint16(1024+r.IntN(60000)))
	c.b = netip.AddrPortFrom(randomAddr(r, c.inner6), uint16(1+r.IntN(1024)))
	for _, l := range c.layers {
		if isIPBorne(l) {
			v6 := r.IntN(2) == 0
			c.oa = append(c.oa, randomAddr(r, v6))
			c.ob = append(c.ob, randomAddr(r, v6))
		}
	}
	return c
}

// TestFanoutSymmetric: for random connections through every
// encapsulation Decode crosses, nested up to its limit, with everything
// that may differ between the two directions drawn for each frame, the
// two directions hash the same, sent or received, whenever Decode finds
// the TCP segment in both.
func TestFanoutSymmetric(t *testing.T) {
	vm := newFanoutVM(t)
	r := rand.New(rand.NewPCG(1, 2))
	var p packet.Packet
	seen := map[string]bool{}
	decoded := 0
	for range 20000 {
		c := randomConn(r)
		var frames [2][]byte
		ok := true
		for dir := range 2 {
			frames[dir] = c.frame(dir, r)
			if st := p.Decode(packet.LinkTypeEthernet, frames[dir], len(frames[dir])); st != packet.OK {
				ok = false // a stack Decode does not follow (a link layer in a link layer, say)
			}
		}
		if !ok {
			continue
		}
		decoded++
		for _, l := range c.layers {
			seen[layerNames[l]] = true
		}
		hs := [4]uint32{vm.hashSent(t, frames[0]), vm.hashReceived(t, frames[0]), vm.hashSent(t, frames[1]), vm.hashReceived(t, frames[1])}
		if hs[0] != hs[1] || hs[0] != hs[2] || hs[0] != hs[3] {
			t.Fatalf("%v (mirror %v): hashes sent/received a>b %08x %08x, b>a %08x %08x\na>b % x\nb>a % x",
				c.stack, c.mirror, hs[0], hs[1], hs[2], hs[3], frames[0], frames[1])
		}
		if hs[0] == 0 {
			t.Fatalf("%v: hash 0 for a decoded TCP segment (the no-IP answer)\n% x", c.stack, frames[0])
		}
	}
	t.Logf("%d of 20000 random connections decode", decoded)
	if decoded < 5000 {
		t.Fatalf("only %d of the random connections decode", decoded)
	}
	for _, n := range layerNames {
		if !seen[n] {
			t.Errorf("no decoded connection went through %s", n)
		}
	}
}

// TestFanoutSpread: the hash spreads connections evenly over any number
// of workers, as the kernel picks them (hash % workers): bare TCP between
// one server and many clients, and VXLAN between two tunnel endpoints
// (where an outer-header hash would put everything on one worker).
func TestFanoutSpread(t *testing.T) {
	vm := newFanoutVM(t)
	r := rand.New(rand.NewPCG(3, 4))
	server := netip.MustParseAddr("10.0.0.1")
	for _, vx := range []bool{false, true} {
		const conns = 12000
		hashes := make([]uint32, conns)
		for i := range hashes {
			c := &conn{a: netip.AddrPortFrom(randomAddr(r, false), uint16(1024+r.IntN(60000))), b: netip.AddrPortFrom(server, 443)}
			if vx {
				c.layers = []layer{lVXLAN}
				c.oa, c.ob = []netip.Addr{netip.MustParseAddr("192.0.2.1")}, []netip.Addr{netip.MustParseAddr("192.0.2.2")}
			}
			hashes[i] = vm.hashSent(t, c.frame(0, r))
		}
		for _, workers := range []uint32{2, 3, 4, 8} {
			count := make([]int, workers)
			for _, h := range hashes {
				count[h%workers]++
			}
			want := conns / int(workers)
			for w, n := range count {
				if n < want*9/10 || n > want*11/10 {
					t.Errorf("vxlan %v, %d workers: worker %d got %d connections, want %d ± 10 %%", vx, workers, w, n, want)
				}
			}
		}
	}
}

// TestFanoutNotTCP: frames Decode does not time get a hash that depends
// only on what both directions share (or 0), and the program runs to an
// answer on every truncation of a tunnelled frame.
func TestFanoutNotTCP(t *testing.T) {
	vm := newFanoutVM(t)
	r := rand.New(rand.NewPCG(5, 6))
	c := &conn{a: netip.MustParseAddrPort("10.0.0.1:1000"), b: netip.MustParseAddrPort("10.0.0.2:2000")}
	// UDP: the addresses only, the same both ways.
	f := ethFrame(ipPacket(c.a.Addr(), c.b.Addr(), 17, []byte{0, 1, 0, 2, 0, 8, 0, 0}, r), r)
	g := ethFrame(ipPacket(c.b.Addr(), c.a.Addr(), 17, []byte{0, 3, 0, 4, 0, 8, 0, 0}, r), r)
	if hf, hg := vm.hashSent(t, f), vm.hashSent(t, g); hf != hg || hf == 0 {
		t.Errorf("UDP between the same two hosts hashes to %08x one way, %08x the other", hf, hg)
	}
	// ARP: nothing to hash.
	arp := append(make([]byte, 12), 0x08, 0x06)
	if h := vm.hashSent(t, append(arp, make([]byte, 28)...)); h != 0 {
		t.Errorf("ARP hashed to %08x, want 0", h)
	}
	deep := &conn{stack: stack{layers: []layer{lGRE, lVXLAN, lGTPU, lMPLS}}, a: c.a, b: c.b,
		oa: []netip.Addr{randomAddr(r, false), randomAddr(r, true), randomAddr(r, false)},
		ob: []netip.Addr{randomAddr(r, false), randomAddr(r, true), randomAddr(r, false)}}
	full := deep.frame(0, r)
	for n := range len(full) {
		vm.hashSent(t, full[:n]) // must not fail
	}
}

// TestFanoutHashAssembles: the kernel's program fits the kernel's limit.
func TestFanoutHashAssembles(t *testing.T) {
	if n := len(FanoutHash()); n > MaxInstructions {
		t.Fatalf("%d instructions", n)
	} else {
		t.Logf("%d instructions", n)
	}
}
