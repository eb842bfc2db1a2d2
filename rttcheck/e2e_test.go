package rttcheck

import (
	"net"
	"os"
	"path/filepath"
	"strings"
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

// writeExchangePcap writes a pcap of one TCP connection from client
// 10.0.0.1:40000 to server 10.0.0.2:443 where every answer comes rtt after
// the segment it answers: a handshake, then n request/ACK exchanges.
func writeExchangePcap(t *testing.T, dir string, rtt time.Duration, n int) string {
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

// TestEndToEndReplay runs the real engine over a synthetic capture with a
// known RTT and checks what the check submits.
func TestEndToEndReplay(t *testing.T) {
	dir := t.TempDir()
	const exchanges = 5
	path := writeExchangePcap(t, dir, 10*time.Millisecond, exchanges)
	inst := "interface: file\npcap: " + path + "\nlocal_ips: [10.0.0.1]\nall_remote_hosts: true\nreverse_dns: false\ntags: [env:e2e]"
	c := New(Options{AddInstanceTags: true})
	if err := c.Configure([]byte(inst), nil); err != nil {
		t.Fatal(err)
	}
	defer c.Cancel()

	select {
	case <-c.CaptureDone():
	case <-time.After(10 * time.Second): // a bound on a hang, not a timing assertion
		t.Fatal("replay did not finish")
	}
	r := &recorder{}
	if _, err := c.Run(r, r); err != nil {
		t.Fatal(err)
	}
	if r.checks[0].status != StatusOK {
		t.Fatalf("service check %+v", r.checks[0])
	}
	r.noDuplicates(t)
	wantTags := "src:10.0.0.1,dst:10.0.0.2,iface:file,env:e2e"
	for _, name := range []string{MetricRTT, MetricRTTAvg, MetricRTTMin, MetricRTTMax} {
		got := r.find(name)
		if len(got) != 1 {
			t.Fatalf("%s: %d submissions", name, len(got))
		}
		if tags := strings.Join(got[0].tags, ","); tags != wantTags {
			t.Errorf("%s tags %s, want %s", name, tags, wantTags)
		}
		if got[0].value != 10 {
			t.Errorf("%s = %v ms, want 10", name, got[0].value)
		}
	}
	// Handshake plus one per exchange.
	if s := r.find(MetricRTTSamples); len(s) != 1 || s[0].value != exchanges+1 {
		t.Errorf("samples %+v, want %d", s, exchanges+1)
	}
	if p := r.find(MetricPackets); len(p) != 1 || p[0].value != float64(3+2*exchanges) {
		t.Errorf("packets %+v", p)
	}
	// A second run: nothing new, so no last sample and zero new samples,
	// but the smoothed values are still reported.
	r = &recorder{}
	if _, err := c.Run(r, r); err != nil {
		t.Fatal(err)
	}
	if len(r.find(MetricRTT)) != 0 || len(r.find(MetricRTTAvg)) != 1 {
		t.Errorf("second run: %+v", r.subs)
	}
	if s := r.find(MetricRTTSamples); len(s) != 1 || s[0].value != 0 {
		t.Errorf("second run samples %+v", s)
	}
}

// TestEndToEndReplayErrors checks what a broken replay reports.
func TestEndToEndReplayErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pcap")
	if err := os.WriteFile(garbage, []byte("definitely not a capture file, just text"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, file, want string
	}{
		{"missing", filepath.Join(dir, "missing.pcap"), "missing.pcap"},
		{"not a capture", garbage, "garbage.pcap"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := New(Options{})
			if err := c.Configure([]byte("interface: file\npcap: "+tc.file+"\nall_remote_hosts: true"), nil); err != nil {
				t.Fatal(err)
			}
			defer c.Cancel()
			<-c.CaptureDone()
			r := &recorder{}
			warns, err := c.Run(r, r)
			if err != nil {
				t.Fatal(err)
			}
			sc := r.checks[0]
			if sc.status != StatusCritical || !strings.Contains(sc.message, "cannot replay "+tc.file) || !strings.Contains(sc.message, tc.want) {
				t.Errorf("service check %+v", sc)
			}
			if !containsSub(warns, "cannot replay") {
				t.Errorf("warnings %q", warns)
			}
		})
	}
}
