package capture

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gometro/go-metro/capture/flow"
	"github.com/gometro/go-metro/internal/synth"
)

// writeCapture writes c to a pcap file in a test directory.
func writeCapture(t *testing.T, c *synth.Capture) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "capture.pcap")
	if err := c.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	return path
}

func replay(t *testing.T, cfg Config) *Snapshot {
	t.Helper()
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Run(context.Background()); err != nil {
		t.Fatalf("Run: %v", err)
	}
	s, err := e.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func byKey(flows []flow.Summary) map[[2]netip.AddrPort]flow.Summary {
	m := map[[2]netip.AddrPort]flow.Summary{}
	for _, f := range flows {
		m[[2]netip.AddrPort{f.Local, f.Remote}] = f
	}
	return m
}

// TestReplayAgainstSimulatedTruth replays a simulated capture (loss,
// retransmissions, delayed ACKs, receive-mostly flows, IPv6, wraparound)
// and compares every flow with what the simulator knows.
func TestReplayAgainstSimulatedTruth(t *testing.T) {
	c := synth.Generate(synth.Small())
	path := writeCapture(t, c)
	var local []netip.Prefix
	for _, a := range c.LocalIPs {
		local = append(local, netip.PrefixFrom(a, a.BitLen()))
	}
	s := replay(t, Config{File: path, LocalIPs: local})
	if s.Stats.Malformed() != 0 {
		t.Fatalf("%d frames failed to decode", s.Stats.Malformed())
	}
	if s.Stats.Packets != uint64(len(c.Frames)) {
		t.Fatalf("read %d packets, capture has %d", s.Stats.Packets, len(c.Frames))
	}
	flows := byKey(s.Flows)
	var worst float64
	for _, tr := range c.Flows {
		got, ok := flows[[2]netip.AddrPort{tr.Local, tr.Remote}]
		if !ok {
			// A flow ended long before the end of the capture may have
			// been expired by the sweep; the replay keeps the defaults.
			if time.Duration(c.Frames[len(c.Frames)-1].TS-tr.LastTS) > DefaultExpTTL {
				continue
			}
			t.Errorf("%v -> %v (%v): flow missing", tr.Local, tr.Remote, tr.Kind)
			continue
		}
		if (tr.SeqRTT.N > 0 || tr.TSRTT.N > 0) && got.RTT.Samples == 0 {
			t.Errorf("%v -> %v (%v): no samples, truth has %d seq + %d echo", tr.Local, tr.Remote, tr.Kind, tr.SeqRTT.N, tr.TSRTT.N)
		}
		if got.RTT.Min > 0 && time.Duration(got.RTT.Min) < tr.PathRTT {
			t.Errorf("%v -> %v (%v): min sample %v below the path RTT %v: a sample was matched to the wrong segment",
				tr.Local, tr.Remote, tr.Kind, time.Duration(got.RTT.Min), tr.PathRTT)
		}
		want := tr.SeqRTT.SRTT
		if tr.Kind == synth.ReqResp {
			want = tr.KernelRTT.SRTT
		}
		if want == 0 || tr.Kind == synth.BulkRecv {
			continue
		}
		rel := float64(time.Duration(got.RTT.SRTT)-want) / float64(want)
		t.Logf("%-9v %v: srtt %v truth %v (%+.2f%%) samples %d/%d (kernel %d) retrans %d",
			tr.Kind, tr.Remote, time.Duration(got.RTT.SRTT).Round(time.Microsecond),
			want.Round(time.Microsecond), 100*rel, got.RTT.Samples, tr.SeqRTT.N, tr.KernelRTT.N, tr.Retransmits)
		switch tr.Kind {
		case synth.ReqResp:
			// Requests here are single segments: the earliest and the
			// last newly acked segment are the same one, and the kernel's
			// rule (KernelRTT: with its timestamp fallback for ACKs of
			// retransmitted data) must be followed exactly.
			worst = max(worst, math.Abs(rel))
			// A sample timed from an echoed TSval is in whole ticks of the
			// sender's 1 ms clock, whose phase the capture only bounds
			// (from the first sighting of each TSval): it can be a tick
			// short, which moves the srtt by 1/8 of it at most.
			fallbacks := float64(tr.KernelRTT.N - tr.SeqRTT.N)
			if math.Abs(float64(time.Duration(got.RTT.SRTT)-want)) > 0.001*float64(want)+fallbacks*float64(time.Millisecond/8) {
				t.Errorf("%v -> %v: srtt %v, truth %v", tr.Local, tr.Remote, time.Duration(got.RTT.SRTT), want)
			}
		case synth.BulkSend:
			// The truth times each ACK from the LAST segment it covers
			// (tshark's ack_rtt), the engine from the EARLIEST (the
			// kernel's rule), so the engine can only be higher.
			if rel < -0.01 {
				t.Errorf("%v -> %v: srtt %v below the last-segment truth %v", tr.Local, tr.Remote, time.Duration(got.RTT.SRTT), want)
			}
		}
	}
	t.Logf("request/response flows: worst SRTT difference vs truth %.3f%%", 100*worst)
}

func TestInferLocalFindsTheCapturingHost(t *testing.T) {
	c := synth.Generate(synth.Small())
	path := writeCapture(t, c)
	s := replay(t, Config{File: path})
	if !s.InferredLocal {
		t.Fatal("InferredLocal not set")
	}
	want := map[netip.Addr]bool{}
	for _, a := range c.LocalIPs {
		want[a] = true
	}
	if len(s.LocalIPs) != len(want) {
		t.Fatalf("inferred %v, want %v", s.LocalIPs, c.LocalIPs)
	}
	for _, a := range s.LocalIPs {
		if !want[a] {
			t.Fatalf("inferred %v, want %v", s.LocalIPs, c.LocalIPs)
		}
	}
}

// SetLocalIPs decides which end of a flow is local, as Config.LocalIPs
// does; an invalid prefix changes nothing.
func TestSetLocalIPs(t *testing.T) {
	c := synth.Generate(synth.Small())
	path := writeCapture(t, c)
	// A local address the capture never holds keeps the engine from
	// inferring the local side: only SetLocalIPs can make it right.
	e, err := New(Config{File: path, LocalIPs: []netip.Prefix{netip.MustParsePrefix("192.0.2.99/32")}})
	if err != nil {
		t.Fatal(err)
	}
	var local []netip.Prefix
	for _, a := range c.LocalIPs {
		local = append(local, netip.PrefixFrom(a, a.BitLen()))
	}
	if err := e.SetLocalIPs(local); err != nil {
		t.Fatal(err)
	}
	if err := e.SetLocalIPs([]netip.Prefix{{}}); err == nil {
		t.Error("SetLocalIPs accepted an invalid prefix")
	}
	if err := e.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	s, err := e.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.InferredLocal || len(s.Flows) == 0 {
		t.Fatalf("inferred %v, %d flows", s.InferredLocal, len(s.Flows))
	}
	for _, f := range s.Flows {
		if !slices.Contains(c.LocalIPs, f.Local.Addr()) {
			t.Errorf("flow %v -> %v: the local end is not one of %v", f.Local, f.Remote, c.LocalIPs)
		}
	}
	want := slices.SortedFunc(slices.Values(c.LocalIPs), netip.Addr.Compare)
	if !slices.Equal(s.LocalIPs, want) {
		t.Errorf("Snapshot.LocalIPs %v, want %v", s.LocalIPs, c.LocalIPs)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"nothing to read", Config{}},
		{"negative snaplen", Config{Interface: "lo", Snaplen: -1}},
		{"negative max flows", Config{Interface: "lo", MaxFlows: -1}},
		{"negative ttl", Config{Interface: "lo", IdleTTL: -time.Second}},
		{"invalid remote", Config{Interface: "lo", Remotes: []netip.Prefix{{}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg); err == nil {
				t.Fatal("New accepted a bad config")
			}
		})
	}
}

