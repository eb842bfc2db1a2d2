package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/gometro/go-metro/internal/pcaptest"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// rewriteCapture opens the pcap src for reading and a new file named name
// in a temporary directory for its rewrite; both close when the test ends.
func rewriteCapture(t *testing.T, src, name string) (r *pcapgo.Reader, out *os.File, path string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	if r, err = pcapgo.NewReader(in); err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(t.TempDir(), name)
	if out, err = os.Create(path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close() })
	return r, out, path
}

// mixedPcapng rewrites the exchange of a pcaptest file as a pcapng with two
// interfaces: the client's frames on an Ethernet interface, the server's,
// stripped of their Ethernet header, on a raw-IP one (as a capture merged
// from a NIC and a tunnel device is).
func mixedPcapng(t *testing.T, pcap string) string {
	t.Helper()
	r, out, path := rewriteCapture(t, pcap, "mixed.pcapng")
	w, err := pcapgo.NewNgWriterInterface(out, pcapgo.NgInterface{LinkType: layers.LinkTypeEthernet, SnapLength: 512}, pcapgo.DefaultNgWriterOptions)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.AddInterface(pcapgo.NgInterface{LinkType: layers.LinkTypeRaw, SnapLength: 512}); err != nil {
		t.Fatal(err)
	}
	for {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			break
		}
		if data[6+5] == 2 { // source MAC 02:..:02, the server
			data = data[14:]
			ci.CaptureLength, ci.Length, ci.InterfaceIndex = len(data), len(data), 1
		}
		if err := w.WritePacket(ci, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestReplayCutAndMixedFiles: a file cut inside a record reports the packets
// before the cut, warns in one line and exits 0; a pcapng whose interfaces
// have different link types is decoded per interface; a file that is not a
// capture still fails.
func TestReplayCutAndMixedFiles(t *testing.T) {
	dir := t.TempDir()
	pcap := pcaptest.WriteExchange(t, dir, 10*time.Millisecond, 4)
	whole, err := os.ReadFile(pcap)
	if err != nil {
		t.Fatal(err)
	}
	// The last frame is the server's ACK of the 4th request: cutting it
	// leaves the handshake and 3 timed exchanges.
	cut := filepath.Join(dir, "cut.pcap")
	if err := os.WriteFile(cut, whole[:len(whole)-7], 0o600); err != nil {
		t.Fatal(err)
	}
	notCapture := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notCapture, []byte("not a capture at all\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		file        string
		code        int
		packets     uint64
		samples     uint64
		truncated   bool
		stderrParts []string
	}{
		{name: "whole", file: pcap, packets: 11, samples: 5},
		{name: "cut inside the last record", file: cut, packets: 10, samples: 4, truncated: true,
			stderrParts: []string{"warning", "cut.pcap", "record 11", "truncated", "before the cut"}},
		{name: "pcapng with Ethernet and raw IP interfaces", file: mixedPcapng(t, pcap), packets: 11, samples: 5},
		{name: "not a capture", file: notCapture, code: 1, stderrParts: []string{"notes.txt", "not a pcap or pcapng"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := run(t, context.Background(), "replay", "--json", tc.file)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, tc.code, stderr)
			}
			for _, p := range tc.stderrParts {
				if !strings.Contains(stderr, p) {
					t.Errorf("stderr %q lacks %q", stderr, p)
				}
			}
			if n := strings.Count(stderr, "warning:"); tc.truncated && n != 1 || !tc.truncated && n != 0 {
				t.Errorf("stderr %q: %d warnings", stderr, n)
			}
			if code != 0 {
				return
			}
			var out replayOut
			if err := json.Unmarshal([]byte(stdout), &out); err != nil {
				t.Fatalf("%v: %s", err, stdout)
			}
			if out.Packets != tc.packets || out.TCPPackets != tc.packets || out.Truncated != tc.truncated || len(out.Flows) != 1 {
				t.Fatalf("packets %d tcp %d truncated %v flows %d, want %d %d %v 1", out.Packets, out.TCPPackets, out.Truncated, len(out.Flows), tc.packets, tc.packets, tc.truncated)
			}
			if f := out.Flows[0]; f.Samples != tc.samples || f.RTTMin != 10 || f.RTTMax != 10 {
				t.Errorf("flow %+v, want %d samples of 10 ms", f, tc.samples)
			}
		})
	}
}

