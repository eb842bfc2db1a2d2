package flow_test

// Tests of the rings (rings.go) over synthetic captures: internal/synth
// imports this package (through tsharkcmp), so they live in the external
// test package, with the hooks of export_test.go.

import (
	"cmp"
	"net/netip"
	"slices"
	"testing"

	"github.com/gometro/go-metro/capture/flow"
	"github.com/gometro/go-metro/capture/packet"
	"github.com/gometro/go-metro/internal/synth"
)

type localSet map[[16]byte]bool

func (s localSet) Sides(src, dst *[16]byte) (bool, bool) { return s[*src], s[*dst] }

// replaySynth runs the frames of c through a table as the engine does
// (a sweep every second of capture time) and returns its summaries sorted
// by key, and the table. Every flow starts with full-size rings when
// bigFromStart, as every flow did before rings grew with what they hold.
func replaySynth(t *testing.T, c *synth.Capture, bigFromStart bool) ([]flow.Summary, *flow.Table) {
	t.Helper()
	locals := localSet{}
	for _, a := range c.LocalIPs {
		locals[a.As16()] = true
	}
	tb := flow.NewTable(flow.TableConfig{MaxFlows: 4096, IdleTTL: 300e9, ExpTTL: 60e9, MaxFlights: 4096, MaxRecents: 4096}, locals, nil)
	var p packet.Packet
	var lastSweep int64
	for i := range c.Frames {
		fr := &c.Frames[i]
		if p.Decode(packet.LinkTypeEthernet, fr.Data, int(fr.WireLen)) != packet.OK {
			continue
		}
		created := tb.Counters().Created
		tb.Process(&p, fr.TS)
		if bigFromStart && tb.Counters().Created != created && !flow.GrowLastForTest(tb) {
			t.Fatal("no block for a new flow")
		}
		if fr.TS-lastSweep >= 1e9 {
			tb.Sweep(fr.TS)
			lastSweep = fr.TS
		}
	}
	s := tb.AppendSummaries(nil)
	slices.SortFunc(s, func(a, b flow.Summary) int {
		if c := a.Local.Compare(b.Local); c != 0 {
			return c
		}
		if c := a.Remote.Compare(b.Remote); c != 0 {
			return c
		}
		return cmp.Compare(a.FirstSeen, b.FirstSeen)
	})
	return s, tb
}

// TestRingsGrowWithWhatTheyHold: the simulated capture (bulk flows both
// ways, request/response connections, loss, retransmissions, keepalives,
// IPv6) gives exactly the same summaries, every RTT figure, health count
// and reservoir sample, whether every flow holds full-size rings from its
// first packet or grows into them when it needs them; the bulk flows'
// flights grow, and shrink back once acknowledged and idle.
func TestRingsGrowWithWhatTheyHold(t *testing.T) {
	c := synth.Generate(synth.Small())
	want, _ := replaySynth(t, c, true)
	got, tb := replaySynth(t, c, false)
	if len(got) != len(want) || len(got) == 0 {
		t.Fatalf("%d flows, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("flow %v-%v:\n got %+v\nwant %+v", got[i].Local, got[i].Remote, got[i], want[i])
		}
	}
	kinds := map[[2]netip.AddrPort]synth.FlowKind{}
	for _, fl := range c.Flows {
		kinds[[2]netip.AddrPort{fl.Local, fl.Remote}] = fl.Kind
	}
	grown := map[synth.FlowKind][2]int{} // of each kind: flows with full-size rings now, all flows
	for k, big := range flow.BigFlowsForTest(tb) {
		g := grown[kinds[k]]
		if big {
			g[0]++
		}
		g[1]++
		grown[kinds[k]] = g
	}
	t.Logf("with a full-size flight block at the end, of each kind: %v; at most %d at once; grows denied %d",
		grown, flow.FlightsUsedForTest(tb), tb.Counters().RingsDenied)
	if flow.FlightsUsedForTest(tb) == 0 {
		t.Error("no flow ever needed a full-size flight block")
	}
}

// TestRequestResponseStaysSmall: a handshake and a request/response
// exchange, with timestamps, need no full-size block; a connection that
// makes three exchanges within the duplicate windows keeps their
// fingerprints in a recent-frames block, never a flight block.
func TestRequestResponseStaysSmall(t *testing.T) {
	for _, tc := range []struct {
		exchanges       int
		flights, recent int
	}{{1, 0, 0}, {3, 0, 500}} {
		c := synth.Concurrent(synth.ConcurrentConfig{Flows: 500, Exchanges: tc.exchanges})
		s, tb := replaySynth(t, c, false)
		if n := tb.Counters(); n.FlightsInUse != tc.flights || n.RecentsInUse != tc.recent {
			t.Errorf("%d exchanges: of %d flows, %d hold a full-size flight block and %d a recent-frames one, want %d and %d",
				tc.exchanges, len(s), n.FlightsInUse, n.RecentsInUse, tc.flights, tc.recent)
		}
		for _, f := range s {
			if f.RTT.Samples == 0 {
				t.Fatalf("%v-%v: not timed", f.Local, f.Remote)
			}
		}
	}
}
