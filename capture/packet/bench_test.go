package packet

import (
	"strings"
	"testing"

	"github.com/google/gopacket/layers"
)

// BenchmarkDecode measures Decode on representative frames, one sub-benchmark
// each. Frames are headers plus a short payload, as a 128-byte snaplen
// capture delivers them.
func BenchmarkDecode(b *testing.B) {
	ts := tsOpt(0x01020304, 0x05060708)
	frames := []struct {
		name string
		link LinkType
		data []byte
	}{
		{"eth-ipv4-tcp-ts", LinkTypeEthernet,
			serialize(b, eth(layers.EthernetTypeIPv4), ip4(), tcp(nop(), nop(), ts), payload(1400))},
		{"eth-vlan-ipv4-tcp-ts", LinkTypeEthernet,
			serialize(b, eth(layers.EthernetTypeDot1Q), dot1q(10, layers.EthernetTypeIPv4), ip4(), tcp(nop(), nop(), ts), payload(1400))},
		{"eth-ipv6-dstopts-tcp-ts", LinkTypeEthernet,
			serialize(b, eth(layers.EthernetTypeIPv6), ip6(layers.IPProtocolIPv6Destination), destOpts(layers.IPProtocolTCP, 0),
				tcp(nop(), nop(), ts), payload(1400))},
		{"sll2-ipv4-tcp-sack-ts", LinkTypeSLL2,
			serialize(b, sll2Hdr(0x0800), ip4(), tcp(nop(), nop(), ts, nop(), nop(), sackOpt(1, 2, 3, 4)), payload(1400))},
		{"eth-ipv4-tcp-syn", LinkTypeEthernet,
			serialize(b, eth(layers.EthernetTypeIPv4), ip4(), tcp(mssOpt(1460), sackPermOpt(), ts, nop(), wsOpt(7)))},
	}
	// Tunnelled frames, cut at MaxTunnelHeaderLen as a tunnel-aware
	// snaplen would.
	for _, fc := range tunnelFrames(b) {
		switch fc.name {
		case "vxlan4/eth/ipv4", "gre-key/teb/eth/ipv4", "erspan2/eth/ipv4", "gtpu-ext/ipv6", "mpls2/ipv4", "ipip4/ipv4", "pppoe/ipv4":
			frames = append(frames, struct {
				name string
				link LinkType
				data []byte
			}{"tun-" + strings.ReplaceAll(fc.name, "/", "-"), fc.link, fc.data})
		}
	}
	for _, f := range frames {
		data := f.data
		limit := 128
		if strings.HasPrefix(f.name, "tun-") {
			limit = MaxTunnelHeaderLen
		}
		if len(data) > limit {
			data = data[:limit]
		}
		b.Run(f.name, func(b *testing.B) {
			b.ReportAllocs()
			var p Packet
			for range b.N {
				if err := p.Decode(f.link, data, len(f.data)); err != OK {
					b.Fatal(err)
				}
			}
		})
	}
}
