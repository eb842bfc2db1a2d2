package filter

import (
	"net/netip"
	"testing"

	"github.com/gometro/go-metro/capture/packet"
	"github.com/google/gopacket/layers"
	"golang.org/x/net/bpf"
)

// TestWithDNS: UDP and TCP from port 53 pass whole whatever the remotes and
// ports; every other frame gets what the program without the DNS check
// gives it, to the byte.
func TestWithDNS(t *testing.T) {
	remotes := []netip.Prefix{netip.MustParsePrefix("192.0.2.10/32"), netip.MustParsePrefix("2001:db8::10/128")}
	udp := layers.IPProtocolUDP
	frames := []struct {
		name  string
		f     frame
		whole bool
	}{
		{"udp answer", frame{src: "198.51.100.53", dst: "10.0.0.1", sport: 53, dport: 40000, proto: udp}, true},
		{"udp answer, ipv6", frame{src: "2001:db8:53::1", dst: "2001:db8::1", sport: 53, dport: 40000, proto: udp}, true},
		{"tcp answer, IHL 8", frame{src: "198.51.100.53", dst: "10.0.0.1", sport: 53, dport: 40000, ihl: 8}, true},
		{"udp answer, vlan", frame{src: "198.51.100.53", dst: "10.0.0.1", sport: 53, dport: 40000, proto: udp, vlans: 1}, true},
		{"udp answer, qinq, ipv6", frame{src: "2001:db8:53::1", dst: "2001:db8::1", sport: 53, dport: 40000, proto: udp, vlans: 2}, true},
		{"tcp answer", frame{src: "198.51.100.53", dst: "10.0.0.1", sport: 53, dport: 40000}, true},
		{"tcp answer, ipv6", frame{src: "2001:db8:53::1", dst: "2001:db8::1", sport: 53, dport: 40000}, true},
		{"tcp answer from a monitored remote", frame{src: "192.0.2.10", dst: "10.0.0.1", sport: 53, dport: 40000}, true},
		{"udp query", frame{src: "10.0.0.1", dst: "198.51.100.53", sport: 40000, dport: 53, proto: udp}, false},
		{"tcp query to a monitored remote", frame{src: "10.0.0.1", dst: "192.0.2.10", sport: 40000, dport: 53}, false},
		{"udp answer fragment", frame{src: "198.51.100.53", dst: "10.0.0.1", sport: 53, dport: 40000, proto: udp, fragOff: 185}, false},
		{"udp answer behind an ipv6 extension header", frame{src: "2001:db8:53::1", dst: "2001:db8::1", sport: 53, dport: 40000, proto: udp, v6ext: true}, false},
		{"udp answer behind three tags", frame{src: "198.51.100.53", dst: "10.0.0.1", sport: 53, dport: 40000, proto: udp, vlans: 3}, false},
		{"other udp", frame{src: "192.0.2.10", dst: "10.0.0.1", sport: 54, dport: 40000, proto: udp}, false},
		{"tcp to a monitored remote", frame{src: "10.0.0.1", dst: "192.0.2.10", sport: 40000, dport: 443}, false},
		{"tcp to a monitored remote, ipv6", frame{src: "2001:db8::1", dst: "2001:db8::10", sport: 40000, dport: 443, tcpOptWords: 3}, false},
		{"tcp to another remote", frame{src: "10.0.0.1", dst: "192.0.2.11", sport: 40000, dport: 443}, false},
		{"tcp to another remote, ipv6 extension header", frame{src: "2001:db8::1", dst: "2001:db8::11", sport: 53, dport: 443, v6ext: true}, false},
	}
	type base struct {
		name string
		prog func(link packet.LinkType) []bpf.RawInstruction
	}
	bases := []base{
		{"remotes and ports", func(link packet.LinkType) []bpf.RawInstruction {
			p, err := Build(link, remotes, []uint16{443}, snap)
			if err != nil {
				t.Fatal(err)
			}
			return p
		}},
		{"tunnels", func(link packet.LinkType) []bpf.RawInstruction {
			p, err := Build(link, remotes, nil, snap)
			if err == nil {
				p, err = WithTunnels(p, link, packet.EncapAll, snap)
			}
			if err != nil {
				t.Fatal(err)
			}
			return p
		}},
		{"none", func(packet.LinkType) []bpf.RawInstruction { return nil }},
	}
	for _, b := range bases {
		for _, link := range []packet.LinkType{packet.LinkTypeEthernet, packet.LinkTypeRaw} {
			plain := b.prog(link)
			if plain == nil {
				plain = []bpf.RawInstruction{{Op: 0x06, K: snap}}
			}
			prog, err := WithDNS(b.prog(link), link, snap)
			if err != nil {
				t.Fatal(err)
			}
			for _, fc := range frames {
				if link != packet.LinkTypeEthernet && fc.f.vlans > 0 {
					continue
				}
				data := fc.f.build(t, link)
				got, without := kept(t, prog, data), kept(t, plain, data)
				if fc.whole && got != len(data) {
					t.Errorf("%s, %s, %s: kept %d of %d bytes, want all", b.name, linkName(link), fc.name, got, len(data))
				}
				if !fc.whole && got != without {
					t.Errorf("%s, %s, %s: kept %d bytes, the program alone %d", b.name, linkName(link), fc.name, got, without)
				}
			}
		}
	}
}

