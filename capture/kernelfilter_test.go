package capture

// Kernel-filter tests on a real AF_PACKET capture: the engine captures on A's
// veth of a lab (tests/lab, kernel bridge, root), B serves, A connects.
// Counters tell where a frame was dropped: Flow.Filtered counts TCP frames
// that reached user space for an unmonitored remote, so a frame the kernel
// filter dropped never shows there.

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gometro/go-metro/capture/filter"
	"github.com/gometro/go-metro/capture/packet"
	"github.com/gometro/go-metro/tests/lab"
)

// manyHosts6 returns n IPv6 /128s, each in its own /64 of 2001:db8::/48 (but
// not B's 2001:db8::/64): more than an exact filter can hold from about 220.
func manyHosts6(n int) []netip.Prefix {
	var out []netip.Prefix
	for i := range n {
		b := lab.AddrB6.As16()
		b[6], b[7] = byte((i+1)>>8), byte(i+1)
		out = append(out, netip.PrefixFrom(netip.AddrFrom16(b), 128))
	}
	return out
}

type liveEngine struct {
	*Engine
	t   *testing.T
	l   *lab.Lab
	srv map[netip.Addr]netip.AddrPort
	ctx context.Context
	// ran is closed when the current Run returned runErr.
	ran    chan struct{}
	runErr error
}

// run starts Run in A and returns a channel closed when it returns.
func (le *liveEngine) run() {
	errc := le.l.A.Go(func() error { return le.Run(le.ctx) })
	ran := make(chan struct{})
	le.ran = ran
	go func() { le.runErr = <-errc; close(ran) }()
}

// startLive runs an engine on A's veth with remotes, and servers in B on
// each of addrs.
func startLive(t *testing.T, remotes []netip.Prefix, addrs ...netip.Addr) *liveEngine {
	t.Helper()
	return startLiveWith(t, nil, remotes, addrs...)
}