// TestReplayImpossibleTime: a record with a flipped bit in its seconds is
// skipped with a one-line warning, and the flow's RTT stays the exchange's.
// Bit 30 is set in every date since 2004: flipped in a request, it moved
// the request 2^30 s back, and its ACK made a 1,073,741,824,000 ms sample.
func TestReplayImpossibleTime(t *testing.T) {
	src := pcaptest.WriteExchange(t, t.TempDir(), 10*time.Millisecond, 3)
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	// The last request (the next-to-last record): bit 30 of its seconds flipped.
	var records []int
	for off := 24; off < len(data); off += 16 + int(binary.LittleEndian.Uint32(data[off+8:])) {
		records = append(records, off)
	}
	req := records[len(records)-2]
	binary.LittleEndian.PutUint32(data[req:], binary.LittleEndian.Uint32(data[req:])^1<<30)
	path := filepath.Join(t.TempDir(), "flipped.pcap")
	os.WriteFile(path, data, 0o644)

	code, stdout, stderr := run(t, context.Background(), "replay", "--json", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if want := "go-metro: warning: 1 record(s) skipped for an impossible time, no RTT sample taken from them: 1 went back more than 1ms, 0 jumped more than 1h0m0s ahead"; !strings.Contains(stderr, want) {
		t.Errorf("stderr %q lacks %q", stderr, want)
	}
	var out replayOut
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Flows) != 1 || out.Flows[0].RTTMax != 10 || out.Flows[0].Samples != 3 || out.TimeBackwards != 1 {
		t.Errorf("flows %+v, time_backwards %d: want one flow, 3 samples (handshake, 2 requests) of 10 ms", out.Flows, out.TimeBackwards)
	}
}

// TestWriteTableAsTabwriter: the streamed table is byte for byte what a
// text/tabwriter of all the rows wrote, bare and tunnelled.
func TestWriteTableAsTabwriter(t *testing.T) {
	rows := []replayFlow{
		{Src: netip.MustParseAddr("10.0.0.1"), SrcPort: 40000, Dst: netip.MustParseAddr("192.0.2.200"), DstPort: 443, Samples: 12345, RTT: 1.5, RTTAvg: 10.25, RTTJitter: 0.001, RTTMin: 0.5, RTTMax: 1234.5678},
		{Src: netip.MustParseAddr("fd00::1"), SrcPort: 1, Dst: netip.MustParseAddr("fd00::2"), DstPort: 65535},
	}
	head := replayHead{Packets: 9, TCPPackets: 8, DecodeErrors: 1}
	for _, tunnelled := range []bool{false, true} {
		if tunnelled {
			rows[1].Tunnel = "vxlan vni=42 outer=10.0.0.1,10.0.0.2"
		}
		var want strings.Builder
		tw := tabwriter.NewWriter(&want, 2, 4, 2, ' ', tabwriter.AlignRight)
		header := "LOCAL\tREMOTE\tSAMPLES\tRTT_MS\tAVG_MS\tJITTER_MS\tMIN_MS\tMAX_MS\t"
		if tunnelled {
			header += "TUNNEL\t"
		}
		fmt.Fprintln(tw, header)
		for _, f := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t",
				netip.AddrPortFrom(f.Src, f.SrcPort), netip.AddrPortFrom(f.Dst, f.DstPort),
				f.Samples, f.RTT, f.RTTAvg, f.RTTJitter, f.RTTMin, f.RTTMax)
			if tunnelled {
				fmt.Fprintf(tw, "%s\t", f.Tunnel)
			}
			fmt.Fprintln(tw)
		}
		tw.Flush()
		fmt.Fprintf(&want, "%d packets, %d TCP, %d malformed, %d flows\n", head.Packets, head.TCPPackets, head.DecodeErrors, len(rows))
		var got strings.Builder
		if err := writeTable(&got, &head, func(fn func(*replayFlow)) error {
			for i := range rows {
				fn(&rows[i])
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Errorf("tunnelled %v:\n got %q\nwant %q", tunnelled, got.String(), want.String())
		}
		// And the JSON is what json.Encoder writes of the whole output.
		var gotJSON, wantJSON strings.Builder
		json.NewEncoder(&wantJSON).Encode(replayOut{replayHead: head, Flows: rows})
		if err := writeJSON(&gotJSON, &head, func(fn func(*replayFlow)) error {
			for i := range rows {
				fn(&rows[i])
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if gotJSON.String() != wantJSON.String() {
			t.Errorf("JSON:\n got %s\nwant %s", gotJSON.String(), wantJSON.String())
		}
	}
}
