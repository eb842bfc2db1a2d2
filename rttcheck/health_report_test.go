package rttcheck

import (
	"context"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gometro/go-metro/capture"
	"github.com/gometro/go-metro/capture/flow"
	"github.com/gometro/go-metro/capture/rtt"
)

// series returns the values of one metric keyed by its tags (joined).
func (r *recorder) series(name string) map[string][]float64 {
	out := map[string][]float64{}
	for _, s := range r.find(name) {
		k := strings.Join(s.tags, ",")
		out[k] = append(out[k], s.value)
	}
	return out
}

func TestRunReportsConnectionHealth(t *testing.T) {
	now := time.Now()
	old := now.Add(-10 * time.Second).UnixNano()
	young := now.Add(-time.Second).UnixNano()
	syn := est(1, 2*msNS, 2*msNS, 2*msNS, 2*msNS, msNS, 1)
	flows := []flow.Summary{
		// Opened, closed, 3 retransmits, handshake 2 ms, two responses (30 ms in all).
		{Local: ap("10.0.0.1:40000"), Remote: ap("10.0.0.2:443"), RTT: syn, FirstSeen: 1, Retransmits: 3,
			Health: flow.Health{Role: flow.RoleClient, Opened: true, FIN: true, Handshake: 2 * msNS,
				ResponseSum: 30 * msNS, Responses: 2, ZeroWindowsRemote: 1}},
		// Refused, its RST/ACK timed: 4 ms.
		{Local: ap("10.0.0.1:40001"), Remote: ap("10.0.0.2:443"), RTT: est(1, 4*msNS, 4*msNS, 4*msNS, 4*msNS, 2*msNS, 2), FirstSeen: 2,
			Health: flow.Health{Role: flow.RoleClient, Refused: true, Handshake: 4 * msNS}},
		// SYN unanswered for 10 s: a timeout; for 1 s: not yet.
		{Local: ap("10.0.0.1:40002"), Remote: ap("10.0.0.2:443"), FirstSeen: old, Retransmits: 2,
			Health: flow.Health{Role: flow.RoleClient, SYNUnanswered: true}},
		{Local: ap("10.0.0.1:40003"), Remote: ap("10.0.0.2:443"), FirstSeen: young,
			Health: flow.Health{Role: flow.RoleClient, SYNUnanswered: true}},
		// Reset, zero window on our side; no samples but reported.
		{Local: ap("10.0.0.1:40004"), Remote: ap("10.0.0.3:80"), FirstSeen: 5,
			Health: flow.Health{Reset: true, ZeroWindowsLocal: 2}},
		// Nothing to say: not reported at all.
		{Local: ap("10.0.0.1:40005"), Remote: ap("10.0.0.4:80"), FirstSeen: 6},
	}
	fe := &fakeEngine{snap: capture.Snapshot{Flows: flows, Taken: now}}
	c := newTestCheck(t, Options{}, "interface: eth0\nips: [10.0.0.0/24]\nreverse_dns: false", "", fe, nil)
	waitFor(t, "engine", c.engineStarted)

	r := runOnce(t, c)
	p2 := "src:10.0.0.1,dst:10.0.0.2,iface:eth0"
	p3 := "src:10.0.0.1,dst:10.0.0.3,iface:eth0"
	want := map[string]map[string][]float64{
		MetricRetransmits:   {p2: {5}, p3: {0}},
		MetricOpened:        {p2: {1}, p3: {0}},
		MetricClosed:        {p2: {1}, p3: {0}},
		MetricReset:         {p2: {0}, p3: {1}},
		MetricRefused:       {p2: {1}, p3: {0}},
		MetricSYNTimeouts:   {p2: {1}, p3: {0}},
		MetricZeroWinRemote: {p2: {1}, p3: {0}},
		MetricZeroWinLocal:  {p2: {0}, p3: {2}},
		MetricRTTHandshake:  {p2: {3}},  // mean of 2 and 4 ms
		MetricResponseTime:  {p2: {15}}, // 30 ms over 2 responses
	}
	for m, w := range want {
		if got := r.series(m); !reflect.DeepEqual(got, w) {
			t.Errorf("run 1: %s = %v, want %v", m, got, w)
		}
	}
	if got := r.series(MetricRTTAvg); len(got) != 1 || got[p2] == nil {
		t.Errorf("run 1: RTT gauges %v, want only for %s", got, p2)
	}

	// Run 2: nothing new, except one more retransmission and response
	// on the first flow, and the young SYN is now old.
	fe.set(func(f *fakeEngine) {
		f.snap.Flows[0].Retransmits = 4
		f.snap.Flows[0].Health.Responses = 3
		f.snap.Flows[0].Health.ResponseSum = 36 * msNS
	})
	// A flow is keyed by its FirstSeen, so the young SYN grows old by the
	// clock instead: synTimeout shrinks below its age for this run.
	defer func(d time.Duration) { synTimeout = d }(synTimeout)
	synTimeout = 500 * time.Millisecond
	r = runOnce(t, c)
	// 10.0.0.3 has neither samples nor news: it is not reported.
	want = map[string]map[string][]float64{
		MetricRetransmits:  {p2: {1}},
		MetricOpened:       {p2: {0}},
		MetricRefused:      {p2: {0}},
		MetricSYNTimeouts:  {p2: {1}},
		MetricZeroWinLocal: {p2: {0}},
		MetricResponseTime: {p2: {6}},
		MetricRTTHandshake: {},
	}
	for m, w := range want {
		if got := r.series(m); !reflect.DeepEqual(got, w) {
			t.Errorf("run 2: %s = %v, want %v", m, got, w)
		}
	}
}