// startLiveWith is startLive with setup run on the lab before the engine
// starts.
func startLiveWith(t *testing.T, setup func(*lab.Lab), remotes []netip.Prefix, addrs ...netip.Addr) *liveEngine {
	t.Helper()
	l := lab.New(t, lab.Config{KernelBridge: true})
	if setup != nil {
		setup(l)
	}
	le := &liveEngine{t: t, l: l, srv: map[netip.Addr]netip.AddrPort{}}
	for _, a := range addrs {
		if a != lab.AddrB4 && a != lab.AddrB6 {
			if _, err := l.B.Run("ip", "addr", "add", netip.PrefixFrom(a, 64).String(), "dev", l.BIf, "nodad"); err != nil {
				t.Fatal(err)
			}
			if _, err := l.A.Run("ip", "neigh", "replace", a.String(), "lladdr", lab.MACB.String(), "dev", l.AIf, "nud", "permanent"); err != nil {
				t.Fatal(err)
			}
		}
		s, err := l.B.Serve(netip.AddrPortFrom(a, 0))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		le.srv[a] = s.Addr
	}
	e, err := New(Config{Interface: l.AIf, Remotes: remotes, PollTimeout: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	le.Engine = e
	ctx, cancel := context.WithCancel(context.Background())
	le.ctx = ctx
	le.run()
	t.Cleanup(func() {
		cancel()
		<-le.ran
		if le.runErr != nil {
			t.Errorf("Run: %v", le.runErr)
		}
	})
	select {
	case <-e.Opened():
	case <-le.ran:
		t.Fatalf("Run ended before opening: %v", le.runErr)
	case <-time.After(10 * time.Second):
		t.Fatal("the engine did not open within 10 s")
	}
	return le
}

// exchange makes one short request/response connection from A to the
// server on addr.
func (le *liveEngine) exchange(addr netip.Addr) {
	le.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := &lab.Client{Host: le.l.A, InfoEvery: -1}
	if _, err := c.RequestResponse(ctx, le.srv[addr], 3, 100, 100, 0); err != nil {
		le.t.Fatal(err)
	}
}

func (le *liveEngine) snapshot() *Snapshot {
	le.t.Helper()
	s, err := le.Snapshot(context.Background())
	if err != nil {
		le.t.Fatal(err)
	}
	return s
}

// flowTo waits until the table holds a flow to addr, then returns the
// snapshot: frames are processed in ring order, so everything captured
// before that flow's frames has been counted by then.
func (le *liveEngine) flowTo(addr netip.Addr) *Snapshot {
	le.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := le.snapshot()
		for _, f := range s.Flows {
			if f.Remote.Addr() == addr && f.Packets > 0 {
				return s
			}
		}
		if time.Now().After(deadline) {
			le.t.Fatalf("no flow to %v within 5 s (stats %+v)", addr, s.Stats)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func hasFlowTo(s *Snapshot, addr netip.Addr) bool {
	for _, f := range s.Flows {
		if f.Remote.Addr() == addr {
			return true
		}
	}
	return false
}

// TestLiveFilterFallbackAtOpen: 300 IPv6 hosts (what 300 /128 entries in
// `ips` become) do not fit an exact kernel filter. The capture must still
// open, with aggregated prefixes, a counter and a warning detail, see the
// monitored traffic, and keep monitoring exact in user space.
func TestLiveFilterFallbackAtOpen(t *testing.T) {
	near := netip.MustParseAddr("2001:db8::3") // in B's /64, not monitored
	remotes := append(manyHosts6(299), netip.PrefixFrom(lab.AddrB6, 128))
	if _, err := filter.Build(packet.LinkTypeEthernet, remotes, nil, DefaultSnaplen); !errors.Is(err, filter.ErrTooLarge) {
		t.Fatalf("the test's remotes fit an exact filter (%v): it would test nothing", err)
	}
	le := startLive(t, remotes, lab.AddrB4, lab.AddrB6, near)

	s := le.snapshot()
	if s.Filter.Level != filter.Aggregated || s.Stats.FilterFallbacks != 1 || s.Filter.Detail == "" || s.Filter.Instructions == 0 {
		t.Fatalf("filter %+v, %d fallbacks; want aggregated, 1", s.Filter, s.Stats.FilterFallbacks)
	}
	// IPv4 is outside every aggregated prefix: the kernel drops it.
	le.exchange(lab.AddrB4)
	le.exchange(lab.AddrB6)
	s = le.flowTo(lab.AddrB6)
	if hasFlowTo(s, lab.AddrB4) || s.Stats.Flow.Filtered != 0 {
		t.Errorf("IPv4 traffic reached user space (%d filtered there): the aggregated filter should drop it", s.Stats.Flow.Filtered)
	}
	// A neighbour in the same /64 passes the coarse kernel filter, and user
	// space, which checks the exact list, must not monitor it.
	le.exchange(near)
	le.exchange(lab.AddrB6)
	deadline := time.Now().Add(5 * time.Second)
	for s = le.snapshot(); s.Stats.Flow.Filtered == 0 && time.Now().Before(deadline); s = le.snapshot() {
		time.Sleep(10 * time.Millisecond)
	}
	if s.Stats.Flow.Filtered == 0 || hasFlowTo(s, near) {
		t.Errorf("unmonitored neighbour %v: %d frames filtered in user space, flow tracked %v; want > 0, false", near, s.Stats.Flow.Filtered, hasFlowTo(s, near))
	}
}

// TestLiveSetRemotesOutgrowsFilter: hosts re-resolve to more addresses than
// an exact filter holds. SetRemotes must say so (ErrCoarseFilter), install
// the fallback and the new addresses' traffic must be captured; before, the
// build error was dropped and the old program kept dropping it.
func TestLiveSetRemotesOutgrowsFilter(t *testing.T) {
	le := startLive(t, []netip.Prefix{netip.PrefixFrom(lab.AddrB4, 32)}, lab.AddrB4, lab.AddrB6)
	if s := le.snapshot(); s.Filter.Level != filter.Exact || s.Stats.FilterFallbacks != 0 {
		t.Fatalf("filter %+v with %d fallbacks before re-resolving, want exact", s.Filter, s.Stats.FilterFallbacks)
	}
	err := le.SetRemotes(append(manyHosts6(299), netip.PrefixFrom(lab.AddrB6, 128)))
	if !errors.Is(err, ErrCoarseFilter) {
		t.Fatalf("SetRemotes = %v, want ErrCoarseFilter", err)
	}
	s := le.snapshot()
	if s.Filter.Level != filter.Aggregated || s.Stats.FilterFallbacks != 1 {
		t.Errorf("filter %+v, %d fallbacks; want aggregated, 1", s.Filter, s.Stats.FilterFallbacks)
	}
	le.exchange(lab.AddrB6)
	le.flowTo(lab.AddrB6)
}

// TestLiveSetRemotesNewAddresses: a host moves to a new address. From the
// moment SetRemotes returns, the new address's traffic is captured and the
// old one's is dropped by the kernel.
func TestLiveSetRemotesNewAddresses(t *testing.T) {
	le := startLive(t, []netip.Prefix{netip.PrefixFrom(lab.AddrB4, 32)}, lab.AddrB4, lab.AddrB6)
	le.exchange(lab.AddrB6) // not monitored yet: dropped in the kernel
	le.exchange(lab.AddrB4)
	s := le.flowTo(lab.AddrB4)
	if hasFlowTo(s, lab.AddrB6) || s.Stats.Flow.Filtered != 0 {
		t.Fatalf("before re-resolving: flow to %v %v, %d frames filtered in user space; want none", lab.AddrB6, hasFlowTo(s, lab.AddrB6), s.Stats.Flow.Filtered)
	}
	if err := le.SetRemotes([]netip.Prefix{netip.PrefixFrom(lab.AddrB6, 128)}); err != nil {
		t.Fatalf("SetRemotes: %v", err)
	}
	le.exchange(lab.AddrB4) // no longer monitored
	le.exchange(lab.AddrB6)
	s = le.flowTo(lab.AddrB6)
	if s.Stats.Flow.Filtered != 0 || s.Filter.Level != filter.Exact || s.Stats.FilterFallbacks != 0 {
		t.Errorf("after re-resolving: %d frames filtered in user space (want 0: the kernel drops the old address), filter %+v", s.Stats.Flow.Filtered, s.Filter)
	}
}

func TestSetRemotesRejectsInvalid(t *testing.T) {
	e, err := New(Config{Interface: "lo"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SetRemotes([]netip.Prefix{{}}); err == nil {
		t.Error("SetRemotes accepted an invalid prefix")
	}
}

// TestLiveFilterKernelRefusal: a program within the instruction limit can
// still be refused, for the socket's option memory (net.core.optmem_max,
// per network namespace). At open, Fit falls back to a level the kernel
// takes. When the kernel takes nothing for new remotes, SetRemotes says so
// and Run ends with the error rather than keep filtering on the old
// addresses; a reopen then fails as long as no filter can be attached
// (never an unfiltered capture), and captures the new remotes once one can.
func TestLiveFilterKernelRefusal(t *testing.T) {
	le := startLiveWith(t, func(l *lab.Lab) {
		if err := l.A.WriteSysctl("net/core/optmem_max", "4096"); err != nil {
			t.Fatal(err)
		}
	}, append(manyHosts6(99), netip.PrefixFrom(lab.AddrB6, 128)), lab.AddrB4, lab.AddrB6)
	s := le.snapshot()
	// 100 /128s fit the instruction limit but not 4 KiB of option memory.
	if s.Filter.Level == filter.Exact || s.Stats.FilterFallbacks != 1 || !strings.Contains(s.Filter.Detail, "cannot allocate memory") {
		t.Fatalf("filter %+v, %d fallbacks; want a coarser level refused for memory", s.Filter, s.Stats.FilterFallbacks)
	}
	t.Logf("with 4 KiB of option memory: %s", s.Filter.Detail)
	le.exchange(lab.AddrB6)
	le.flowTo(lab.AddrB6)

	if err := le.l.A.WriteSysctl("net/core/optmem_max", "64"); err != nil {
		t.Fatal(err)
	}
	err := le.SetRemotes([]netip.Prefix{netip.PrefixFrom(lab.AddrB4, 32)})
	if err == nil || errors.Is(err, ErrCoarseFilter) {
		t.Fatalf("SetRemotes with every filter refused = %v, want a hard error", err)
	}
	select {
	case <-le.ran:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not end after the kernel refused every filter")
	}
	if le.runErr == nil || le.runErr.Error() != err.Error() {
		t.Fatalf("Run = %v, want SetRemotes' error %v", le.runErr, err)
	}
	le.run()
	<-le.ran
	if le.runErr == nil {
		t.Fatal("Run reopened without a kernel filter")
	}
	if err := le.l.A.WriteSysctl("net/core/optmem_max", "131072"); err != nil {
		t.Fatal(err)
	}
	le.runErr = nil
	le.run()
	for deadline := time.Now().Add(5 * time.Second); le.snapshot().Stats.SourceOpens < 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no reopen within 5 s once filters fit again")
		}
	}
	le.exchange(lab.AddrB4)
	s = le.flowTo(lab.AddrB4)
	if s.Filter.Level != filter.Exact || s.Stats.SourceOpens != 2 {
		t.Errorf("after the reopen: filter %+v, %d opens; want exact, 2", s.Filter, s.Stats.SourceOpens)
	}
}
