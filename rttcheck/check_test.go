package rttcheck

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gometro/go-metro/capture"
	"github.com/gometro/go-metro/capture/filter"
	"github.com/gometro/go-metro/capture/flow"
	"github.com/gometro/go-metro/capture/rtt"
	"github.com/gometro/go-metro/internal/testwait"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testTiming shortens the capture owner's waits so retries happen within tests.
var testTiming = timing{backoffMin: 2 * time.Millisecond, backoffMax: 10 * time.Millisecond, clearAfter: 5 * time.Millisecond}

// ---- recording sender ----

type sub struct {
	kind  string
	name  string
	value float64
	host  string
	tags  []string
}

type recorder struct {
	mu      sync.Mutex
	subs    []sub
	checks  []scSub
	commits int
}

type scSub struct {
	name    string
	status  ServiceCheckStatus
	tags    []string
	message string
}

func (r *recorder) add(kind, name string, v float64, h string, tags []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.subs = append(r.subs, sub{kind, name, v, h, append([]string(nil), tags...)})
}
func (r *recorder) Gauge(n string, v float64, h string, t []string) { r.add("gauge", n, v, h, t) }
func (r *recorder) Count(n string, v float64, h string, t []string) { r.add("count", n, v, h, t) }
func (r *recorder) MonotonicCount(n string, v float64, h string, t []string) {
	r.add("monotonic_count", n, v, h, t)
}
func (r *recorder) Distribution(n string, v float64, h string, t []string) {
	r.add("distribution", n, v, h, t)
}
func (r *recorder) Commit() { r.mu.Lock(); r.commits++; r.mu.Unlock() }
func (r *recorder) ServiceCheck(n string, st ServiceCheckStatus, h string, t []string, m string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checks = append(r.checks, scSub{n, st, append([]string(nil), t...), m})
}

// find returns the submissions of one metric.
func (r *recorder) find(name string) []sub {
	var out []sub
	for _, s := range r.subs {
		if s.name == name {
			out = append(out, s)
		}
	}
	return out
}

// noDuplicates fails when one (metric, tag set) was submitted twice in a run.
func (r *recorder) noDuplicates(t *testing.T) {
	t.Helper()
	seen := map[string]bool{}
	for _, s := range r.subs {
		if s.kind == "distribution" {
			continue // many values per series and run, by design
		}
		tags := append([]string(nil), s.tags...)
		sort.Strings(tags)
		k := s.name + "|" + strings.Join(tags, ",")
		if seen[k] {
			t.Errorf("%s submitted twice with tags %v", s.name, s.tags)
		}
		seen[k] = true
	}
}

// ---- fake engine and resolver ----

type fakeEngine struct {
	mu        sync.Mutex
	cfg       capture.Config
	snap      capture.Snapshot
	runErr    error // Run fails with it at once
	runPanic  bool  // Run panics before it opens
	loopPanic bool  // Run opens, then panics: a bug in the packet loop
	snapPanic bool
	snapErr   error
	// pagesErr: FlowPages fails with it after pagesErrAfter parts.
	pagesErr      error
	pagesErrAfter int
	partFlows     int // flows per FlowPages part; 0: the page's size
	// slots gives each flow (by its ends and first packet) the table slot
	// FlowPages lists it in, the first free one, for good, as a table
	// does; with ownSlots the flows' own Slot fields stand.
	slots    map[[3]any]int32
	ownSlots bool
	took     []bool // each FlowPages call's takeSamples
	runs     int
	running  bool
	remotes  [][]netip.Prefix
	local    [][]netip.Prefix // SetLocalIPs calls
	opened   chan struct{}
	drop     chan error // a running Run returns what is sent here (the interface goes away)
}

func (f *fakeEngine) Opened() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.opened == nil {
		f.opened = make(chan struct{})
	}
	return f.opened
}

// ranAtLeast is a waitFor condition: the capture owner has called Run n
// times or more.
func (f *fakeEngine) ranAtLeast(n int) func() bool {
	return func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.runs >= n
	}
}

func (f *fakeEngine) Run(ctx context.Context) error {
	f.mu.Lock()
	f.runs++
	err, p, lp := f.runErr, f.runPanic, f.loopPanic
	if err == nil && !p {
		f.running = true
		if f.opened == nil {
			f.opened = make(chan struct{})
		}
		select {
		case <-f.opened:
		default:
			close(f.opened)
		}
	}
	f.mu.Unlock()
	if p {
		panic("engine exploded")
	}
	if lp {
		f.mu.Lock()
		f.running = false // as capture.Engine.Run's deferred cleanup does
		f.mu.Unlock()
		panic("engine exploded")
	}
	if err != nil {
		return err
	}
	if f.cfg.File != "" {
		f.mu.Lock()
		f.running = false
		f.mu.Unlock()
		return nil
	}
	f.mu.Lock()
	drop := f.drop
	f.mu.Unlock()
	select {
	case <-ctx.Done():
	case err = <-drop:
	}
	f.mu.Lock()
	f.running = false
	f.mu.Unlock()
	return err
}

