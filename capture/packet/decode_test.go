package packet

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

func TestDecodeValidFrames(t *testing.T) {
	for _, tc := range validFrames(t) {
		t.Run(tc.name, func(t *testing.T) {
			var p Packet
			if err := p.Decode(tc.link, tc.data, len(tc.data)); err != OK {
				t.Fatalf("Decode = %v, want success", err)
			}
			if p != tc.want {
				t.Fatalf("Decode mismatch\n got %+v\nwant %+v", p, tc.want)
			}
		})
	}
}

// patch returns a copy of b with f applied, for hand-made corruption.
func patch(b []byte, f func(b []byte)) []byte {
	c := append([]byte(nil), b...)
	f(c)
	return c
}

func TestDecode(t *testing.T) {
	ts := tsOpt(100, 200)
	// Offsets used by byte patches below, for Ethernet/IPv4/TCP frames
	// without IP options.
	const ipOff, tcpOff = 14, 34
	plain4 := serialize(t, eth(layers.EthernetTypeIPv4), ip4(), tcp(nop(), nop(), ts), payload(testPayload))
	syn := tcp(mssOpt(1460), sackPermOpt(), tsOpt(7, 0), nop(), wsOpt(7))
	syn.SYN, syn.ACK, syn.PSH = true, false, false
	wantSYN := withTS(want4(0), 7, 0)
	wantSYN.Flags = FlagSYN
	wantSYN.MSS = 1460

	cases := []struct {
		name string
		link LinkType
		data []byte
		wire int // 0: len(data)
		err  Status
		want *Packet // checked when err == OK
	}{
		{name: "unsupported link", link: 147, data: plain4, err: UnsupportedLink},
		{name: "arp", link: LinkTypeEthernet,
			data: serialize(t, eth(layers.EthernetTypeARP), payload(28)), err: NotTCP},
		{name: "llc length field", link: LinkTypeEthernet,
			data: patch(plain4, func(b []byte) { b[12], b[13] = 0x00, 0x40 }), err: NotTCP},
		{name: "udp", link: LinkTypeEthernet,
			data: serialize(t, eth(layers.EthernetTypeIPv4), func() *layers.IPv4 { ip := ip4(); ip.Protocol = layers.IPProtocolUDP; return ip }(),
				&layers.UDP{SrcPort: 5353, DstPort: 53}, payload(10)), err: NotTCP},
		{name: "0x9100 outer tag", link: LinkTypeEthernet,
			data: serialize(t, eth(0x9100), dot1q(100, layers.EthernetTypeDot1Q), dot1q(10, layers.EthernetTypeIPv4), ip4(), tcp(), payload(5)),
			want: ptr(want4(5))},
		{name: "4 tags is the limit", link: LinkTypeEthernet,
			data: serialize(t, eth(layers.EthernetTypeDot1Q), dot1q(1, layers.EthernetTypeDot1Q), dot1q(2, layers.EthernetTypeDot1Q),
				dot1q(3, layers.EthernetTypeDot1Q), dot1q(4, layers.EthernetTypeIPv4), ip4(), tcp(), payload(5)),
			want: ptr(want4(5))},
		{name: "5 tags", link: LinkTypeEthernet,
			data: serialize(t, eth(layers.EthernetTypeDot1Q), dot1q(1, layers.EthernetTypeDot1Q), dot1q(2, layers.EthernetTypeDot1Q),
				dot1q(3, layers.EthernetTypeDot1Q), dot1q(4, layers.EthernetTypeDot1Q), dot1q(5, layers.EthernetTypeIPv4), ip4(), tcp(), payload(5)),
			err: NotTCP},
		{name: "sll with vlan", link: LinkTypeLinuxSLL,
			data: serialize(t, sllHdr(0x8100), dot1q(10, layers.EthernetTypeIPv6), ip6(layers.IPProtocolTCP), tcp(), payload(5)),
			want: ptr(want6(5))},
		{name: "sll arp", link: LinkTypeLinuxSLL, data: serialize(t, sllHdr(0x0806), payload(28)), err: NotTCP},
		{name: "sll2 ipv4", link: LinkTypeSLL2,
			data: serialize(t, sll2Hdr(0x0800), ip4(), tcp(nop(), nop(), ts), payload(5)), want: ptr(withTS(want4(5), 100, 200))},
		{name: "null le ipv6 24", link: LinkTypeNull,
			data: serialize(t, nullHdr(24, false), ip6(layers.IPProtocolTCP), tcp(), payload(5)), want: ptr(want6(5))},
		{name: "null le ipv6 28", link: LinkTypeNull,
			data: serialize(t, nullHdr(28, false), ip6(layers.IPProtocolTCP), tcp(), payload(5)), want: ptr(want6(5))},
		{name: "null be ipv4", link: LinkTypeNull,
			data: serialize(t, nullHdr(2, true), ip4(), tcp(), payload(5)), want: ptr(want4(5))},
		{name: "null unknown family", link: LinkTypeNull,
			data: serialize(t, nullHdr(7, false), ip4(), tcp(), payload(5)), err: NotTCP},
		{name: "null family too big", link: LinkTypeNull,
			data: serialize(t, nullHdr(0x0202, false), ip4(), tcp(), payload(5)), err: NotTCP},
		{name: "raw bad version", link: LinkTypeRaw,
			data: patch(serialize(t, ip4(), tcp()), func(b []byte) { b[0] = 0x55 }), err: BadHeader},
		{name: "ipv4 link carrying ipv6", link: LinkTypeIPv4,
			data: serialize(t, ip6(layers.IPProtocolTCP), tcp()), err: BadHeader},
		{name: "ipv6 link carrying ipv4", link: LinkTypeIPv6,
			data: serialize(t, ip4(), tcp(), payload(40)), err: BadHeader},
		{name: "ethertype ipv4 carrying version 6", link: LinkTypeEthernet,
			data: patch(plain4, func(b []byte) { b[ipOff] = 0x65 }), err: BadHeader},

		// IPv4
		{name: "ipv4 options 12 bytes", link: LinkTypeEthernet,
			data: serialize(t, eth(layers.EthernetTypeIPv4),
				ip4(layers.IPv4Option{OptionType: 0x94, OptionLength: 4, OptionData: []byte{0, 0}}, layers.IPv4Option{OptionType: 0x44, OptionLength: 8, OptionData: []byte{5, 0, 0, 0, 0, 0}}),
				tcp(), payload(5)),
			want: ptr(want4(5))},
		{name: "ihl 4", link: LinkTypeEthernet, data: patch(plain4, func(b []byte) { b[ipOff] = 0x44 }), err: BadHeader},
		{name: "ipv4 total length below ihl", link: LinkTypeEthernet,
			data: patch(plain4, func(b []byte) { binary.BigEndian.PutUint16(b[ipOff+2:], 19) }), err: BadHeader},
		{name: "ipv4 total length inside tcp header", link: LinkTypeEthernet,
			data: patch(plain4, func(b []byte) { binary.BigEndian.PutUint16(b[ipOff+2:], 20+31) }), err: BadHeader},
		{name: "ipv4 total length covers tcp header only", link: LinkTypeEthernet,
			data: patch(plain4, func(b []byte) { binary.BigEndian.PutUint16(b[ipOff+2:], 20+32) }), want: ptr(rest(withTS(want4(0), 100, 200), testPayload))},
		{name: "ipv4 DF is not a fragment", link: LinkTypeEthernet, data: plain4, want: ptr(withTS(want4(testPayload), 100, 200))},
		{name: "ipv4 first fragment (MF)", link: LinkTypeEthernet,
			data: patch(plain4, func(b []byte) { b[ipOff+6] = 0x20 }), err: NotTCP},
		{name: "ipv4 last fragment (offset)", link: LinkTypeEthernet,
			data: patch(plain4, func(b []byte) { b[ipOff+6], b[ipOff+7] = 0x00, 0x10 }), err: NotTCP},
		{name: "ipv4 padding ignored", link: LinkTypeEthernet,
			// gopacket pads the frame to 60 bytes; 6 more make 66.
			data: append(serialize(t, eth(layers.EthernetTypeIPv4), ip4(), tcp()), 0, 0, 0, 0, 0, 0),
			want: ptr(rest(want4(0), 12))},
		{name: "ipv4 snaplen cut payload", link: LinkTypeEthernet,
			data: plain4[:tcpOff+32+10], wire: len(plain4), want: ptr(rest(withTS(want4(testPayload), 100, 200), 10))},
		{name: "ipv4 tso total length 0", link: LinkTypeEthernet,
			data: patch(plain4[:tcpOff+32], func(b []byte) { b[ipOff+2], b[ipOff+3] = 0, 0 }),
			wire: tcpOff + 32 + 64000, want: ptr(rest(withTS(want4(64000), 100, 200), 0))},
		{name: "ipv4 tso total length 0, wire len unknown", link: LinkTypeEthernet,
			data: patch(plain4[:tcpOff+32+7], func(b []byte) { b[ipOff+2], b[ipOff+3] = 0, 0 }),
			want: ptr(withTS(want4(7), 100, 200))},

		// IPv6
		{name: "ipv6 hbh/dst/rt/ah", link: LinkTypeEthernet,
			data: serialize(t, eth(layers.EthernetTypeIPv6), ip6(layers.IPProtocolIPv6HopByHop), hopByHop(layers.IPProtocolIPv6Destination),
				destOpts(layers.IPProtocolIPv6Routing, 0), routingHdr(layers.IPProtocolAH), ahHdr(layers.IPProtocolTCP), tcp(), payload(5)),
			want: ptr(want6(5))},
		{name: "ipv6 8 ext headers", link: LinkTypeEthernet,
			data: serialize(t, eth(layers.EthernetTypeIPv6), ip6(layers.IPProtocolIPv6Destination),
				destOpts(60, 0), destOpts(60, 0), destOpts(60, 0), destOpts(60, 0), destOpts(60, 0), destOpts(60, 0), destOpts(60, 0), destOpts(6, 0),
				tcp(), payload(5)),
			want: ptr(want6(5))},
		{name: "ipv6 9 ext headers", link: LinkTypeEthernet,
			data: serialize(t, eth(layers.EthernetTypeIPv6), ip6(layers.IPProtocolIPv6Destination),
				destOpts(60, 0), destOpts(60, 0), destOpts(60, 0), destOpts(60, 0), destOpts(60, 0), destOpts(60, 0), destOpts(60, 0), destOpts(60, 0), destOpts(6, 0),
				tcp(), payload(5)),
			err: NotTCP},
		{name: "ipv6 ah shorter than its fixed fields", link: LinkTypeEthernet,
			data: serialize(t, eth(layers.EthernetTypeIPv6), ip6(layers.IPProtocolAH),
				rawLayer(patch(ahHdr(layers.IPProtocolTCP), func(b []byte) { b[1] = 0 })), tcp(), payload(5)),
			err: BadHeader},
		{name: "ipv6 first fragment", link: LinkTypeEthernet,
			data: serialize(t, eth(layers.EthernetTypeIPv6), ip6(layers.IPProtocolIPv6Fragment), fragHdr(6, 0, true), tcp(), payload(5)),
			err:  NotTCP},
		{name: "ipv6 atomic fragment", link: LinkTypeEthernet,
			data: serialize(t, eth(layers.EthernetTypeIPv6), ip6(layers.IPProtocolIPv6Fragment), fragHdr(6, 0, false), tcp(), payload(5)),
			err:  NotTCP},
		{name: "ipv6 esp", link: LinkTypeEthernet,
			data: serialize(t, eth(layers.EthernetTypeIPv6), ip6(layers.IPProtocolESP), payload(40)), err: NotTCP},
		{name: "ipv6 no next header", link: LinkTypeEthernet,
			data: serialize(t, eth(layers.EthernetTypeIPv6), ip6(layers.IPProtocolNoNextHeader), payload(40)), err: NotTCP},
		{name: "ipv6 icmp after hbh", link: LinkTypeEthernet,
			data: serialize(t, eth(layers.EthernetTypeIPv6), ip6(layers.IPProtocolIPv6HopByHop), hopByHop(layers.IPProtocolICMPv6), payload(40)),
			err:  NotTCP},
		{name: "ipv6 payload length inside ext header", link: LinkTypeEthernet,
			data: patch(serialize(t, eth(layers.EthernetTypeIPv6), ip6(layers.IPProtocolIPv6HopByHop), hopByHop(layers.IPProtocolTCP), tcp(), payload(5)),
				func(b []byte) { binary.BigEndian.PutUint16(b[14+4:], 4) }),
			err: BadHeader},
		{name: "ipv6 payload length inside tcp header", link: LinkTypeEthernet,
			data: patch(serialize(t, eth(layers.EthernetTypeIPv6), ip6(layers.IPProtocolIPv6HopByHop), hopByHop(layers.IPProtocolTCP), tcp(), payload(5)),
				func(b []byte) { binary.BigEndian.PutUint16(b[14+4:], 8+19) }),
			err: BadHeader},
		{name: "ipv6 payload length 0 (big tcp)", link: LinkTypeEthernet,
			data: patch(serialize(t, eth(layers.EthernetTypeIPv6), ip6(layers.IPProtocolTCP), tcp()), func(b []byte) { b[18], b[19] = 0, 0 }),
			wire: 14 + 40 + 20 + 150000, want: ptr(rest(want6(150000), 0))},
		{name: "ipv6 padding ignored", link: LinkTypeEthernet,
			data: append(serialize(t, eth(layers.EthernetTypeIPv6), ip6(layers.IPProtocolTCP), tcp(), payload(2)), 0, 0, 0, 0),
			want: ptr(rest(want6(2), 6))},

		// TCP
		{name: "syn options", link: LinkTypeEthernet,
			data: serialize(t, eth(layers.EthernetTypeIPv4), ip4(), syn), want: &wantSYN},
		{name: "sack 1 block + ts", link: LinkTypeEthernet,
			data: serialize(t, eth(layers.EthernetTypeIPv4), ip4(), tcp(nop(), nop(), ts, nop(), nop(), sackOpt(5, 9))),
			want: ptr(func() Packet {
				p := withTS(want4(0), 100, 200)
				p.NumSACK, p.SACK[0] = 1, SACKBlock{5, 9}
				return p
			}())},
		{name: "sack 3 blocks + ts", link: LinkTypeEthernet,
			data: serialize(t, eth(layers.EthernetTypeIPv4), ip4(), tcp(nop(), nop(), ts, nop(), nop(), sackOpt(1, 2, 3, 4, 0xfffffff0, 0x10))),
			want: ptr(func() Packet {
				p := withTS(want4(0), 100, 200)
				p.NumSACK = 3
				p.SACK = [4]SACKBlock{{1, 2}, {3, 4}, {0xfffffff0, 0x10}}
				return p
			}())},
		{name: "ts after eol is padding", link: LinkTypeEthernet,
			data: serialize(t, eth(layers.EthernetTypeIPv4), ip4(), tcp(mssOpt(1400), eol(), ts)),
			want: ptr(func() Packet { p := want4(0); p.MSS = 1400; return p }())},
		{name: "eol then garbage", link: LinkTypeEthernet,
			data: patch(serialize(t, eth(layers.EthernetTypeIPv4), ip4(), tcp(eol(), nop(), nop(), nop())),
				func(b []byte) { b[tcpOff+21], b[tcpOff+22] = 8, 1 }),
			want: ptr(rest(want4(0), 2))}, // gopacket pads the options past the IP length
		{name: "all nops", link: LinkTypeEthernet,
			data: serialize(t, eth(layers.EthernetTypeIPv4), ip4(), tcp(nop(), nop(), nop(), nop())), want: ptr(rest(want4(0), 2))},
		{name: "option length 1", link: LinkTypeEthernet,
			data: patch(serialize(t, eth(layers.EthernetTypeIPv4), ip4(), tcp(mssOpt(1)), payload(3)), func(b []byte) { b[tcpOff+21] = 1 }),
			err:  BadHeader},
		{name: "option length 0", link: LinkTypeEthernet,
			data: patch(serialize(t, eth(layers.EthernetTypeIPv4), ip4(), tcp(mssOpt(1)), payload(3)), func(b []byte) { b[tcpOff+21] = 0 }),
			err:  BadHeader},
		{name: "option overruns header", link: LinkTypeEthernet,
			data: patch(serialize(t, eth(layers.EthernetTypeIPv4), ip4(), tcp(mssOpt(1)), payload(3)), func(b []byte) { b[tcpOff+21] = 5 }),
			err:  BadHeader},
		{name: "option kind without length byte", link: LinkTypeEthernet,
			data: patch(serialize(t, eth(layers.EthernetTypeIPv4), ip4(), tcp(nop(), nop(), nop(), nop()), payload(3)),
				func(b []byte) { b[tcpOff+23] = 0x22 }),
			err: BadHeader},
		{name: "ts length 8", link: LinkTypeEthernet,
			data: serialize(t, eth(layers.EthernetTypeIPv4), ip4(), tcp(nop(), nop(), layers.TCPOption{OptionType: 8, OptionData: make([]byte, 6)})),
			err:  BadHeader},
		{name: "sack without blocks", link: LinkTypeEthernet,
			data: serialize(t, eth(layers.EthernetTypeIPv4), ip4(), tcp(nop(), nop(), sackOpt())), err: BadHeader},
		{name: "sack half block", link: LinkTypeEthernet,
			data: serialize(t, eth(layers.EthernetTypeIPv4), ip4(), tcp(nop(), nop(), sackOpt(1, 2, 3))), err: BadHeader},
		{name: "mss length 3", link: LinkTypeEthernet,
			data: serialize(t, eth(layers.EthernetTypeIPv4), ip4(), tcp(layers.TCPOption{OptionType: 2, OptionData: []byte{1}})), err: BadHeader},
		{name: "ws length 4", link: LinkTypeEthernet,
			data: serialize(t, eth(layers.EthernetTypeIPv4), ip4(), tcp(layers.TCPOption{OptionType: 3, OptionData: []byte{1, 2}})), err: BadHeader},
		{name: "sack-permitted length 3", link: LinkTypeEthernet,
			data: serialize(t, eth(layers.EthernetTypeIPv4), ip4(), tcp(layers.TCPOption{OptionType: 4, OptionData: []byte{1}})), err: BadHeader},
		{name: "second sack option replaces the first", link: LinkTypeEthernet,
			data: serialize(t, eth(layers.EthernetTypeIPv4), ip4(), tcp(sackOpt(1, 2, 3, 4), sackOpt(5, 6))),
			want: ptr(func() Packet {
				p := want4(0)
				p.NumSACK, p.SACK[0] = 1, SACKBlock{5, 6}
				return p
			}())},
		{name: "unknown option skipped", link: LinkTypeEthernet,
			data: serialize(t, eth(layers.EthernetTypeIPv4), ip4(), tcp(layers.TCPOption{OptionType: 30, OptionData: []byte{1, 2, 3, 4, 5, 6}}, ts)),
			want: ptr(withTS(want4(0), 100, 200))},
		{name: "data offset 4", link: LinkTypeEthernet,
			data: patch(plain4, func(b []byte) { b[tcpOff+12] = 0x40 }), err: BadHeader},
		{name: "data offset 15 beyond capture", link: LinkTypeEthernet,
			data: patch(plain4[:tcpOff+40], func(b []byte) { b[tcpOff+12] = 0xf0 }), wire: len(plain4), err: Truncated},
		{name: "flags", link: LinkTypeEthernet,
			data: patch(plain4, func(b []byte) { b[tcpOff+13] = 0xff }),
			want: ptr(func() Packet { p := withTS(want4(testPayload), 100, 200); p.Flags = 0xff; return p }())},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wire := tc.wire
			if wire == 0 {
				wire = len(tc.data)
			}
			var p Packet
			err := p.Decode(tc.link, tc.data, wire)
			if tc.want == nil && tc.err == OK {
				t.Fatal("bad test case: neither error nor packet expected")
			}
			if tc.want != nil {
				if err != OK {
					t.Fatalf("Decode = %v, want success", err)
				}
				if p != *tc.want {
					t.Fatalf("Decode mismatch\n got %+v\nwant %+v", p, *tc.want)
				}
				return
			}
			if err != tc.err {
				t.Fatalf("Decode = %v, want %v", err, tc.err)
			}
		})
	}
}

