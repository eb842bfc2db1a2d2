package capture

import (
	"bufio"
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gometro/go-metro/capture/flow"
	"github.com/gometro/go-metro/capture/packet"
	"github.com/gometro/go-metro/internal/synth"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// Tunnel headers for the replay tests, written byte by byte. The decoder's
// reading of each header is checked against gopacket in capture/packet; here
// the point is that a whole capture gives the same flows tunnelled as bare.

func cat(parts ...[]byte) []byte { return slices.Concat(parts...) }

func be16(v int) []byte    { return binary.BigEndian.AppendUint16(nil, uint16(v)) }
func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func ethHdr(etype int) []byte {
	return cat([]byte{2, 0, 0, 0, 0, 0xa, 2, 0, 0, 0, 0, 0xb}, be16(etype))
}

// ip4Hdr is an outer IPv4 header for a payload of n bytes on the wire.
func ip4Hdr(proto byte, n int) []byte {
	return cat([]byte{0x45, 0}, be16(20+n), []byte{0, 1, 0x40, 0, 64, proto, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2})
}

func ip6Hdr(next byte, n int) []byte {
	src := netip.MustParseAddr("2001:db8:ffff::1").As16()
	dst := netip.MustParseAddr("2001:db8:ffff::2").As16()
	return cat([]byte{0x60, 0, 0, 0}, be16(n), []byte{next, 64}, src[:], dst[:])
}

func udpHdr(port, n int) []byte { return cat(be16(49152), be16(port), be16(8+n), be16(0)) }

// tunnelCase builds one frame inside an encapsulation from a bare Ethernet
// frame (eth, its wire length), with tunnel identifier id.
type tunnelCase struct {
	name  string
	encap packet.Encap
	build func(eth []byte, wire int, id uint32) ([]byte, int)
}

// overIP4 and overIP6 put hdr (the headers after the outer IP header) and
// the carried bytes, carriedWire long on the wire, in an outer IP packet.
func overIP4(proto byte, hdr, carried []byte, carriedWire int) ([]byte, int) {
	n := len(hdr) + carriedWire
	return cat(ethHdr(0x0800), ip4Hdr(proto, n), hdr, carried), 14 + 20 + n
}

func overIP6(next byte, hdr, carried []byte, carriedWire int) ([]byte, int) {
	n := len(hdr) + carriedWire
	return cat(ethHdr(0x86dd), ip6Hdr(next, n), hdr, carried), 14 + 40 + n
}

// innerIP strips the Ethernet header and padding from a bare frame.
func innerIP(eth []byte) ([]byte, int) {
	ip := eth[14:]
	n := 40 + int(binary.BigEndian.Uint16(ip[4:6]))
	if ip[0]>>4 == 4 {
		n = int(binary.BigEndian.Uint16(ip[2:4]))
	}
	return ip[:min(n, len(ip))], n
}

func ipProto(ip []byte) byte {
	if ip[0]>>4 == 4 {
		return 4
	}
	return 41
}

func pppProto(ip []byte) int {
	if ip[0]>>4 == 4 {
		return 0x0021
	}
	return 0x0057
}

var tunnelCases = []tunnelCase{
	{"vxlan", packet.EncapVXLAN, func(e []byte, w int, id uint32) ([]byte, int) {
		h := cat([]byte{0x08, 0, 0, 0}, be32(id<<8))
		return overIP4(17, cat(udpHdr(4789, len(h)+w), h), e, w)
	}},
	{"geneve-v6", packet.EncapGeneve, func(e []byte, w int, id uint32) ([]byte, int) {
		h := cat([]byte{2, 0}, be16(0x6558), be32(id<<8), []byte{1, 2, 0x80, 1, 0, 0, 0, 0})
		return overIP6(17, cat(udpHdr(6081, len(h)+w), h), e, w)
	}},
	{"gre-teb-key", packet.EncapGRE, func(e []byte, w int, id uint32) ([]byte, int) {
		return overIP4(47, cat([]byte{0x20, 0}, be16(0x6558), be32(id)), e, w)
	}},
	{"gre-ip", packet.EncapGRE, func(e []byte, w int, id uint32) ([]byte, int) {
		ip, n := innerIP(e)
		et := 0x0800
		if ip[0]>>4 == 6 {
			et = 0x86dd
		}
		return overIP6(47, cat([]byte{0xb0, 0}, be16(et), be32(0), be32(id), be32(7)), ip, n)
	}},
	{"erspan2", packet.EncapGRE | packet.EncapERSPAN, func(e []byte, w int, id uint32) ([]byte, int) {
		return overIP4(47, cat([]byte{0x10, 0}, be16(0x88be), be32(9), be16(0x1000|5), be16(int(id&0x3ff)), be32(0)), e, w)
	}},
	{"erspan3", packet.EncapGRE | packet.EncapERSPAN, func(e []byte, w int, id uint32) ([]byte, int) {
		return overIP4(47, cat([]byte{0x10, 0}, be16(0x22eb), be32(9), be16(0x2000|5), be16(int(id&0x3ff)), be32(123), be16(0), be16(1), make([]byte, 8)), e, w)
	}},
	{"gtpu", packet.EncapGTPU, func(e []byte, w int, id uint32) ([]byte, int) {
		ip, n := innerIP(e)
		h := cat([]byte{0x34, 0xff}, be16(8+n), be32(id), []byte{0, 0, 0, 0x85, 1, 0, 9, 0})
		return overIP4(17, cat(udpHdr(2152, len(h)+n), h), ip, n)
	}},
	{"ipip", packet.EncapIPIP, func(e []byte, w int, id uint32) ([]byte, int) {
		ip, n := innerIP(e)
		return overIP4(ipProto(ip), nil, ip, n)
	}},
	{"ip6ip", packet.EncapIPIP, func(e []byte, w int, id uint32) ([]byte, int) {
		ip, n := innerIP(e)
		return overIP6(ipProto(ip), nil, ip, n)
	}},
	{"pppoe", packet.EncapPPPoE, func(e []byte, w int, id uint32) ([]byte, int) {
		ip, n := innerIP(e)
		return cat(ethHdr(0x8864), []byte{0x11, 0}, be16(int(id&0xffff)), be16(2+n), be16(pppProto(ip)), ip), 14 + 8 + n
	}},
	{"mpls", packet.EncapMPLS, func(e []byte, w int, id uint32) ([]byte, int) {
		ip, n := innerIP(e)
		return cat(ethHdr(0x8847), be32(16<<12|64), be32((id&0xfffff)<<12|0x100|64), ip), 14 + 8 + n
	}},
	{"mpls-pw", packet.EncapMPLS, func(e []byte, w int, id uint32) ([]byte, int) {
		return cat(ethHdr(0x8847), be32((id&0xfffff)<<12|0x100|64), be32(0), e), 14 + 8 + w
	}},
	{"pbb", packet.EncapPBB, func(e []byte, w int, id uint32) ([]byte, int) {
		// The I-TAG's TCI and I-SID, then the customer frame from its
		// destination address on.
		return cat(ethHdr(0x88e7), be32(id&0xffffff), e), 14 + 4 + w
	}},
}

// writeTunnelled writes c with every frame encapsulated once per id.
func writeTunnelled(t *testing.T, c *synth.Capture, tc tunnelCase, ids ...uint32) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), tc.name+".pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	bw := bufio.NewWriter(f)
	w := pcapgo.NewWriterNanos(bw)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for _, fr := range c.Frames {
		for _, id := range ids {
			data, wire := tc.build(fr.Data, int(fr.WireLen), id)
			ci := gopacket.CaptureInfo{Timestamp: time.Unix(0, fr.TS), CaptureLength: len(data), Length: wire}
			if err := w.WritePacket(ci, data); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	return path
}

// sameFlow is what must not change when a flow travels in a tunnel.
type sameFlow struct {
	Local, Remote netip.AddrPort
	FirstSeen     int64
	RTT           any
	Packets       uint64
	Retransmits   uint64
	Closed        bool
}

func flowsOf(fs []flow.Summary) []sameFlow {
	out := make([]sameFlow, 0, len(fs))
	for _, f := range fs {
		out = append(out, sameFlow{f.Local, f.Remote, f.FirstSeen, f.RTT, f.Packets, f.Retransmits, f.Closed})
	}
	slices.SortFunc(out, func(a, b sameFlow) int {
		if c := a.Local.Compare(b.Local); c != 0 {
			return c
		}
		if c := a.Remote.Compare(b.Remote); c != 0 {
			return c
		}
		return int(a.FirstSeen - b.FirstSeen)
	})
	return out
}

// TestReplayTunnelled replays the simulated capture bare and inside each
// encapsulation: the same flows with the same RTT samples, every one
// marked with its tunnel; and the same capture in two VNIs (tenants with
// identical inner addresses) gives every flow twice, each the bare one.
func TestReplayTunnelled(t *testing.T) {
	c := synth.Generate(synth.Small())
	var local []netip.Prefix
	for _, a := range c.LocalIPs {
		local = append(local, netip.PrefixFrom(a, a.BitLen()))
	}
	bare := replay(t, Config{File: writeCapture(t, c), LocalIPs: local})
	want := flowsOf(bare.Flows)
	if len(want) < 10 {
		t.Fatalf("only %d flows in the bare capture", len(want))
	}
	for _, tc := range tunnelCases {
		t.Run(tc.name, func(t *testing.T) {
			s := replay(t, Config{File: writeTunnelled(t, c, tc, 42), LocalIPs: local})
			if s.Stats.Malformed() != 0 || s.Stats.TCPPackets != bare.Stats.TCPPackets || s.Stats.Tunnelled != s.Stats.TCPPackets {
				t.Fatalf("stats %+v, bare %+v", s.Stats, bare.Stats)
			}
			if got := flowsOf(s.Flows); !slices.Equal(got, want) {
				t.Fatalf("%d flows differ from the %d bare ones", len(got), len(want))
			}
			for _, f := range s.Flows {
				if f.Tunnel.Encaps != tc.encap {
					t.Fatalf("flow %v>%v tunnel %q, want %v", f.Local, f.Remote, f.Tunnel, tc.encap)
				}
			}

			// Two tenants, same inner addresses.
			two := replay(t, Config{File: writeTunnelled(t, c, tc, 1, 2), LocalIPs: local})
			var byID [2][]flow.Summary
			for _, f := range two.Flows {
				i := 0
				if f.Tunnel.ID == 2 {
					i = 1
				}
				byID[i] = append(byID[i], f)
			}
			split := tc.encap&(packet.EncapGTPU|packet.EncapMPLS|packet.EncapIPIP) == 0
			if !split {
				// GTP-U TEIDs and MPLS labels differ per direction and are
				// not in the key, IP-in-IP has no ID: the copies merge
				// (as duplicates; the duplicate handling decides).
				if len(byID[1]) != 0 {
					t.Fatalf("%d flows keyed by a per-direction ID", len(byID[1]))
				}
				return
			}
			for i := range byID {
				if got := flowsOf(byID[i]); !slices.Equal(got, want) {
					t.Fatalf("tunnel id %d: %d flows differ from the %d bare ones", i+1, len(got), len(want))
				}
			}
		})
	}
}

// TestTunnelsExpected checks Config.Tunnels: a replay lists only the
// encapsulations it names and counts the others; a live engine expects none
// unless told.
func TestTunnelsExpected(t *testing.T) {
	c := synth.Generate(synth.Small())
	c.Frames = c.Frames[:2000]
	path := writeTunnelled(t, c, tunnelCases[0], 7) // vxlan
	s := replay(t, Config{File: path, Tunnels: packet.EncapGRE})
	if len(s.Flows) != 0 || s.Stats.TunnelSkipped == 0 || s.Stats.TCPPackets != 0 {
		t.Fatalf("GRE only: %d flows, %d skipped, %d TCP", len(s.Flows), s.Stats.TunnelSkipped, s.Stats.TCPPackets)
	}
	s = replay(t, Config{File: path, Tunnels: packet.EncapVXLAN | packet.EncapGRE})
	if len(s.Flows) == 0 || s.Stats.TunnelSkipped != 0 {
		t.Fatalf("VXLAN listed: %d flows, %d skipped", len(s.Flows), s.Stats.TunnelSkipped)
	}
	// Remotes match the inner connection, never the outer addresses
	// (192.0.2.1 > 192.0.2.2 in writeTunnelled's VXLAN).
	remote := c.Flows[c.Frames[0].Flow].Remote.Addr()
	s = replay(t, Config{File: path, Remotes: []netip.Prefix{netip.PrefixFrom(remote, remote.BitLen())}})
	if len(s.Flows) == 0 {
		t.Fatal("no flow to the monitored inner remote")
	}
	for _, f := range s.Flows {
		if f.Remote.Addr().Unmap() != remote {
			t.Fatalf("flow to %v tracked, only %v is monitored", f.Remote, remote)
		}
	}
	s = replay(t, Config{File: path, Remotes: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}})
	if len(s.Flows) != 0 || s.Stats.Flow.Filtered == 0 {
		t.Fatalf("outer addresses monitored: %d flows, %d filtered", len(s.Flows), s.Stats.Flow.Filtered)
	}

	for _, tc := range []struct {
		cfg  Config
		want packet.Encap
	}{
		{Config{Interface: "eth0"}, 0},
		{Config{Interface: "eth0", Tunnels: packet.EncapMPLS}, packet.EncapMPLS},
		{Config{File: "x.pcap"}, packet.EncapAll},
		{Config{File: "x.pcap", Tunnels: packet.EncapPBB}, packet.EncapPBB},
	} {
		if got := expectedTunnels(&tc.cfg); got != tc.want {
			t.Errorf("%+v: expected %v, want %v", tc.cfg, got, tc.want)
		}
	}
}