// TestRunListsFlowsInParts: a Run takes the flows a part at a time; when
// the listing fails partway, the flows it did not reach keep their marks,
// so what they did is reported by the next Run, neither lost nor counted
// twice. A flow that takes over a gone flow's table slot starts from
// nothing, not from the marks of the flow before it.
func TestRunListsFlowsInParts(t *testing.T) {
	flows := []flow.Summary{
		{Local: ap("10.0.0.1:40000"), Remote: ap("10.0.0.2:443"), FirstSeen: 1, Slot: 0},
		{Local: ap("10.0.0.1:40001"), Remote: ap("10.0.0.3:443"), FirstSeen: 2, Slot: 1},
		{Local: ap("10.0.0.1:40002"), Remote: ap("10.0.0.4:443"), FirstSeen: 3, Slot: 2},
	}
	// In the last step, flows[2] is gone and this one holds its slot:
	// another connection of the same ends.
	successor := flow.Summary{Local: ap("10.0.0.1:40002"), Remote: ap("10.0.0.4:443"), FirstSeen: 4, Slot: 2}
	fe := &fakeEngine{snap: capture.Snapshot{Flows: flows, Taken: time.Now()}, partFlows: 1, ownSlots: true}
	c := newTestCheck(t, Options{}, "interface: eth0\nips: [10.0.0.0/24]\nreverse_dns: false", "", fe, nil)
	waitFor(t, "engine", c.engineStarted)
	pair := func(last byte) string { return fmt.Sprintf("src:10.0.0.1,dst:10.0.0.%d,iface:eth0", last) }
	for _, step := range []struct {
		name        string
		retransmits uint64 // every flow's, so far
		failAfter   int    // parts listed before the listing fails; -1: none
		successor   bool   // flows[2]'s slot holds successor instead
		want        map[string][]float64
	}{
		{"all listed", 1, -1, false, map[string][]float64{pair(2): {1}, pair(3): {1}, pair(4): {1}}},
		{"listing fails after one part", 3, 1, false, map[string][]float64{pair(2): {2}}},
		{"all listed again", 4, -1, false, map[string][]float64{pair(2): {1}, pair(3): {3}, pair(4): {3}}},
		{"another flow in a gone flow's slot", 5, -1, true, map[string][]float64{pair(2): {1}, pair(3): {1}, pair(4): {5}}},
	} {
		fe.set(func(f *fakeEngine) {
			f.snap.Flows = slices.Clone(flows)
			if step.successor {
				f.snap.Flows[2] = successor
			}
			for i := range f.snap.Flows {
				f.snap.Flows[i].Retransmits = step.retransmits
			}
			f.pagesErr, f.pagesErrAfter = nil, 0
			if step.failAfter >= 0 {
				f.pagesErr, f.pagesErrAfter = context.DeadlineExceeded, step.failAfter
			}
		})
		r := &recorder{}
		warnings, err := c.Run(r, r)
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		warned := strings.Contains(strings.Join(warnings, "\n"), "flows listed in part")
		if warned != (step.failAfter >= 0) {
			t.Errorf("%s: warnings %q", step.name, warnings)
		}
		if got := r.series(MetricRetransmits); !reflect.DeepEqual(got, step.want) {
			t.Errorf("%s: %s = %v, want %v", step.name, MetricRetransmits, got, step.want)
		}
	}
}