func ptr(p Packet) *Packet { return &p }

// rest is p with n bytes captured from its payload's start to the frame's
// end: fewer than PayloadLen when the capture cut the payload, more when
// padding follows it.
func rest(p Packet, n int) Packet {
	p.payloadRest = int32(n)
	return p
}

// TestDecodeTruncation cuts every valid frame at every byte: before the end
// of the TCP header the result must be Truncated, after it the same
// packet as the full frame (the payload length comes from IP, not from the
// captured bytes).
func TestDecodeTruncation(t *testing.T) {
	for _, tc := range validFrames(t) {
		t.Run(tc.name, func(t *testing.T) {
			headerEnd := len(tc.data) - int(tc.want.PayloadLen)
			for cut := 0; cut <= len(tc.data); cut++ {
				var p Packet
				err := p.Decode(tc.link, tc.data[:cut], len(tc.data))
				if cut < headerEnd {
					if err != Truncated {
						t.Fatalf("cut at %d of %d (headers end at %d): Decode = %v, want %v", cut, len(tc.data), headerEnd, err, Truncated)
					}
					continue
				}
				want := tc.want
				want.payloadRest = int32(cut - headerEnd) // the payload bytes captured
				if err != OK || p != want {
					t.Fatalf("cut at %d of %d: Decode = %v, %+v; want %+v", cut, len(tc.data), err, p, want)
				}
			}
		})
	}
}

