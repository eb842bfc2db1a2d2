package capture

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gometro/go-metro/capture/dns"
	"github.com/gometro/go-metro/capture/packet"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/net/dns/dnsmessage"
)

var (
	dnsLocal    = netip.MustParseAddr("10.0.0.1")
	dnsLocal6   = netip.MustParseAddr("2001:db8:1::1")
	dnsResolver = netip.MustParseAddr("10.0.0.53")
)

// local is the local address of remote's family.
func local(remote netip.Addr) netip.Addr {
	if remote.Is6() {
		return dnsLocal6
	}
	return dnsLocal
}

// answer is a DNS response for question q: its records, name -> address
// (A or AAAA), all with ttl; cnames maps a name to its CNAME target.
func answer(t testing.TB, q string, ttl uint32, cnames map[string]string, addrs map[string]string) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 1, Response: true, RecursionAvailable: true})
	b.EnableCompression()
	check := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	check(b.StartQuestions())
	check(b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(q), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}))
	check(b.StartAnswers())
	for from, to := range cnames {
		check(b.CNAMEResource(dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName(from), Class: dnsmessage.ClassINET, TTL: ttl},
			dnsmessage.CNAMEResource{CNAME: dnsmessage.MustNewName(to)}))
	}
	for name, a := range addrs {
		h := dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName(name), Class: dnsmessage.ClassINET, TTL: ttl}
		if addr := netip.MustParseAddr(a); addr.Is4() {
			check(b.AResource(h, dnsmessage.AResource{A: addr.As4()}))
		} else {
			check(b.AAAAResource(h, dnsmessage.AAAAResource{AAAA: addr.As16()}))
		}
	}
	msg, err := b.Finish()
	check(err)
	return msg
}

func ethIP(src, dst netip.Addr, proto layers.IPProtocol) []gopacket.SerializableLayer {
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, EthernetType: layers.EthernetTypeIPv4}
	if src.Is6() {
		eth.EthernetType = layers.EthernetTypeIPv6
		return []gopacket.SerializableLayer{eth, &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}}
	}
	return []gopacket.SerializableLayer{eth, &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}}
}

func frameOf(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// udpAnswer is msg in a UDP datagram from the resolver's port 53.
func udpAnswer(t testing.TB, msg []byte) []byte {
	return frameOf(t, append(ethIP(dnsResolver, dnsLocal, layers.IPProtocolUDP),
		&layers.UDP{SrcPort: 53, DstPort: 40000}, gopacket.Payload(msg))...)
}

// tcpFrom is a TCP segment from remote:sport to the local host.
func tcpFrom(t testing.TB, remote netip.Addr, sport uint16, syn, ack bool, seq uint32, payload []byte) []byte {
	return frameOf(t, append(ethIP(remote, local(remote), layers.IPProtocolTCP),
		&layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: 40000, SYN: syn, ACK: ack, Seq: seq, Ack: 1, Window: 1000}, gopacket.Payload(payload))...)
}

// tcpTo is a TCP segment from the local host to remote:dport.
func tcpTo(t testing.TB, remote netip.Addr, dport uint16, syn, ack bool, seq uint32) []byte {
	return frameOf(t, append(ethIP(local(remote), remote, layers.IPProtocolTCP),
		&layers.TCP{SrcPort: 40000, DstPort: layers.TCPPort(dport), SYN: syn, ACK: ack, Seq: seq, Window: 1000})...)
}