// Stats is a copy of snap without the flows (FlowPages lists them), as
// capture.Engine's, or snapErr, or a panic when snapPanic is set.
func (f *fakeEngine) Stats(context.Context) (*capture.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.snapPanic {
		panic("snapshot exploded")
	}
	if f.snapErr != nil {
		return nil, f.snapErr
	}
	s := f.snap
	s.Flows, s.DNSNames = nil, nil
	return &s, nil
}

// FlowPages lists the snapshot's flows a page (or partFlows) at a time,
// each part with the snapshot's DNS names, and fails after pagesErrAfter
// parts when pagesErr is set.
func (f *fakeEngine) FlowPages(ctx context.Context, page []flow.Summary, takeSamples bool, _ time.Duration, fn func([]flow.Summary, map[netip.Addr]string)) error {
	f.mu.Lock()
	defer f.mu.Unlock() // the listing is one, as a table's part is
	f.took = append(f.took, takeSamples)
	flows, names, failAfter, failWith := f.snap.Flows, f.snap.DNSNames, f.pagesErrAfter, f.pagesErr
	if f.partFlows > 0 {
		page = page[:min(len(page), f.partFlows)]
	}
	if !f.ownSlots {
		if f.slots == nil {
			f.slots = map[[3]any]int32{}
		}
		for i := range flows {
			fl := &flows[i]
			k := [3]any{fl.Local, fl.Remote, fl.FirstSeen}
			slot, ok := f.slots[k]
			if !ok {
				slot = int32(len(f.slots))
				f.slots[k] = slot
			}
			fl.Slot = slot
		}
	}
	for part := 0; len(flows) > 0; part++ {
		if failWith != nil && part == failAfter {
			return failWith
		}
		n := copy(page, flows)
		flows = flows[n:]
		fn(page[:n], names)
	}
	return nil
}

func (f *fakeEngine) SetRemotes(r []netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.remotes = append(f.remotes, append([]netip.Prefix(nil), r...))
	return nil
}

func (f *fakeEngine) SetLocalIPs(l []netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.local = append(f.local, append([]netip.Prefix(nil), l...))
	return nil
}

func (f *fakeEngine) set(fn func(*fakeEngine)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

type fakeResolver struct {
	mu    sync.Mutex
	hosts map[string][]string
	ptr   map[string]string
	calls int
	panic bool
}

func (r *fakeResolver) LookupHost(ctx context.Context, h string) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.panic {
		panic("resolver exploded")
	}
	if a, ok := r.hosts[h]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: h, IsNotFound: true}
}

func (r *fakeResolver) LookupAddr(ctx context.Context, a string) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n, ok := r.ptr[a]; ok {
		return []string{n + "."}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: a, IsNotFound: true}
}

// newTestCheck configures a check whose engine is fe.
func newTestCheck(t *testing.T, opts Options, instance, init string, fe *fakeEngine, res *fakeResolver) *Check {
	t.Helper()
	c := New(opts)
	c.timing = testTiming
	c.newEngine = func(cc capture.Config) (engine, error) {
		fe.set(func(f *fakeEngine) { f.cfg = cc })
		return fe, nil
	}
	if res == nil {
		res = &fakeResolver{}
	}
	c.res = res
	if err := configureYAML(c, instance, init); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	t.Cleanup(c.Cancel)
	return c
}

// configureYAML parses and configures, as the agent glue and the CLI do.
func configureYAML(c *Check, instance, init string) error {
	cfg, err := ParseConfig([]byte(instance), []byte(init), -1)
	if err != nil {
		return err
	}
	return c.Configure(cfg)
}

// waitFor polls cond; it bounds a wait for background work, it is not a
// timing assertion.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testwait.For(t, what, 5*time.Second, cond)
}

// mustRun runs c once into a new recorder, failing t if Run fails.
func mustRun(t *testing.T, c *Check) *recorder {
	t.Helper()
	r := &recorder{}
	if _, err := c.Run(r, r); err != nil {
		t.Fatal(err)
	}
	return r
}

// runOnce is mustRun, and fails t if the run submitted a series twice.
func runOnce(t *testing.T, c *Check) *recorder {
	t.Helper()
	r := mustRun(t, c)
	r.noDuplicates(t)
	return r
}

// runStatus runs c once, whatever Run returns, and returns the status of
// its first service check (can_capture).
func runStatus(c *Check) ServiceCheckStatus {
	r := &recorder{}
	c.Run(r, r)
	return r.checks[0].status
}

// engineStarted: the capture owner has run an engine at least once.
func (c *Check) engineStarted() bool { return c.status().state > stateConfigured }

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func est(samples uint64, last, min, max, srtt, rttvar, lastAt int64) rtt.Estimator {
	return rtt.Estimator{Samples: samples, Last: last, Min: min, Max: max, SRTT: srtt, RTTVAR: rttvar, LastAt: lastAt}
}

const msNS = int64(time.Millisecond)

// ---- tests ----