// TestDecodeOverwrites reuses one Packet across frames: fields a frame does
// not set (SACK blocks, timestamps, IPv6) must not leak from the previous one.
func TestDecodeOverwrites(t *testing.T) {
	frames := validFrames(t)
	var p Packet
	for i := 0; i < 3; i++ { // several rounds so every frame follows every other
		for j := range frames {
			f := frames[(j*(i+2))%len(frames)]
			if err := p.Decode(f.link, f.data, len(f.data)); err != OK {
				t.Fatalf("%s: Decode = %v", f.name, err)
			}
			if p != f.want {
				t.Fatalf("%s after reuse\n got %+v\nwant %+v", f.name, p, f.want)
			}
		}
	}
}

func TestDecodeAllocs(t *testing.T) {
	frames := validFrames(t)
	var p Packet
	allocs := testing.AllocsPerRun(100, func() {
		for _, f := range frames {
			p.Decode(f.link, f.data, len(f.data))
			p.Decode(f.link, f.data[:len(f.data)/3], len(f.data))
		}
	})
	if allocs != 0 {
		t.Fatalf("Decode allocates %v times per run", allocs)
	}
}

// TestStatusErr: OK is no error; every other status is one, its own, with
// its own text.
func TestStatusErr(t *testing.T) {
	tests := []struct {
		s    Status
		want error
	}{
		{OK, nil},
		{NotTCP, ErrNotTCP},
		{Truncated, ErrTruncated},
		{BadHeader, ErrBadHeader},
		{UnsupportedLink, ErrUnsupportedLink},
		{DNS, ErrDNS},
		{numStatuses, errUnknown},
	}
	if len(tests) != NumStatuses+1 {
		t.Fatalf("%d cases for %d statuses and one unknown", len(tests), NumStatuses)
	}
	seen := map[string]Status{}
	for _, tc := range tests {
		if err := tc.s.Err(); err != tc.want {
			t.Errorf("Status(%d).Err() = %v, want %v", tc.s, err, tc.want)
		}
		s := tc.s.String()
		if prev, dup := seen[s]; dup {
			t.Errorf("Status(%d) and Status(%d) share the text %q", prev, tc.s, s)
		}
		seen[s] = tc.s
	}
}

