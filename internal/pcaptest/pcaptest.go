// Package pcaptest writes small pcap files of TCP exchanges with a known
// RTT, for tests that replay them through the engine, the check or the CLI.
package pcaptest

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// segment is one frame of a synthetic capture.
type segment struct {
	at           time.Duration // since the start of the capture
	fromClient   bool
	syn, ack     bool
	seq, ackNum  uint32
	payloadBytes int
}

// WriteExchange writes a pcap of one TCP connection from client
// 10.0.0.1:40000 to server 10.0.0.2:443 where every answer comes rtt after
// the segment it answers: a handshake, then n request/ACK exchanges.
func WriteExchange(t testing.TB, dir string, rtt time.Duration, n int) string {
	t.Helper()
	const isn, sisn = 1000, 5000
	segs := []segment{
		{at: 0, fromClient: true, syn: true, seq: isn},
		{at: rtt, syn: true, ack: true, seq: sisn, ackNum: isn + 1},
		{at: rtt + time.Millisecond, fromClient: true, ack: true, seq: isn + 1, ackNum: sisn + 1},
	}
	seq := uint32(isn + 1)
	at := 2 * rtt
	for i := 0; i < n; i++ {
		segs = append(segs,
			segment{at: at, fromClient: true, ack: true, seq: seq, ackNum: sisn + 1, payloadBytes: 100},
			segment{at: at + rtt, ack: true, seq: sisn + 1, ackNum: seq + 100})
		seq += 100
		at += 3 * rtt
	}
	path := filepath.Join(dir, "exchange.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(512, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cmac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	smac := net.HardwareAddr{2, 0, 0, 0, 0, 2}
	cip, sip := net.IPv4(10, 0, 0, 1).To4(), net.IPv4(10, 0, 0, 2).To4()
	for _, s := range segs {
		eth := &layers.Ethernet{SrcMAC: smac, DstMAC: cmac, EthernetType: layers.EthernetTypeIPv4}
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: sip, DstIP: cip}
		tcp := &layers.TCP{SrcPort: 443, DstPort: 40000, Seq: s.seq, Ack: s.ackNum, SYN: s.syn, ACK: s.ack, Window: 65535}
		if s.fromClient {
			eth.SrcMAC, eth.DstMAC = cmac, smac
			ip.SrcIP, ip.DstIP = cip, sip
			tcp.SrcPort, tcp.DstPort = 40000, 443
		}
		if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		buf := gopacket.NewSerializeBuffer()
		opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
		if err := gopacket.SerializeLayers(buf, opts, eth, ip, tcp, gopacket.Payload(make([]byte, s.payloadBytes))); err != nil {
			t.Fatal(err)
		}
		data := buf.Bytes()
		ci := gopacket.CaptureInfo{Timestamp: base.Add(s.at), CaptureLength: len(data), Length: len(data)}
		if err := w.WritePacket(ci, data); err != nil {
			t.Fatal(err)
		}
	}
	return path
}