func TestRunAggregatesHostPairs(t *testing.T) {
	e1 := est(10, 12*msNS, 8*msNS, 20*msNS, 10*msNS, 2*msNS, 1000)
	e2 := est(30, 15*msNS, 9*msNS, 30*msNS, 14*msNS, 3*msNS, 2000) // most recent sample of the pair
	e3 := est(5, 50*msNS, 40*msNS, 60*msNS, 50*msNS, 5*msNS, 1500)
	fe := &fakeEngine{snap: capture.Snapshot{
		Flows: []flow.Summary{
			{Local: ap("10.0.0.1:40000"), Remote: ap("10.0.0.2:443"), RTT: e1, FirstSeen: 1},
			{Local: ap("10.0.0.1:40001"), Remote: ap("10.0.0.2:443"), RTT: e2, FirstSeen: 2},
			{Local: ap("10.0.0.1:40002"), Remote: ap("10.0.0.3:80"), RTT: e3, FirstSeen: 3},
			{Local: ap("10.0.0.1:40003"), Remote: ap("10.0.0.4:80"), FirstSeen: 4}, // no samples: not reported
		},
	}}
	c := newTestCheck(t, Options{}, "interface: eth0\nips: [10.0.0.0/24]\nreverse_dns: false", "", fe, nil)
	waitFor(t, "engine", c.engineStarted)

	r := runOnce(t, c)
	pair := []string{"src:10.0.0.1", "dst:10.0.0.2", "iface:eth0"}
	comb := rtt.Combine([]rtt.Estimator{e1, e2})
	want := map[string]float64{
		MetricRTT:        15,
		MetricRTTAvg:     float64(comb.SRTT) / 1e6,
		MetricRTTJitter:  float64(comb.RTTVAR) / 1e6,
		MetricRTTMin:     8,
		MetricRTTMax:     30,
		MetricRTTSamples: 40,
	}
	for name, v := range want {
		var got []sub
		for _, s := range r.find(name) {
			if reflect.DeepEqual(s.tags, pair) {
				got = append(got, s)
			}
		}
		if len(got) != 1 {
			t.Errorf("%s for %v: %d submissions, want 1", name, pair, len(got))
			continue
		}
		if got[0].value != v {
			t.Errorf("%s = %v, want %v", name, got[0].value, v)
		}
		wantKind := "gauge"
		if name == MetricRTTSamples {
			wantKind = "count"
		}
		if got[0].kind != wantKind {
			t.Errorf("%s sent as %s, want %s", name, got[0].kind, wantKind)
		}
	}
	if n := len(r.find(MetricRTTAvg)); n != 2 {
		t.Errorf("%d avg series, want 2 (two host pairs with samples)", n)
	}
	if r.commits != 1 {
		t.Errorf("%d commits, want 1", r.commits)
	}
}

func TestRunLastSampleOnlyWhenNew(t *testing.T) {
	e := est(3, 12*msNS, 10*msNS, 14*msNS, 12*msNS, 1*msNS, 1000)
	fe := &fakeEngine{snap: capture.Snapshot{Flows: []flow.Summary{
		{Local: ap("10.0.0.1:40000"), Remote: ap("10.0.0.2:443"), RTT: e, FirstSeen: 1},
	}}}
	c := newTestCheck(t, Options{}, "interface: eth0\nips: [10.0.0.2]\nreverse_dns: false", "", fe, nil)
	waitFor(t, "engine", c.engineStarted)

	steps := []struct {
		name        string
		update      func(f *fakeEngine)
		wantLast    bool
		wantSamples float64
	}{
		{"first run reports", nil, true, 3},
		{"no new sample", nil, false, 0},
		{"new sample", func(f *fakeEngine) {
			f.snap.Flows[0].RTT.Add(20*msNS, 2000)
		}, true, 1},
		{"new flow of the pair", func(f *fakeEngine) {
			f.snap.Flows = append(f.snap.Flows, flow.Summary{Local: ap("10.0.0.1:40001"), Remote: ap("10.0.0.2:443"),
				RTT: est(2, 9*msNS, 9*msNS, 9*msNS, 9*msNS, 1*msNS, 3000), FirstSeen: 5})
		}, true, 2},
		{"first flow expired", func(f *fakeEngine) { f.snap.Flows = f.snap.Flows[1:] }, false, 0},
	}
	for _, st := range steps {
		if st.update != nil {
			fe.set(st.update)
		}
		r := runOnce(t, c)
		if got := len(r.find(MetricRTT)) == 1; got != st.wantLast {
			t.Errorf("%s: system.net.tcp.rtt sent = %v, want %v", st.name, got, st.wantLast)
		}
		if s := r.find(MetricRTTSamples); len(s) != 1 || s[0].value != st.wantSamples {
			t.Errorf("%s: samples = %v, want %v", st.name, s, st.wantSamples)
		}
		if len(r.find(MetricRTTAvg)) != 1 {
			t.Errorf("%s: avg not sent once", st.name)
		}
	}
}