func TestSeqLenAndFlags(t *testing.T) {
	cases := []struct {
		flags                uint8
		payload, seqLen      uint32
		syn, ack, fin, reset bool
	}{
		{flags: FlagSYN, payload: 0, seqLen: 1, syn: true},
		{flags: FlagSYN | FlagACK, payload: 0, seqLen: 1, syn: true, ack: true},
		{flags: FlagACK, payload: 0, seqLen: 0, ack: true},
		{flags: FlagACK | FlagPSH, payload: 1448, seqLen: 1448, ack: true},
		{flags: FlagFIN | FlagACK, payload: 10, seqLen: 11, fin: true, ack: true},
		{flags: FlagSYN | FlagFIN, payload: 5, seqLen: 7, syn: true, fin: true},
		{flags: FlagRST, payload: 0, seqLen: 0, reset: true},
	}
	for _, tc := range cases {
		p := Packet{Flags: tc.flags, PayloadLen: tc.payload}
		if got := p.SeqLen(); got != tc.seqLen {
			t.Errorf("flags %#x payload %d: SeqLen = %d, want %d", tc.flags, tc.payload, got, tc.seqLen)
		}
		if p.SYN() != tc.syn || p.ACK() != tc.ack || p.FIN() != tc.fin || p.RST() != tc.reset {
			t.Errorf("flags %#x: SYN/ACK/FIN/RST = %v/%v/%v/%v", tc.flags, p.SYN(), p.ACK(), p.FIN(), p.RST())
		}
	}
}