func dnsEngine(t testing.TB, remotes ...netip.Prefix) *Engine {
	t.Helper()
	e, err := New(Config{File: "memory", LocalIPs: []netip.Prefix{netip.PrefixFrom(dnsLocal, 32), netip.PrefixFrom(dnsLocal6, 128)}, Remotes: remotes, DNSNames: true})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// connect opens a connection to remote at capture time ts (ns).
func connect(t testing.TB, e *Engine, remote netip.Addr, ts int64) {
	var pkt packet.Packet
	for i, f := range [][]byte{tcpTo(t, remote, 443, true, false, 100), tcpFrom(t, remote, 443, true, true, 500, nil), tcpTo(t, remote, 443, false, true, 101)} {
		e.handle(&pkt, packet.LinkTypeEthernet, f, ts+int64(i)*int64(time.Millisecond), len(f))
	}
}

func feed(t testing.TB, e *Engine, ts int64, frames ...[]byte) {
	var pkt packet.Packet
	for _, f := range frames {
		e.handle(&pkt, packet.LinkTypeEthernet, f, ts, len(f))
	}
}

const second = int64(time.Second)

// TestDNSNames: an answer names the addresses it gives by the question's
// name, for connections that begin while it is live; answers over TCP in
// one segment count, split ones and malformed ones are counted and
// skipped.
func TestDNSNames(t *testing.T) {
	web, alias, short, v6 := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("192.0.2.20"), netip.MustParseAddr("192.0.2.30"), netip.MustParseAddr("2001:db8::10")
	// other is in short.example's answer under another name: not the
	// question's, not cached.
	tcpDNS, other, never := netip.MustParseAddr("192.0.2.40"), netip.MustParseAddr("192.0.2.50"), netip.MustParseAddr("192.0.2.60")
	e := dnsEngine(t)
	t0 := 1000 * second
	feed(t, e, t0,
		udpAnswer(t, answer(t, "Web.Example.", 60, nil, map[string]string{"web.example.": web.String()})),
		udpAnswer(t, answer(t, "www.example.", 60, map[string]string{"www.example.": "edge.cdn.example."}, map[string]string{"edge.cdn.example.": alias.String()})),
		udpAnswer(t, answer(t, "short.example.", 1, nil, map[string]string{"short.example.": short.String(), "other.example.": other.String()})),
		udpAnswer(t, answer(t, "v6.example.", 60, nil, map[string]string{"v6.example.": v6.String()})),
	)
	msg := answer(t, "tcp.example.", 60, nil, map[string]string{"tcp.example.": tcpDNS.String()})
	framed := binary.BigEndian.AppendUint16(nil, uint16(len(msg)))
	framed = append(framed, msg...)
	feed(t, e, t0,
		tcpFrom(t, dnsResolver, 53, false, true, 1, framed),
		tcpFrom(t, dnsResolver, 53, false, true, 1, framed[:20]), // split: not read
		tcpFrom(t, dnsResolver, 53, false, true, 21, framed[20:]),
		udpAnswer(t, []byte("\x00\x01\x81\x80\x00\x01\x00\x01 not a message")),
		udpAnswer(t, msg)[:60], // cut by the capture
	)
	// The connections: short.example's answer expired (the 5 s floor)
	// before its connection began.
	for _, a := range []netip.Addr{web, alias, v6, tcpDNS, other, never} {
		connect(t, e, a, t0+second)
	}
	connect(t, e, short, t0+int64(dns.MinTTL))
	s := e.snapshot()
	want := map[netip.Addr]string{web: "web.example", alias: "www.example", v6: "v6.example", tcpDNS: "tcp.example"}
	if len(s.DNSNames) != len(want) {
		t.Errorf("names %v, want %v", s.DNSNames, want)
	}
	for a, n := range want {
		if s.DNSNames[a] != n {
			t.Errorf("%v: %q, want %q (names %v)", a, s.DNSNames[a], n, s.DNSNames)
		}
	}
	if st := s.Stats.DNS; st.Answers != 5 || st.Malformed != 1 || st.Cut != 3 {
		t.Errorf("DNS stats %+v, want 5 answers, 1 malformed, 3 cut", st)
	}
	if s.DNSCached != 5 {
		t.Errorf("%d addresses cached, want 5", s.DNSCached)
	}
	if s.Stats.Malformed() != 0 {
		t.Errorf("%d frames counted as malformed: DNS answers are not", s.Stats.Malformed())
	}
	// A new answer moves a name to a new address: connections to it are
	// named from then on, and those that began with the old one keep
	// theirs while the answer that named them is cached.
	moved := netip.MustParseAddr("192.0.2.11")
	feed(t, e, t0+120*second, udpAnswer(t, answer(t, "web.example.", 60, nil, map[string]string{"web.example.": moved.String()})))
	connect(t, e, moved, t0+121*second)
	if s := e.snapshot(); s.DNSNames[moved] != "web.example" || s.DNSNames[web] != "web.example" {
		t.Errorf("after the move: %v", s.DNSNames)
	}
}

// TestDNSNamesMonitoredOnly: with remotes configured, only their addresses
// are cached.
func TestDNSNamesMonitoredOnly(t *testing.T) {
	e := dnsEngine(t, netip.MustParsePrefix("192.0.2.0/24"))
	feed(t, e, second,
		udpAnswer(t, answer(t, "in.example.", 60, nil, map[string]string{"in.example.": "192.0.2.1"})),
		udpAnswer(t, answer(t, "out.example.", 60, nil, map[string]string{"out.example.": "198.51.100.1"})))
	if s := e.snapshot(); s.DNSCached != 1 || s.Stats.DNS.Answers != 2 {
		t.Errorf("%d cached of %d answers, want 1 of 2", s.DNSCached, s.Stats.DNS.Answers)
	}
}

// TestDNSNamesOff: without Config.DNSNames answers are not read.
func TestDNSNamesOff(t *testing.T) {
	e, err := New(Config{File: "memory", LocalIPs: []netip.Prefix{netip.PrefixFrom(dnsLocal, 32)}})
	if err != nil {
		t.Fatal(err)
	}
	feed(t, e, second, udpAnswer(t, answer(t, "web.example.", 60, nil, map[string]string{"web.example.": "192.0.2.1"})))
	connect(t, e, netip.MustParseAddr("192.0.2.1"), 2*second)
	if s := e.snapshot(); s.DNSNames != nil || s.Stats.DNS != (DNSStats{}) || s.Stats.DecodeErrors[packet.DNS] != 1 {
		t.Errorf("names %v, stats %+v, %d DNS datagrams", s.DNSNames, s.Stats.DNS, s.Stats.DecodeErrors[packet.DNS])
	}
}

// TestDNSNamesNoAllocation: reading answers allocates nothing per packet.
func TestDNSNamesNoAllocation(t *testing.T) {
	e := dnsEngine(t)
	msg := answer(t, "www.example.", 60, map[string]string{"www.example.": "edge.cdn.example."}, map[string]string{"edge.cdn.example.": "192.0.2.20"})
	framed := append(binary.BigEndian.AppendUint16(nil, uint16(len(msg))), msg...)
	frames := [][]byte{udpAnswer(t, msg), tcpFrom(t, dnsResolver, 53, false, true, 1, framed), udpAnswer(t, []byte("\x00\x01\x81\x80 broken"))}
	var pkt packet.Packet
	ts := second
	if n := testing.AllocsPerRun(100, func() {
		for _, f := range frames {
			e.handle(&pkt, packet.LinkTypeEthernet, f, ts, len(f))
			ts += second
		}
	}); n != 0 {
		t.Fatalf("%v allocations per run", n)
	}
}

// BenchmarkDNSAnswer: the engine's cost of one DNS answer, a UDP datagram
// with a CNAME chain to two addresses: decode, parse, two cache puts.
func BenchmarkDNSAnswer(b *testing.B) {
	e := dnsEngine(b)
	f := udpAnswer(b, answer(b, "www.example.", 60, map[string]string{"www.example.": "edge.cdn.example."},
		map[string]string{"edge.cdn.example.": "192.0.2.20", "www.example.": "192.0.2.21"}))
	var pkt packet.Packet
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		e.handle(&pkt, packet.LinkTypeEthernet, f, second+int64(i), len(f))
	}
	if e.workers[0].stats.DNS.Answers != uint64(b.N) {
		b.Fatalf("%d answers read of %d", e.workers[0].stats.DNS.Answers, b.N)
	}
}