func TestRunTags(t *testing.T) {
	flows := []flow.Summary{
		{Local: ap("10.0.0.1:40000"), Remote: ap("192.0.2.10:443"), RTT: est(1, msNS, msNS, msNS, msNS, msNS/2, 1), FirstSeen: 1},
		{Local: ap("10.0.0.1:40001"), Remote: ap("192.0.2.11:443"), RTT: est(1, msNS, msNS, msNS, msNS, msNS/2, 1), FirstSeen: 2},
		{Local: ap("10.0.0.1:40002"), Remote: ap("198.51.100.7:443"), RTT: est(1, msNS, msNS, msNS, msNS, msNS/2, 1), FirstSeen: 3},
		{Local: ap("10.0.0.1:40003"), Remote: ap("198.51.100.8:443"), RTT: est(1, msNS, msNS, msNS, msNS, msNS/2, 1), FirstSeen: 4},
	}
	res := &fakeResolver{
		hosts: map[string][]string{"api.example.com": {"192.0.2.10", "192.0.2.11"}},
		ptr:   map[string]string{"198.51.100.7": "ptr7.example.net", "192.0.2.10": "ignored.example.net"},
	}
	tests := []struct {
		name    string
		opts    Options
		extra   string
		wantDst []string // sorted
		tagsAdd []string
	}{
		{
			name:    "host names, reverse DNS, IPs; instance tags added",
			opts:    Options{AddInstanceTags: true},
			extra:   "tags: [env:test]\n",
			wantDst: []string{"dst:198.51.100.8", "dst:api.example.com", "dst:ptr7.example.net"},
			tagsAdd: []string{"env:test"},
		},
		{
			name:    "no instance tags inside the agent, no reverse DNS",
			opts:    Options{},
			extra:   "tags: [env:test]\nreverse_dns: false\n",
			wantDst: []string{"dst:198.51.100.7", "dst:198.51.100.8", "dst:api.example.com"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fe := &fakeEngine{snap: capture.Snapshot{Flows: flows}}
			inst := "interface: eth0\nips: [198.51.100.0/24]\nhosts: [api.example.com]\n" + tc.extra
			c := newTestCheck(t, tc.opts, inst, "", fe, res)
			waitFor(t, "engine", c.engineStarted)
			var r, first *recorder
			// Reverse DNS answers arrive in the background: the first run
			// may use IPs; wait until names settle.
			waitFor(t, "dst tags", func() bool {
				r = &recorder{}
				if _, err := c.Run(r, r); err != nil {
					t.Fatal(err)
				}
				if first == nil {
					first = r
				}
				var dsts []string
				for _, s := range r.find(MetricRTTAvg) {
					dsts = append(dsts, s.tags[1])
				}
				sort.Strings(dsts)
				return reflect.DeepEqual(dsts, tc.wantDst)
			})
			r.noDuplicates(t)
			for _, s := range r.subs {
				if !strings.HasPrefix(s.name, "system.net.tcp.rtt") {
					continue
				}
				if s.tags[0] != "src:10.0.0.1" || s.tags[2] != "iface:eth0" || !reflect.DeepEqual(s.tags[3:], tc.tagsAdd) && len(tc.tagsAdd) > 0 {
					t.Errorf("%s tags %v", s.name, s.tags)
				}
				if len(tc.tagsAdd) == 0 && len(s.tags) != 3 {
					t.Errorf("%s tags %v: instance tags added although AddInstanceTags is false", s.name, s.tags)
				}
			}
			for _, s := range r.find(MetricPackets) {
				if want := append([]string{"iface:eth0"}, tc.tagsAdd...); !reflect.DeepEqual(s.tags, want) {
					t.Errorf("health tags %v, want %v", s.tags, want)
				}
			}
			// The two addresses of api.example.com are one series (host
			// names are known before capture starts, so from the first run).
			for _, s := range first.find(MetricRTTSamples) {
				if s.tags[1] == "dst:api.example.com" && s.value != 2 {
					t.Errorf("api.example.com samples = %v, want 2", s.value)
				}
			}
		})
	}
}

// TestCaptureKeysReachEngine: the capture keys of an instance are what the
// engine is built with.
func TestCaptureKeysReachEngine(t *testing.T) {
	fe := &fakeEngine{}
	c := newTestCheck(t, Options{}, "interface: eth0\nall_remote_hosts: true\ncapture_buffer_mb: 8\ncapture_workers: 2\ncapture_nice: -10", "", fe, nil)
	waitFor(t, "engine", c.engineStarted)
	fe.mu.Lock()
	cc := fe.cfg
	fe.mu.Unlock()
	if cc.RingSize != 8<<20 || cc.Workers != 2 || cc.ReaderNice != -10 {
		t.Errorf("engine built with RingSize %d, Workers %d, ReaderNice %d; want %d, 2, -10", cc.RingSize, cc.Workers, cc.ReaderNice, 8<<20)
	}
}

func TestHostsResolvedAndPushed(t *testing.T) {
	res := &fakeResolver{hosts: map[string][]string{"a.example": {"192.0.2.1"}}}
	fe := &fakeEngine{}
	c := newTestCheck(t, Options{}, "interface: eth0\nhosts: [a.example, missing.example]\nreverse_dns: false\nips: [10.9.0.0/16]", "", fe, res)
	waitFor(t, "engine", c.engineStarted)
	fe.mu.Lock()
	remotes := fe.cfg.Remotes
	fe.mu.Unlock()
	want := []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16"), netip.MustParsePrefix("192.0.2.1/32")}
	if !reflect.DeepEqual(remotes, want) {
		t.Errorf("engine started with remotes %v, want %v", remotes, want)
	}
	for i := 0; i < 2; i++ {
		r := &recorder{}
		warns, err := c.Run(r, r)
		if err != nil {
			t.Fatal(err)
		}
		if !containsSub(warns, "hosts did not resolve: missing.example (no such host)") {
			t.Errorf("run %d warnings %q", i, warns)
		}
	}
}

