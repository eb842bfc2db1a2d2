package main

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gometro/go-metro/internal/pcaptest"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// vxlanCopy rewrites a bare Ethernet capture with every frame inside VXLAN
// (VNI vni, outer 192.0.2.1 > 192.0.2.2).
func vxlanCopy(t *testing.T, src string, vni uint32) string {
	t.Helper()
	r, out, path := rewriteCapture(t, src, "vxlan.pcap")
	w := pcapgo.NewWriter(out)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 9}
	for {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			break
		}
		buf := gopacket.NewSerializeBuffer()
		err = gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true},
			&layers.Ethernet{SrcMAC: mac, DstMAC: mac, EthernetType: layers.EthernetTypeIPv4},
			&layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IP{192, 0, 2, 1}, DstIP: net.IP{192, 0, 2, 2}},
			&layers.UDP{SrcPort: 50000, DstPort: 4789}, &layers.VXLAN{ValidIDFlag: true, VNI: vni}, gopacket.Payload(data))
		if err != nil {
			t.Fatal(err)
		}
		ci.CaptureLength, ci.Length = len(buf.Bytes()), len(buf.Bytes())
		if err := w.WritePacket(ci, buf.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// TestReplayTunnelJSON: a VXLAN copy of a capture replays to the same flow
// and samples, and the JSON and the table say which tunnel it came in.
func TestReplayTunnelJSON(t *testing.T) {
	bare := pcaptest.WriteExchange(t, t.TempDir(), 10*time.Millisecond, 4)
	decode := func(args ...string) replayOut {
		code, stdout, stderr := run(t, context.Background(), args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
		var out replayOut
		if err := json.Unmarshal([]byte(stdout), &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	want := decode("replay", "--json", bare)
	tun := vxlanCopy(t, bare, 42)
	got := decode("replay", "--json", tun)
	if len(got.Flows) != 1 || len(want.Flows) != 1 {
		t.Fatalf("flows: %d tunnelled, %d bare", len(got.Flows), len(want.Flows))
	}
	if g, w := got.Flows[0].Tunnel, "vxlan vni=42 outer=192.0.2.1,192.0.2.2"; g != w {
		t.Fatalf("tunnel %q, want %q", g, w)
	}
	got.Flows[0].Tunnel = ""
	if got.Flows[0] != want.Flows[0] {
		t.Fatalf("tunnelled flow %+v, bare %+v", got.Flows[0], want.Flows[0])
	}
	if skipped := decode("replay", "--json", "--tunnels", "gre", tun); len(skipped.Flows) != 0 {
		t.Fatalf("--tunnels gre still times VXLAN: %+v", skipped.Flows)
	}
	if code, _, stderr := run(t, context.Background(), "replay", "--tunnels", "nvgre", tun); code == 0 || !strings.Contains(stderr, `--tunnels: unknown encapsulation "nvgre"`) {
		t.Fatalf("bad --tunnels: exit %d, %s", code, stderr)
	}
	_, table, _ := run(t, context.Background(), "replay", tun)
	if !strings.Contains(table, "TUNNEL") || !strings.Contains(table, "vxlan vni=42") {
		t.Fatalf("table has no tunnel column:\n%s", table)
	}
	if _, table, _ = run(t, context.Background(), "replay", bare); strings.Contains(table, "TUNNEL") {
		t.Fatalf("bare table has a tunnel column:\n%s", table)
	}
}