// TestPageFor: the listing's page is as large as the flows, between 64
// and flowPage.
func TestPageFor(t *testing.T) {
	for _, tc := range []struct{ flows, want int }{
		{0, 64}, {10, 64}, {100, 100}, {flowPage, flowPage}, {1_000_000, flowPage},
	} {
		if got := pageFor(tc.flows); got != tc.want {
			t.Errorf("pageFor(%d) = %d, want %d", tc.flows, got, tc.want)
		}
	}
}

// TestFlowID: flows that differ in anything that makes a flow itself have
// different IDs; one flow has one, never 0.
func TestFlowID(t *testing.T) {
	base := flow.Summary{Local: ap("10.0.0.1:40000"), Remote: ap("10.0.0.2:443"), FirstSeen: 1,
		RTT: est(1, msNS, msNS, msNS, msNS, msNS, 1), Retransmits: 1}
	seed := maphash.MakeSeed()
	baseID := flowID(seed, &base)
	if baseID == 0 {
		t.Fatal("flowID is 0")
	}
	same := base
	same.RTT, same.Retransmits, same.Slot = rtt.Estimator{}, 7, 9 // what a flow did is not what it is
	if got := flowID(seed, &same); got != baseID {
		t.Errorf("the same flow later: ID %x, want %x", got, baseID)
	}
	for _, tc := range []struct {
		name   string
		change func(*flow.Summary)
	}{
		{"local port", func(f *flow.Summary) { f.Local = ap("10.0.0.1:40001") }},
		{"local address", func(f *flow.Summary) { f.Local = ap("10.0.0.9:40000") }},
		{"remote port", func(f *flow.Summary) { f.Remote = ap("10.0.0.2:444") }},
		{"remote address", func(f *flow.Summary) { f.Remote = ap("[2001:db8::2]:443") }},
		{"ends swapped", func(f *flow.Summary) { f.Local, f.Remote = f.Remote, f.Local }},
		{"first packet", func(f *flow.Summary) { f.FirstSeen = 2 }},
		{"tunnel outer address", func(f *flow.Summary) { f.Tunnel.OuterA[15] = 1 }},
		{"tunnel outer peer", func(f *flow.Summary) { f.Tunnel.OuterB[0] = 1 }},
		{"tunnel ID", func(f *flow.Summary) { f.Tunnel.ID = 5 }},
		{"tunnel ID in", func(f *flow.Summary) { f.Tunnel.IDIn = 5 }},
		{"encapsulations", func(f *flow.Summary) { f.Tunnel.Encaps = 1 }},
		{"encapsulation of the ID", func(f *flow.Summary) { f.Tunnel.IDOf = 1 }},
	} {
		f := base
		tc.change(&f)
		if got := flowID(seed, &f); got == baseID {
			t.Errorf("%s: the same ID %x as the flow it differs from", tc.name, got)
		}
	}
}

func TestPickDistribution(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	fill := func(seen uint64, v uint32) distFlow {
		d := distFlow{seen: seen}
		for i := range d.vals {
			d.vals[i] = v
		}
		return d
	}
	count := func(vals []float64, v float64) (n int) {
		for _, x := range vals {
			if x == v {
				n++
			}
		}
		return n
	}
	// Nothing subsampled and within budget: every value once.
	got := pickDistribution(nil, []distFlow{fill(3, 1000), fill(2, 2000)}, 128, rng)
	if len(got) != 5 || count(got, 1) != 3 || count(got, 2) != 2 {
		t.Fatalf("exact: %v", got)
	}
	// A bulk flow (10000 samples, 16 kept, all 10 ms) and a light one (10
	// samples, 100 ms): the light one's share is 10/10010 of 128 values.
	var light int
	const runs = 2000
	for i := 0; i < runs; i++ {
		got = pickDistribution(got[:0], []distFlow{fill(10000, 10000), fill(10, 100000)}, 128, rng)
		if len(got) != 128 {
			t.Fatalf("weighted: %d values, want 128", len(got))
		}
		light += count(got, 100)
	}
	if want := float64(runs) * 128 * 10 / 10010; float64(light) < want*0.8 || float64(light) > want*1.2 {
		t.Fatalf("light flow got %d values over %d runs, want about %.0f", light, runs, want)
	}
	// Fewer samples than the budget, but subsampled flows: one value per sample.
	got = pickDistribution(got[:0], []distFlow{fill(40, 5000)}, 128, rng)
	if len(got) != 40 {
		t.Fatalf("small total: %d values, want 40", len(got))
	}
	if got = pickDistribution(got[:0], []distFlow{fill(40, 5000)}, 0, rng); len(got) != 0 {
		t.Fatalf("off: %v", got)
	}
}