// TestWithDNSLinkTypes: the cooked and raw link types find the answer too.
func TestWithDNSLinkTypes(t *testing.T) {
	answer4 := frame{src: "198.51.100.53", dst: "10.0.0.1", sport: 53, dport: 40000, proto: layers.IPProtocolUDP}
	answer6 := frame{src: "2001:db8:53::1", dst: "2001:db8::1", sport: 53, dport: 40000, proto: layers.IPProtocolUDP}
	other := frame{src: "198.51.100.53", dst: "10.0.0.1", sport: 5353, dport: 40000, proto: layers.IPProtocolUDP}
	sll := func(proto uint16) []byte { h := make([]byte, 16); h[14], h[15] = byte(proto>>8), byte(proto); return h }
	sll2 := func(proto uint16) []byte { h := make([]byte, 20); h[0], h[1] = byte(proto>>8), byte(proto); return h }
	for _, tc := range []struct {
		name   string
		link   packet.LinkType
		header []byte
		f      frame
		whole  bool
	}{
		{"sll v4", packet.LinkTypeLinuxSLL, sll(0x0800), answer4, true},
		{"sll v6", packet.LinkTypeLinuxSLL, sll(0x86dd), answer6, true},
		{"sll other", packet.LinkTypeLinuxSLL, sll(0x0800), other, false},
		{"sll2 v4", packet.LinkTypeSLL2, sll2(0x0800), answer4, true},
		{"sll2 v6", packet.LinkTypeSLL2, sll2(0x86dd), answer6, true},
		{"ipv4", packet.LinkTypeIPv4, nil, answer4, true},
		{"ipv6", packet.LinkTypeIPv6, nil, answer6, true},
	} {
		prog, err := WithDNS(nil, tc.link, snap)
		if err != nil {
			t.Fatal(err)
		}
		data := append(tc.header, tc.f.build(t, packet.LinkTypeRaw)...)
		want := min(len(data), snap)
		if tc.whole {
			want = len(data)
		}
		if got := kept(t, prog, data); got != want {
			t.Errorf("%s: kept %d bytes, want %d", tc.name, got, want)
		}
	}
}

// TestFitDNS: every level Fit may install keeps answers whole, and a
// program that no longer fits with the DNS check falls back a level.
func TestFitDNS(t *testing.T) {
	answer := frame{src: "198.51.100.53", dst: "10.0.0.1", sport: 53, dport: 40000, proto: layers.IPProtocolUDP}
	data := answer.build(t, packet.LinkTypeEthernet)
	for _, n := range []int{10, 225} {
		p, err := Fit(packet.LinkTypeEthernet, hosts6(n, 1000), []uint16{443}, snap, Pass{DNS: true}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := kept(t, p.Instructions, data); got != len(data) {
			t.Errorf("%d remotes, level %v: an answer kept %d of %d bytes", n, p.Level, got, len(data))
		}
		if len(p.Instructions) > MaxInstructions {
			t.Errorf("%d remotes: %d instructions", n, len(p.Instructions))
		}
	}
}

// kept is what the kernel keeps of a frame: what the program returns, at
// most the frame.
func kept(t *testing.T, prog []bpf.RawInstruction, data []byte) int {
	return min(run(t, prog, data), len(data))
}

// TestWithDNSKernelAccepts: the kernel's classic BPF checker takes the
// programs with the DNS check, alone and in front of the others.
func TestWithDNSKernelAccepts(t *testing.T) {
	attach := func(prog []bpf.RawInstruction) error { return attachToSocket(t, prog) }
	remotes := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32")}
	for _, link := range []packet.LinkType{packet.LinkTypeEthernet, packet.LinkTypeLinuxSLL, packet.LinkTypeSLL2,
		packet.LinkTypeRaw, packet.LinkTypeIPv4, packet.LinkTypeIPv6} {
		alone, err := WithDNS(nil, link, snap)
		if err != nil {
			t.Fatal(err)
		}
		p, err := Fit(link, remotes, []uint16{443}, snap, Pass{Tunnels: packet.EncapAll, DNS: true}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, prog := range [][]bpf.RawInstruction{alone, p.Instructions} {
			if err := attach(prog); err != nil {
				t.Errorf("link %d: the kernel refuses a program of %d instructions: %v", link, len(prog), err)
			}
		}
	}
}