func TestHostsNoneResolvedMatchesNothing(t *testing.T) {
	fe := &fakeEngine{}
	c := newTestCheck(t, Options{}, "interface: eth0\nhosts: [missing.example]\nreverse_dns: false", "", fe, &fakeResolver{})
	waitFor(t, "engine", c.engineStarted)
	fe.mu.Lock()
	defer fe.mu.Unlock()
	if !reflect.DeepEqual(fe.cfg.Remotes, []netip.Prefix{noMatch}) {
		t.Errorf("remotes %v: an empty list would monitor every host", fe.cfg.Remotes)
	}
}

func TestRemoteSet(t *testing.T) {
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	tests := []struct {
		name  string
		ips   []netip.Prefix
		addrs []netip.Addr
		hosts bool
		want  []netip.Prefix
	}{
		{"ips only", []netip.Prefix{p("10.0.0.0/8")}, nil, false, []netip.Prefix{p("10.0.0.0/8")}},
		{"merged and deduplicated", []netip.Prefix{p("192.0.2.1/32")}, []netip.Addr{a("192.0.2.1"), a("2001:db8::1")}, true,
			[]netip.Prefix{p("192.0.2.1/32"), p("2001:db8::1/128")}},
		{"nothing with hosts", nil, nil, true, []netip.Prefix{noMatch}},
		{"nothing without hosts (all remote hosts)", nil, nil, false, []netip.Prefix{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := remoteSet(tc.ips, tc.addrs, tc.hosts)
			if len(got) == 0 && len(tc.want) == 0 {
				return
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestServiceCheckAndWarnings(t *testing.T) {
	tests := []struct {
		name       string
		runErr     error
		runPanic   bool
		filter     capture.FilterStatus
		instance   string
		wantStatus ServiceCheckStatus
		wantMsg    string
		wantWarn   []string
	}{
		{name: "capturing", instance: "interface: eth0\nips: [10.0.0.1]", wantStatus: StatusOK},
		{name: "no permission", runErr: errors.New("capture: open eth0: operation not permitted"),
			instance: "interface: eth0\nips: [10.0.0.1]", wantStatus: StatusCritical,
			wantMsg:  "cannot capture on eth0: capture: open eth0: operation not permitted (retrying)",
			wantWarn: []string{"cannot capture on eth0: capture: open eth0: operation not permitted"}},
		{name: "engine panics", runPanic: true, instance: "interface: eth0\nips: [10.0.0.1]",
			wantStatus: StatusCritical, wantMsg: "capture engine panicked: engine exploded"},
		{name: "unknown key", instance: "interface: eth0\nips: [10.0.0.1]\nbogus: 1", wantStatus: StatusOK,
			wantWarn: []string{`instance "eth0": unknown key "bogus" is ignored`}},
		{name: "replay file missing", runErr: errors.New("capture: open x.pcap: no such file or directory"),
			instance: "interface: file\npcap: x.pcap\nall_remote_hosts: true", wantStatus: StatusCritical,
			wantMsg: "cannot replay x.pcap: capture: open x.pcap: no such file or directory"},
		// A coarser kernel filter loses nothing: a warning, not a problem.
		{name: "coarse kernel filter", instance: "interface: eth0\nips: [10.0.0.1]", wantStatus: StatusOK,
			filter:   capture.FilterStatus{Level: filter.Aggregated, Detail: "aggregated remote prefixes (3089 instructions, remote prefixes: 300)"},
			wantWarn: []string{"kernel filter on eth0 is coarser than configured", "remote prefixes: 300"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fe := &fakeEngine{runErr: tc.runErr, runPanic: tc.runPanic, snap: capture.Snapshot{Filter: tc.filter}}
			c := newTestCheck(t, Options{AddInstanceTags: true}, tc.instance, "", fe, nil)
			waitFor(t, "engine", c.engineStarted)
			if tc.wantStatus != StatusOK {
				waitFor(t, "capture error", func() bool { return c.status().err != nil })
			}
			// The same warnings come back on every run while the problem lasts.
			for run := 0; run < 3; run++ {
				r := &recorder{}
				warns, err := c.Run(r, r)
				if err != nil {
					t.Fatal(err)
				}
				if len(r.checks) != 1 {
					t.Fatalf("run %d: %d service checks", run, len(r.checks))
				}
				sc := r.checks[0]
				if sc.name != ServiceCheckName || sc.status != tc.wantStatus || !strings.Contains(sc.message, tc.wantMsg) {
					t.Errorf("run %d: service check %+v, want %v %q", run, sc, tc.wantStatus, tc.wantMsg)
				}
				for _, w := range tc.wantWarn {
					if !containsSub(warns, w) {
						t.Errorf("run %d: warnings %q lack %q", run, warns, w)
					}
				}
				if tc.wantStatus == StatusOK && len(tc.wantWarn) == 0 && len(warns) != 0 {
					t.Errorf("run %d: unexpected warnings %q", run, warns)
				}
			}
		})
	}
}

func TestCaptureRecovers(t *testing.T) {
	fe := &fakeEngine{runErr: errors.New("capture: open eth0: no such device")}
	c := newTestCheck(t, Options{}, "interface: eth0\nips: [10.0.0.1]", "", fe, nil)
	waitFor(t, "retries", fe.ranAtLeast(3))
	if st := runStatus(c); st != StatusCritical {
		t.Fatalf("status %v while the interface is missing", st)
	}
	fe.set(func(f *fakeEngine) { f.runErr = nil }) // the interface comes back
	waitFor(t, "recovery", func() bool { return runStatus(c) == StatusOK })
}

// TestBackoffResetsOnceCaptureRuns: a capture that ran again after an
// outage starts its next outage at the shortest backoff, however short the
// recovery was; the backoff of the old outage would leave capture down for
// its length again.
func TestBackoffResetsOnceCaptureRuns(t *testing.T) {
	lr := &logRecorder{}
	drop := make(chan error)
	fe := &fakeEngine{runErr: errors.New("capture: open eth0: no such device"), drop: drop}
	c := New(Options{Logger: lr})
	// A long backoffMax: whatever the machine's load, the recovery below is
	// far shorter than the outage that came before it.
	c.timing = timing{backoffMin: time.Millisecond, backoffMax: time.Hour, clearAfter: time.Millisecond}
	c.newEngine = func(capture.Config) (engine, error) { return fe, nil }
	c.res = &fakeResolver{}
	if err := configureYAML(c, "interface: eth0\nips: [10.0.0.1]", ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Cancel)
	retries := func() []string {
		lr.mu.Lock()
		defer lr.mu.Unlock()
		var out []string
		for _, l := range lr.lines {
			if _, after, ok := strings.Cut(l, "; retrying in "); ok {
				out = append(out, after)
			}
		}
		return out
	}
	waitFor(t, "four failed attempts", func() bool { return len(retries()) >= 4 })
	fe.set(func(f *fakeEngine) { f.runErr = nil }) // the interface comes back
	waitFor(t, "capture running again", func() bool {
		st := c.status()
		return st.state == stateCapturing && st.err == nil
	})
	before := len(retries())
	drop <- errors.New("capture: eth0: interface went down") // and goes away again
	waitFor(t, "the new outage's first retry", func() bool { return len(retries()) > before })
	if got := retries()[before]; got != "1ms" {
		t.Errorf("first retry of the new outage in %s, want 1ms (backoffMin); retries %q", got, retries())
	}
}

// TestEngineReplacedOnlyAfterPanic: a failing capture retries on the same
// engine (its flow table survives an interface loss), but after a panic the
// table may be half-updated, so the next attempt starts from a fresh engine,
// and each panic is counted.
func TestEngineReplacedOnlyAfterPanic(t *testing.T) {
	tests := []struct {
		name       string
		fe         *fakeEngine
		wantFresh  bool
		wantPanics bool
	}{
		{"failure keeps the engine", &fakeEngine{runErr: errors.New("capture: open eth0: no such device")}, false, false},
		{"panic replaces it", &fakeEngine{runPanic: true}, true, true},
		// A panic in capture.Engine.Run's packet loop, after the source opened.
		{"engine-internal panic replaces it", &fakeEngine{loopPanic: true}, true, true},
		// A panic of one of Run's own capture workers, which Run recovers
		// and returns.
		{"worker panic replaces it", &fakeEngine{runErr: &capture.PanicError{Worker: 1, Value: "worker exploded", Stack: []byte("stack")}}, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			made := 0
			c := New(Options{})
			c.timing = testTiming
			c.newEngine = func(cc capture.Config) (engine, error) {
				mu.Lock()
				made++
				mu.Unlock()
				return tc.fe, nil
			}
			if err := configureYAML(c, "interface: eth0\nips: [10.0.0.1]", ""); err != nil {
				t.Fatal(err)
			}
			defer c.Cancel()
			waitFor(t, "three attempts", tc.fe.ranAtLeast(3))
			var reset int
			tc.fe.set(func(f *fakeEngine) { f.runErr, f.runPanic, f.loopPanic, reset = nil, false, false, f.runs })
			// A run that opens and then panics reports capturing for a
			// moment: recovered is a run begun after the reset, and open.
			waitFor(t, "recovery", func() bool { return tc.fe.ranAtLeast(reset+1)() && c.status().state == stateCapturing })
			mu.Lock()
			engines := made
			mu.Unlock()
			tc.fe.mu.Lock()
			runs := tc.fe.runs
			tc.fe.mu.Unlock()
			if fresh := engines > 1; fresh != tc.wantFresh || tc.wantFresh && engines != runs {
				t.Errorf("%d engines for %d runs", engines, runs)
			}
			r := mustRun(t, c)
			p := r.find(MetricCapturePanics)
			if len(p) != 1 || (p[0].value > 0) != tc.wantPanics || tc.wantPanics && p[0].value != float64(runs-1) {
				t.Errorf("%s = %+v after %d runs", MetricCapturePanics, p, runs)
			}
		})
	}
}

func TestSampleWindows(t *testing.T) {
	fe := &fakeEngine{}
	c := newTestCheck(t, Options{}, "interface: eth0\nips: [10.0.0.1]\nsample: true\nsample_duration: 0.01\nsample_interval: 0.01", "", fe, nil)
	// Each window is one engine Run that ends by itself.
	waitFor(t, "three windows", fe.ranAtLeast(3))
	if st := runStatus(c); st != StatusOK {
		t.Errorf("status %v between windows", st)
	}
}

func TestHealthMetrics(t *testing.T) {
	fe := &fakeEngine{}
	fe.snap.Stats.Packets = 1000
	fe.snap.Stats.Kernel.Dropped = 7
	fe.snap.Stats.DecodeErrors[2] = 3  // truncated
	fe.snap.Stats.DecodeErrors[1] = 50 // not TCP: not an error
	fe.snap.Stats.Flow.Flows = 12
	fe.snap.Stats.Flow.EvictedActive = 1
	fe.snap.Stats.Flow.EvictedHalfOpen = 4
	fe.snap.Stats.Flow.Duplicates = 9
	fe.snap.Stats.Flow.RingsDenied = 11
	fe.snap.Stats.Kernel.RingSize = 16 << 20
	fe.snap.Stats.DNS.Malformed = 2
	fe.snap.DNSCached = 6
	c := newTestCheck(t, Options{}, "interface: eth0\nips: [10.0.0.1]", "", fe, nil)
	waitFor(t, "engine", c.engineStarted)
	r := mustRun(t, c)
	want := []sub{
		{"monotonic_count", MetricPackets, 1000, "", []string{"iface:eth0"}},
		{"monotonic_count", MetricKernelDrops, 7, "", []string{"iface:eth0"}},
		{"monotonic_count", MetricDecodeErrors, 3, "", []string{"iface:eth0"}},
		{"monotonic_count", MetricFlowsEvicted, 5, "", []string{"iface:eth0"}},
		{"monotonic_count", MetricRingsDenied, 11, "", []string{"iface:eth0"}},
		{"monotonic_count", MetricDuplicates, 9, "", []string{"iface:eth0"}},
		{"gauge", MetricFlowsTracked, 12, "", []string{"iface:eth0"}},
		{"gauge", MetricRingSize, 16 << 20, "", []string{"iface:eth0"}},
		{"monotonic_count", MetricCapturePanics, 0, "", []string{"iface:eth0"}},
		{"monotonic_count", MetricDNSMalformed, 2, "", []string{"iface:eth0"}},
		{"gauge", MetricDNSNames, 6, "", []string{"iface:eth0"}},
	}
	if !reflect.DeepEqual(r.subs, want) {
		t.Errorf("got %+v\nwant %+v", r.subs, want)
	}
	// Without dns_names, no DNS health metric.
	fe2 := &fakeEngine{snap: fe.snap}
	c2 := newTestCheck(t, Options{}, "interface: eth0\nips: [10.0.0.2]\ndns_names: false", "", fe2, nil)
	waitFor(t, "engine", c2.engineStarted)
	if r := mustRun(t, c2); !reflect.DeepEqual(r.subs, want[:len(want)-2]) {
		t.Errorf("dns_names: false: got %+v\nwant %+v", r.subs, want[:len(want)-2])
	}
}

func TestRunErrors(t *testing.T) {
	c := New(Options{})
	r := &recorder{}
	if _, err := c.Run(r, r); err == nil {
		t.Error("Run before Configure succeeded")
	}
	fe := &fakeEngine{snapPanic: true}
	c = newTestCheck(t, Options{}, "interface: eth0\nips: [10.0.0.1]", "", fe, nil)
	waitFor(t, "engine", c.engineStarted)
	if _, err := c.Run(r, r); err == nil || !strings.Contains(err.Error(), "panicked: snapshot exploded") {
		t.Errorf("Run with a panicking snapshot: err = %v", err)
	}
	c.Cancel()
	if _, err := c.Run(r, r); err == nil {
		t.Error("Run after Cancel succeeded")
	}
	if err := configureYAML(c, "interface: eth0\nips: [10.0.0.1]", ""); err == nil {
		t.Error("second Configure succeeded")
	}
}

func TestConfigureRejectsBadConfig(t *testing.T) {
	c := New(Options{})
	err := configureYAML(c, "interface: eth0\nips: [10.0.0.300]", "")
	if err == nil || err.Error() != `instance "eth0": ips[0]: "10.0.0.300" is not an IP address or CIDR` {
		t.Fatalf("err = %v", err)
	}
	c.Cancel() // nothing started; must not block or panic
}

func TestCancel(t *testing.T) {
	tests := []struct {
		name     string
		instance string
		fe       *fakeEngine
	}{
		{"running", "interface: eth0\nips: [10.0.0.1]", &fakeEngine{}},
		{"retrying", "interface: eth0\nips: [10.0.0.1]", &fakeEngine{runErr: errors.New("down")}},
		{"resolving hosts", "interface: eth0\nhosts: [a.example]", &fakeEngine{}},
		{"sampling", "interface: eth0\nips: [10.0.0.1]\nsample: true\nsample_duration: 1\nsample_interval: 3600", &fakeEngine{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t)
			c := newTestCheck(t, Options{}, tc.instance, "", tc.fe, &fakeResolver{hosts: map[string][]string{"a.example": {"192.0.2.1"}}})
			waitFor(t, "engine", c.engineStarted)
			start := time.Now()
			c.Cancel()
			if d := time.Since(start); d > cancelWait {
				t.Errorf("Cancel took %s", d)
			}
			c.Cancel() // idempotent
			select {
			case <-c.CaptureDone():
			default:
				t.Error("CaptureDone not closed after Cancel")
			}
			tc.fe.mu.Lock()
			running := tc.fe.running
			tc.fe.mu.Unlock()
			if running {
				t.Error("engine still running after Cancel")
			}
		})
	}
}

type logRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (l *logRecorder) log(f string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(f, a...))
}
func (l *logRecorder) Debugf(f string, a ...any) { l.log(f, a...) }
func (l *logRecorder) Infof(f string, a ...any)  { l.log(f, a...) }
func (l *logRecorder) Warnf(f string, a ...any)  { l.log(f, a...) }
func (l *logRecorder) Errorf(f string, a ...any) { l.log(f, a...) }

func TestConfigureLogsWarnings(t *testing.T) {
	lr := &logRecorder{}
	c := newTestCheck(t, Options{Logger: lr}, "interface: eth0\nips: [10.0.0.1]\nextra_key: 1", "", &fakeEngine{}, nil)
	c.Cancel()
	lr.mu.Lock()
	defer lr.mu.Unlock()
	if !containsSub(lr.lines, `unknown key "extra_key"`) {
		t.Errorf("log %q", lr.lines)
	}
}

func TestGoSafeRecoversPanics(t *testing.T) {
	lr := &logRecorder{}
	c := New(Options{Logger: lr})
	c.goSafe("test worker", func() { panic("kaboom") })
	c.wg.Wait()
	if err := c.status().panicErr; err == nil || !strings.Contains(err.Error(), "test worker panicked: kaboom") {
		t.Errorf("panicErr = %v", err)
	}
	if !containsSub(lr.lines, "test worker panicked: kaboom") {
		t.Errorf("panic not logged: %q", lr.lines)
	}
}

func containsSub(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func TestResolverPanicRecovered(t *testing.T) {
	fe := &fakeEngine{}
	c := newTestCheck(t, Options{}, "interface: eth0\nhosts: [a.example]\nreverse_dns: false", "", fe, &fakeResolver{panic: true})
	// Capture still starts, matching nothing, and the panic is reported.
	waitFor(t, "engine", c.engineStarted)
	waitFor(t, "panic recorded", func() bool { return c.status().panicErr != nil })
	r := mustRun(t, c)
	if sc := r.checks[0]; sc.status != StatusCritical || !strings.Contains(sc.message, "host resolution panicked: resolver exploded") {
		t.Errorf("service check %+v", sc)
	}
	fe.mu.Lock()
	defer fe.mu.Unlock()
	if !reflect.DeepEqual(fe.cfg.Remotes, []netip.Prefix{noMatch}) {
		t.Errorf("remotes %v", fe.cfg.Remotes)
	}
}

func TestRDNSCacheBounded(t *testing.T) {
	res := &fakeResolver{ptr: map[string]string{"192.0.2.1": "one.example", "192.0.2.2": "two.example", "192.0.2.3": "three.example"}}
	rc := newRDNSCache(res, 2, discard{})
	now := time.Now()
	ctx := context.Background()
	for _, a := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"} {
		addr := netip.MustParseAddr(a)
		if n := rc.name(addr, now); n != "" {
			t.Errorf("%s: name %q before lookup", a, n)
		}
		rc.lookup(ctx, <-rc.queue)
	}
	if len(rc.entries) != 2 {
		t.Errorf("%d entries, want the bound 2", len(rc.entries))
	}
	if n := rc.name(netip.MustParseAddr("192.0.2.1"), now); n != "one.example" {
		t.Errorf("cached name %q (trailing dot must be gone)", n)
	}
	if n := rc.name(netip.MustParseAddr("192.0.2.3"), now); n != "" {
		t.Errorf("uncached address got %q", n)
	}
	// Expired entries are looked up again.
	if n := rc.name(netip.MustParseAddr("192.0.2.1"), now.Add(2*rdnsTTL)); n != "one.example" {
		t.Errorf("stale name %q: a stale name is kept until refreshed", n)
	}
	if len(rc.queue) == 0 {
		t.Error("expired entry not queued for refresh")
	}
}

func TestSnapshotFailure(t *testing.T) {
	fe := &fakeEngine{snapErr: errors.New("capture: snapshot: context deadline exceeded")}
	fe.snap.Stats.Packets = 10
	c := newTestCheck(t, Options{}, "interface: eth0\nips: [10.0.0.1]", "", fe, nil)
	waitFor(t, "engine", c.engineStarted)
	r := &recorder{}
	warns, err := c.Run(r, r)
	if err != nil {
		t.Fatal(err)
	}
	if !containsSub(warns, "capture on eth0: no snapshot this run: capture: snapshot: context deadline exceeded") {
		t.Errorf("warnings %q", warns)
	}
	// No counters at all rather than zeros that would look like a reset.
	if len(r.subs) != 0 {
		t.Errorf("submitted %+v without a snapshot", r.subs)
	}
	if len(r.checks) != 1 || r.commits != 1 {
		t.Errorf("checks %+v commits %d", r.checks, r.commits)
	}
}