func TestRunSendsDistribution(t *testing.T) {
	f := flow.Summary{Local: ap("10.0.0.1:40000"), Remote: ap("10.0.0.2:443"), RTT: est(3, msNS, msNS, 3*msNS, 2*msNS, msNS, 1), FirstSeen: 1}
	f.Health.RTTSeen = 3
	f.Health.RTTSampled = [flow.ReservoirSize]uint32{1000, 2500, 3000}
	fe := &fakeEngine{snap: capture.Snapshot{Flows: []flow.Summary{f}}}
	c := newTestCheck(t, Options{}, "interface: eth0\nips: [10.0.0.0/24]\nreverse_dns: false", "", fe, nil)
	waitFor(t, "engine", c.engineStarted)
	r := runOnce(t, c)
	got := r.series(MetricRTTDistribution)["src:10.0.0.1,dst:10.0.0.2,iface:eth0"]
	sort.Float64s(got)
	if !reflect.DeepEqual(got, []float64{1, 2.5, 3}) {
		t.Fatalf("distribution values %v, want [1 2.5 3]", got)
	}
	c.shape.DistributionValues = 0
	if r = runOnce(t, c); len(r.find(MetricRTTDistribution)) != 0 {
		t.Fatalf("distribution sent although off")
	}
}

func TestSeriesGroupingAndCap(t *testing.T) {
	// Each flow's RTT differs, so that a series combines exactly its own
	// flows' (checked below).
	mk := func(local, remote string, first int64, role flow.Role) flow.Summary {
		rtt := first * msNS
		return flow.Summary{Local: ap(local), Remote: ap(remote), RTT: est(uint64(first), rtt, rtt, rtt, rtt, rtt/4, first),
			FirstSeen: first, Health: flow.Health{Role: role}}
	}
	flows := []flow.Summary{
		mk("10.0.0.1:40000", "192.0.2.10:443", 1, flow.RoleClient),
		mk("10.0.0.1:40001", "192.0.2.11:443", 2, flow.RoleClient),
		mk("10.0.0.1:40002", "192.0.2.12:80", 3, flow.RoleServer),
		mk("10.0.0.1:40003", "198.51.100.7:443", 4, flow.RoleUnknown),
		mk("[2001:db8::1]:40004", "[2001:db8:1:2::5]:443", 5, flow.RoleClient),
		mk("[2001:db8::1]:40005", "[2001:db8:1:3::6]:443", 6, flow.RoleClient),
	}
	tests := []struct {
		name     string
		opts     ReportOptions
		want     []string         // RTT-average series, sorted
		combined map[string][]int // series of several flows: the flows (their FirstSeen)
	}{
		{"default: one series per address", ReportOptions{}, []string{
			"src:10.0.0.1,dst:192.0.2.10,iface:eth0", "src:10.0.0.1,dst:192.0.2.11,iface:eth0",
			"src:10.0.0.1,dst:192.0.2.12,iface:eth0", "src:10.0.0.1,dst:198.51.100.7,iface:eth0",
			"src:2001:db8::1,dst:2001:db8:1:2::5,iface:eth0", "src:2001:db8::1,dst:2001:db8:1:3::6,iface:eth0"}, nil},
		{"/24 and /48", ReportOptions{DstPrefixV4: 24, DstPrefixV6: 48}, []string{
			"src:10.0.0.1,dst:192.0.2.0/24,iface:eth0", "src:10.0.0.1,dst:198.51.100.0/24,iface:eth0",
			"src:2001:db8::1,dst:2001:db8:1::/48,iface:eth0"}, map[string][]int{
			"src:10.0.0.1,dst:192.0.2.0/24,iface:eth0": {1, 2, 3}, "src:2001:db8::1,dst:2001:db8:1::/48,iface:eth0": {5, 6}}},
		{"/24 with dst_port and role", ReportOptions{DstPrefixV4: 24, DstPrefixV6: 48, TagDstPort: true, TagRole: true}, []string{
			"src:10.0.0.1,dst:192.0.2.0/24,dst_port:443,role:client,iface:eth0",
			"src:10.0.0.1,dst:192.0.2.0/24,dst_port:80,role:server,iface:eth0",
			"src:10.0.0.1,dst:198.51.100.0/24,dst_port:443,iface:eth0",
			"src:2001:db8::1,dst:2001:db8:1::/48,dst_port:443,role:client,iface:eth0"}, map[string][]int{
			"src:10.0.0.1,dst:192.0.2.0/24,dst_port:443,role:client,iface:eth0": {1, 2}}},
		{"cap of 3: the rest under dst:other", ReportOptions{MaxHostPairs: 3}, []string{
			"src:10.0.0.1,dst:192.0.2.10,iface:eth0", "src:10.0.0.1,dst:192.0.2.11,iface:eth0",
			"src:10.0.0.1,dst:192.0.2.12,iface:eth0", "src:10.0.0.1,dst:other,iface:eth0",
			"src:2001:db8::1,dst:other,iface:eth0"}, map[string][]int{"src:2001:db8::1,dst:other,iface:eth0": {5, 6}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fe := &fakeEngine{snap: capture.Snapshot{Flows: flows}}
			c := newTestCheck(t, Options{}, "interface: eth0\nall_remote_hosts: true\nreverse_dns: false", "", fe, nil)
			c.shape = tc.opts
			waitFor(t, "engine", c.engineStarted)
			r := runOnce(t, c)
			var got []string
			for k := range r.series(MetricRTTAvg) {
				got = append(got, k)
			}
			sort.Strings(got)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("series\n got %q\nwant %q", got, tc.want)
			}
			for series, firsts := range tc.combined {
				var ests []rtt.Estimator
				for _, first := range firsts {
					ests = append(ests, flows[first-1].RTT)
				}
				want := rtt.Combine(ests)
				for _, m := range []struct {
					name string
					want int64
				}{{MetricRTTAvg, want.SRTT}, {MetricRTTJitter, want.RTTVAR}, {MetricRTTMin, want.Min}, {MetricRTTMax, want.Max}} {
					if got := r.series(m.name)[series]; len(got) != 1 || got[0] != ms(m.want) {
						t.Errorf("%s %s = %v, want %v, its flows' combined", series, m.name, got, ms(m.want))
					}
				}
			}
		})
	}

	// The cap keeps a series' place while it has flows: a pair that
	// arrives later goes to dst:other even when it sorts first, and one in
	// dst:other stays there after a place frees.
	fe := &fakeEngine{snap: capture.Snapshot{Flows: flows[1:3]}}
	c := newTestCheck(t, Options{}, "interface: eth0\nall_remote_hosts: true\nreverse_dns: false", "", fe, nil)
	c.shape = ReportOptions{MaxHostPairs: 2}
	waitFor(t, "engine", c.engineStarted)
	runOnce(t, c)
	fe.set(func(f *fakeEngine) { f.snap.Flows = []flow.Summary{flows[0], flows[1], flows[2]} })
	r := runOnce(t, c)
	if got := r.series(MetricRTTSamples); len(got["src:10.0.0.1,dst:other,iface:eth0"]) != 1 || got["src:10.0.0.1,dst:192.0.2.10,iface:eth0"] != nil {
		t.Fatalf("late pair not in dst:other: %v", got)
	}
	fe.set(func(f *fakeEngine) { f.snap.Flows = []flow.Summary{flows[0], flows[1]} })
	if got := runOnce(t, c).series(MetricRTTAvg); got["src:10.0.0.1,dst:other,iface:eth0"] == nil {
		t.Fatalf("demoted pair left dst:other when a place freed: %v", got)
	}
}