func TestRunReportsBadFiles(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pcap")
	if err := os.WriteFile(garbage, []byte("this is not a capture file at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{garbage, filepath.Join(dir, "missing.pcap")} {
		e, err := New(Config{File: path, LocalIPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32")}})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Run(context.Background()); err == nil {
			t.Fatalf("Run(%s) succeeded", path)
		}
	}
}

// replayedSmall is an engine that has replayed synth.Small's capture.
func replayedSmall(t *testing.T) *Engine {
	t.Helper()
	e, err := New(Config{File: writeCapture(t, synth.Generate(synth.Small()))})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestEachFlow: EachFlow lists the flows Snapshot copies, in flow.Order,
// and refuses while Run is active.
func TestEachFlow(t *testing.T) {
	e := replayedSmall(t)
	var listed []flow.Summary
	if err := e.EachFlow(func(f *flow.Summary) { listed = append(listed, *f) }); err != nil {
		t.Fatal(err)
	}
	s, err := e.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(s.Flows, func(a, b flow.Summary) int { return flow.Order(&a, &b) })
	if len(listed) != len(s.Flows) || len(listed) < 30 {
		t.Fatalf("%d flows listed, %d in the snapshot", len(listed), len(s.Flows))
	}
	for i := range listed {
		if listed[i].Local != s.Flows[i].Local || listed[i].Remote != s.Flows[i].Remote || listed[i].FirstSeen != s.Flows[i].FirstSeen {
			t.Fatalf("flow %d: listed %v-%v, snapshot in order %v-%v", i, listed[i].Local, listed[i].Remote, s.Flows[i].Local, s.Flows[i].Remote)
		}
	}
	e.mu.Lock()
	e.running = true
	e.mu.Unlock()
	if err := e.EachFlow(func(*flow.Summary) {}); !errors.Is(err, ErrRunning) {
		t.Errorf("EachFlow while running: %v", err)
	}
}

// TestFlowPages: FlowPages lists, a part at a time, the flows Snapshot
// copies, each once, whatever the part's size; without takeSamples it
// leaves the flows' RTT samples to the reader that takes them. It refuses
// an empty page.
func TestFlowPages(t *testing.T) {
	e := replayedSmall(t)
	list := func(t *testing.T, size int, takeSamples bool) []flow.Summary {
		t.Helper()
		var listed []flow.Summary
		parts := 0
		err := e.FlowPages(context.Background(), make([]flow.Summary, size), takeSamples, time.Second, func(flows []flow.Summary, _ map[netip.Addr]string) {
			if len(flows) > size {
				t.Errorf("a part of %d flows in a page of %d", len(flows), size)
			}
			parts++
			listed = append(listed, flows...)
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := (len(listed) + size - 1) / size; parts < want {
			t.Errorf("%d parts of at most %d for %d flows", parts, size, len(listed))
		}
		return listed
	}
	peeked := list(t, 7, false)
	samples := uint64(0)
	for _, f := range peeked {
		samples += f.Health.RTTSeen
	}
	if samples == 0 {
		t.Fatal("no RTT samples in the capture's flows")
	}
	checkSameFlows(t, list(t, 4096, false), peeked, true) // left, not taken
	s, err := e.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Flows) < 30 {
		t.Fatalf("%d flows in the snapshot, want a capture of at least 30", len(s.Flows))
	}
	checkSameFlows(t, s.Flows, peeked, true) // the snapshot took what the listings left
	for _, size := range []int{1, 7, len(s.Flows), 4096} {
		t.Run(fmt.Sprintf("page=%d", size), func(t *testing.T) {
			listed := list(t, size, true)
			checkSameFlows(t, listed, s.Flows, false)
			for _, f := range listed {
				if f.Health.RTTSeen != 0 {
					t.Fatalf("flow %v-%v: %d samples again after the snapshot took them", f.Local, f.Remote, f.Health.RTTSeen)
				}
			}
		})
	}
	if err := e.FlowPages(context.Background(), nil, true, time.Second, func([]flow.Summary, map[netip.Addr]string) {}); err == nil {
		t.Error("FlowPages with an empty page: no error")
	}
}

// checkSameFlows fails t unless got and want list the same flows (by
// ends, first packet, RTT and slot, and with health their Health too), in
// any order, each once, each in a slot of its own.
func checkSameFlows(t *testing.T, got, want []flow.Summary, health bool) {
	t.Helper()
	got, want = slices.Clone(got), slices.Clone(want)
	order := func(a, b flow.Summary) int { return flow.Order(&a, &b) }
	slices.SortFunc(got, order)
	slices.SortFunc(want, order)
	if len(got) != len(want) {
		t.Fatalf("%d flows listed, %d in the snapshot", len(got), len(want))
	}
	for i := range got {
		g, w := &got[i], &want[i]
		if g.Local != w.Local || g.Remote != w.Remote || g.FirstSeen != w.FirstSeen || g.RTT != w.RTT || g.Slot != w.Slot {
			t.Fatalf("flow %d: listed %v-%v at %d in slot %d, %+v; snapshot %v-%v at %d in slot %d, %+v", i, g.Local, g.Remote, g.FirstSeen, g.Slot, g.RTT, w.Local, w.Remote, w.FirstSeen, w.Slot, w.RTT)
		}
		if health && g.Health != w.Health {
			t.Fatalf("flow %v-%v: health %+v, want %+v", g.Local, g.Remote, g.Health, w.Health)
		}
	}
	slots := map[int32]bool{}
	for _, f := range got {
		if slots[f.Slot] {
			t.Fatalf("two flows in slot %d", f.Slot)
		}
		slots[f.Slot] = true
	}
}