// TestDecodeDNS: a UDP datagram from port 53 outside any tunnel is DNS,
// with its payload (the DNS message) reachable through Payload; TCP
// segments from port 53 decode as any other, their payload too.
func TestDecodeDNS(t *testing.T) {
	msg := []byte("0123456789abcdefghij") // stands for a DNS message
	udp := func(src, dst uint16) *layers.UDP {
		return &layers.UDP{SrcPort: layers.UDPPort(src), DstPort: layers.UDPPort(dst)}
	}
	udp4 := func() *layers.IPv4 { ip := ip4(); ip.Protocol = layers.IPProtocolUDP; return ip }
	fromDNS := serialize(t, eth(layers.EthernetTypeIPv4), udp4(), udp(53, 40000), gopacket.Payload(msg))
	const udpOff = 14 + 20
	tcp53 := tcp()
	tcp53.SrcPort = 53
	cases := []struct {
		name    string
		link    LinkType
		data    []byte
		wire    int // 0: len(data)
		st      Status
		payload []byte // what Payload returns when st is DNS or OK
	}{
		{"ipv4", LinkTypeEthernet, fromDNS, 0, DNS, msg},
		{"ipv6", LinkTypeEthernet, serialize(t, eth(layers.EthernetTypeIPv6), ip6(layers.IPProtocolUDP), udp(53, 40000), gopacket.Payload(msg)), 0, DNS, msg},
		{"ipv6 after a hop-by-hop header", LinkTypeRaw, serialize(t, ip6(layers.IPProtocolIPv6HopByHop), hopByHop(layers.IPProtocolUDP), udp(53, 40000), gopacket.Payload(msg)), 0, DNS, msg},
		{"vlan", LinkTypeEthernet, serialize(t, eth(layers.EthernetTypeDot1Q), dot1q(7, layers.EthernetTypeIPv4), udp4(), udp(53, 40000), gopacket.Payload(msg)), 0, DNS, msg},
		{"sll", LinkTypeLinuxSLL, serialize(t, sllHdr(0x0800), udp4(), udp(53, 40000), gopacket.Payload(msg)), 0, DNS, msg},
		{"padding is not payload", LinkTypeEthernet, append(serialize(t, eth(layers.EthernetTypeIPv4), udp4(), udp(53, 40000), gopacket.Payload(msg[:4])), 0, 0, 0, 0), 0, DNS, msg[:4]},
		{"cut by the capture", LinkTypeEthernet, fromDNS[:len(fromDNS)-5], len(fromDNS), DNS, msg[:len(msg)-5]},
		{"udp header only", LinkTypeEthernet, fromDNS[:udpOff+8], len(fromDNS), DNS, []byte{}},
		{"udp header cut", LinkTypeEthernet, fromDNS[:udpOff+7], len(fromDNS), Truncated, nil},
		{"udp length past the ip payload", LinkTypeEthernet, patch(fromDNS, func(b []byte) { binary.BigEndian.PutUint16(b[udpOff+4:], 8+21) }), 0, BadHeader, nil},
		{"udp length below its header", LinkTypeEthernet, patch(fromDNS, func(b []byte) { binary.BigEndian.PutUint16(b[udpOff+4:], 7) }), 0, BadHeader, nil},
		{"udp length shorter than the ip payload", LinkTypeEthernet, patch(fromDNS, func(b []byte) { binary.BigEndian.PutUint16(b[udpOff+4:], 8+3) }), 0, DNS, msg[:3]},
		{"a query to port 53 is not read", LinkTypeEthernet, serialize(t, eth(layers.EthernetTypeIPv4), udp4(), udp(40000, 53), gopacket.Payload(msg)), 0, NotTCP, nil},
		{"fragment", LinkTypeEthernet, patch(fromDNS, func(b []byte) { b[14+6] = 0x20 }), 0, NotTCP, nil},
		{"inside a tunnel", LinkTypeEthernet, serialize(t, eth(layers.EthernetTypeIPv4), outer4(layers.IPProtocolUDP), udpTo(4789), vxlan(1),
			eth(layers.EthernetTypeIPv4), udp4(), udp(53, 40000), gopacket.Payload(msg)), 0, NotTCP, nil},
		{"tcp from port 53", LinkTypeEthernet, serialize(t, eth(layers.EthernetTypeIPv4), ip4(), tcp53, gopacket.Payload(msg)), 0, OK, msg},
		{"tcp inside a tunnel", LinkTypeEthernet, serialize(t, eth(layers.EthernetTypeIPv4), outer4(layers.IPProtocolUDP), udpTo(4789), vxlan(1),
			eth(layers.EthernetTypeIPv4), ip4(), tcp53, gopacket.Payload(msg)), 0, OK, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wire := tc.wire
			if wire == 0 {
				wire = len(tc.data)
			}
			var p Packet
			if st := p.Decode(tc.link, tc.data, wire); st != tc.st {
				t.Fatalf("Decode = %v, want %v", st, tc.st)
			}
			if tc.st != DNS && tc.st != OK {
				return
			}
			if got := p.Payload(tc.data); !bytes.Equal(got, tc.payload) || (got == nil) != (tc.payload == nil) {
				t.Fatalf("Payload = %q, want %q", got, tc.payload)
			}
			if tc.st == DNS && (p.SrcPort != 53 || p.DstPort != 40000) {
				t.Fatalf("ports %d > %d, want 53 > 40000", p.SrcPort, p.DstPort)
			}
		})
	}
}