// gatedResolver answers reverse lookups only once open is closed.
type gatedResolver struct {
	fakeResolver
	open chan struct{}
}

func (g *gatedResolver) LookupAddr(ctx context.Context, a string) ([]string, error) {
	select {
	case <-g.open:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.fakeResolver.LookupAddr(ctx, a)
}

func TestDstTagIsPinnedAtFirstReport(t *testing.T) {
	defer func(d time.Duration) { rdnsFirstWait = d }(rdnsFirstWait)
	rdnsFirstWait = 20 * time.Millisecond
	e := est(1, msNS, msNS, msNS, msNS, msNS/2, 1)
	flows := []flow.Summary{{Local: ap("10.0.0.1:40000"), Remote: ap("198.51.100.7:443"), RTT: e, FirstSeen: 1}}
	fe := &fakeEngine{snap: capture.Snapshot{Flows: flows}}
	res := &gatedResolver{fakeResolver: fakeResolver{ptr: map[string]string{"198.51.100.7": "ptr7.example.net", "198.51.100.8": "ptr8.example.net"}},
		open: make(chan struct{})}
	c := New(Options{})
	c.newEngine = func(cc capture.Config) (engine, error) { return fe, nil }
	c.res = res
	if err := configureYAML(c, "interface: eth0\nips: [198.51.100.0/24]\n", ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Cancel)
	waitFor(t, "engine", c.engineStarted)
	dsts := rttAvgDsts
	// The PTR does not answer in time: the first report uses the address.
	if got := dsts(runOnce(t, c)); !reflect.DeepEqual(got, []string{"dst:198.51.100.7"}) {
		t.Fatalf("first run %v", got)
	}
	close(res.open)
	waitFor(t, "the PTR answer", func() bool { return c.rdns.name(netip.MustParseAddr("198.51.100.7"), time.Now()) != "" })
	// It answered since: the series keeps its tag. A new remote gets its name.
	fe.set(func(f *fakeEngine) {
		f.snap.Flows = append(f.snap.Flows, flow.Summary{Local: ap("10.0.0.1:40001"), Remote: ap("198.51.100.8:443"), RTT: e, FirstSeen: 2})
	})
	if got := dsts(runOnce(t, c)); !reflect.DeepEqual(got, []string{"dst:198.51.100.7", "dst:ptr8.example.net"}) {
		t.Fatalf("second run %v", got)
	}
	// Once the remote has left the table, it is named afresh.
	fe.set(func(f *fakeEngine) { f.snap.Flows = nil })
	runOnce(t, c)
	fe.set(func(f *fakeEngine) { f.snap.Flows = flows })
	if got := dsts(runOnce(t, c)); !reflect.DeepEqual(got, []string{"dst:ptr7.example.net"}) {
		t.Fatalf("after leaving the table %v", got)
	}
}

func TestReportKeys(t *testing.T) {
	const base = "interface: eth0\nall_remote_hosts: true\n"
	cfg, err := ParseConfig([]byte(base), nil, -1)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.Instance.reportOptions(), (ReportOptions{DistributionValues: DefaultDistributionValues}); got != want {
		t.Fatalf("defaults %+v, want %+v", got, want)
	}
	cfg, err = ParseConfig([]byte(base+"group_dst_ipv4_prefix: 24\ngroup_dst_ipv6_prefix: 48\nmax_host_pairs: 100\n"+
		"tag_dst_port: true\ntag_role: true\nrtt_distribution_values: 64\n"), nil, -1)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.Instance.reportOptions(), (ReportOptions{24, 48, 100, true, true, 64}); got != want || len(cfg.Warnings) > 0 {
		t.Fatalf("parsed %+v (warnings %q), want %+v", got, cfg.Warnings, want)
	}
	for _, bad := range []string{"group_dst_ipv4_prefix: 33", "group_dst_ipv6_prefix: -1", "max_host_pairs: -5",
		"tag_role: maybe", "rtt_distribution_values: 4097"} {
		_, err := ParseConfig([]byte(base+bad+"\n"), nil, -1)
		if key := strings.Split(bad, ":")[0]; err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: error %v does not name the key", bad, err)
		}
	}
}

// rttAvgDsts is the dst tag of each rtt.avg series of a run, sorted.
func rttAvgDsts(r *recorder) []string {
	var out []string
	for _, s := range r.find(MetricRTTAvg) {
		out = append(out, s.tags[1])
	}
	sort.Strings(out)
	return out
}
