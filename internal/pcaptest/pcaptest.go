// Package pcaptest writes small pcap files of TCP exchanges with a known
// RTT, for tests that replay them through the engine, the check or the CLI.
package pcaptest

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// Segment is one TCP segment of a synthetic capture of one connection.
type Segment struct {
	At         time.Duration // since the start of the capture
	FromClient bool
	SYN, ACK   bool
	PSH        bool
	Seq, Ack   uint32
	Payload    int // bytes of zeros
}

// Capture is one connection's segments, as an Ethernet pcap file would
// hold them: Client's MAC is 02:00:00:00:00:01, Server's 02:00:00:00:00:02,
// and the first segment's time is 2026-01-02 03:04:05 UTC plus its At.
type Capture struct {
	Client, Server netip.AddrPort // IPv4
	Snaplen        uint32         // the file header's
	Segments       []Segment
}

// WriteExchange writes a pcap of one TCP connection from client
// 10.0.0.1:40000 to server 10.0.0.2:443 where every answer comes rtt after
// the segment it answers: a handshake, then n request/ACK exchanges.
func WriteExchange(t testing.TB, dir string, rtt time.Duration, n int) string {
	t.Helper()
	const isn, sisn = 1000, 5000
	segs := []Segment{
		{At: 0, FromClient: true, SYN: true, Seq: isn},
		{At: rtt, SYN: true, ACK: true, Seq: sisn, Ack: isn + 1},
		{At: rtt + time.Millisecond, FromClient: true, ACK: true, Seq: isn + 1, Ack: sisn + 1},
	}
	seq := uint32(isn + 1)
	at := 2 * rtt
	for i := 0; i < n; i++ {
		segs = append(segs,
			Segment{At: at, FromClient: true, ACK: true, Seq: seq, Ack: sisn + 1, Payload: 100},
			Segment{At: at + rtt, ACK: true, Seq: sisn + 1, Ack: seq + 100})
		seq += 100
		at += 3 * rtt
	}
	path := filepath.Join(dir, "exchange.pcap")
	Capture{
		Client:   netip.MustParseAddrPort("10.0.0.1:40000"),
		Server:   netip.MustParseAddrPort("10.0.0.2:443"),
		Snaplen:  512,
		Segments: segs,
	}.Write(t, path)
	return path
}

// Write writes the capture to path, failing t on any error.
func (c Capture) Write(t testing.TB, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(c.Snaplen, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cmac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	smac := net.HardwareAddr{2, 0, 0, 0, 0, 2}
	cip, sip := net.IP(c.Client.Addr().AsSlice()), net.IP(c.Server.Addr().AsSlice())
	cport, sport := layers.TCPPort(c.Client.Port()), layers.TCPPort(c.Server.Port())
	for i, s := range c.Segments {
		eth := &layers.Ethernet{SrcMAC: smac, DstMAC: cmac, EthernetType: layers.EthernetTypeIPv4}
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: sip, DstIP: cip}
		tcp := &layers.TCP{SrcPort: sport, DstPort: cport, Seq: s.Seq, Ack: s.Ack, SYN: s.SYN, ACK: s.ACK, PSH: s.PSH, Window: 65535}
		if s.FromClient {
			eth.SrcMAC, eth.DstMAC = cmac, smac
			ip.SrcIP, ip.DstIP = cip, sip
			tcp.SrcPort, tcp.DstPort = cport, sport
		}
		if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		buf := gopacket.NewSerializeBuffer()
		opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
		if err := gopacket.SerializeLayers(buf, opts, eth, ip, tcp, gopacket.Payload(make([]byte, s.Payload))); err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
		data := buf.Bytes()
		ci := gopacket.CaptureInfo{Timestamp: base.Add(s.At), CaptureLength: len(data), Length: len(data)}
		if err := w.WritePacket(ci, data); err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
	}
}
