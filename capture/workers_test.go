package capture

// Capture workers on a real AF_PACKET fanout group: the engine captures A's
// veth of a lab (tests/lab, kernel bridge, root) with several workers, and
// every connection must be whole in exactly one worker's table.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/gometro/go-metro/capture/flow"
	"github.com/gometro/go-metro/capture/packet"
	"github.com/gometro/go-metro/tests/lab"
)

// startWorkers runs an engine of cfg in A until the test ends, and returns
// it with a function that stops it and returns Run's error.
func startWorkers(t *testing.T, l *lab.Lab, cfg Config) (*Engine, func() error) {
	t.Helper()
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := l.A.Go(func() error { return e.Run(ctx) })
	var runErr error
	stopped := false
	stop := func() error {
		if !stopped {
			cancel()
			runErr, stopped = <-errc, true
		}
		return runErr
	}
	t.Cleanup(func() { stop() })
	select {
	case <-e.Opened():
	case err := <-errc:
		stopped, runErr = true, err
		t.Fatalf("Run ended before opening: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the engine did not open within 10 s")
	}
	return e, stop
}

// checkWhole checks, with Run stopped, that every connection of recs is in
// exactly one worker's table, with RTT samples, and that the workers
// shared them.
func checkWhole(t *testing.T, e *Engine, recs []*lab.ConnRecord) {
	t.Helper()
	where := map[[2]netip.AddrPort][]int{}
	perWorker := make([]int, len(e.workers))
	for i, w := range e.workers {
		for _, f := range w.table.AppendSummaries(nil) {
			k := [2]netip.AddrPort{f.Local, f.Remote}
			where[k] = append(where[k], i)
			perWorker[i]++
			if f.RTT.Samples == 0 {
				t.Errorf("%v -> %v (worker %d): no RTT sample in %d packets", f.Local, f.Remote, i, f.Packets)
			}
		}
	}
	for _, r := range recs {
		k := [2]netip.AddrPort{r.Local, r.Remote}
		if ws := where[k]; len(ws) != 1 {
			t.Errorf("%v -> %v: in workers %v, want exactly one", r.Local, r.Remote, ws)
		}
	}
	busy := 0
	for _, n := range perWorker {
		if n > 0 {
			busy++
		}
	}
	t.Logf("%d connections; flows per worker %v", len(recs), perWorker)
	if busy < 2 {
		t.Errorf("flows per worker %v: the hash put everything on one worker", perWorker)
	}
}

// shortConnsTo makes n short connections from A to a server in B at each
// of addrs, waits until e tracks them all, and returns them with a
// snapshot taken then.
func shortConnsTo(t *testing.T, l *lab.Lab, e *Engine, n int, addrs ...netip.Addr) ([]*lab.ConnRecord, *Snapshot) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var recs []*lab.ConnRecord
	for _, a := range addrs {
		srv, err := l.B.Serve(netip.AddrPortFrom(a, 0))
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		c := &lab.Client{Host: l.A, InfoEvery: -1}
		rs, err := c.ShortConns(ctx, srv.Addr, n, 8, 100, 2000)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rs...)
	}
	waitFlows(t, e, len(recs))
	s, err := e.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return recs, s
}

// TestWorkersKeepConnectionsWhole: with three workers, each of 300 short
// IPv4 and IPv6 connections is timed, whole, by exactly one of them, and
// they share the connections.
func TestWorkersKeepConnectionsWhole(t *testing.T) {
	l := lab.New(t, lab.Config{KernelBridge: true})
	e, stop := startWorkers(t, l, Config{Interface: l.AIf, Workers: 3, PollTimeout: 20 * time.Millisecond})
	if s, err := e.Snapshot(context.Background()); err != nil {
		t.Fatal(err)
	} else if s.Workers != 3 {
		t.Fatalf("snapshot of %d workers, want 3", s.Workers)
	}
	recs, s := shortConnsTo(t, l, e, 150, lab.AddrB4, lab.AddrB6)
	if s.Stats.Kernel.Dropped != 0 {
		t.Errorf("kernel dropped %d frames", s.Stats.Kernel.Dropped)
	}
	// FlowPages, from the running workers, lists the same flows.
	type key struct {
		local, remote netip.AddrPort
		firstSeen     int64
	}
	listed := map[key]int{}
	slots := map[int32]bool{} // the workers' tables share no slot
	if err := e.FlowPages(context.Background(), make([]flow.Summary, 16), false, time.Second, func(flows []flow.Summary, _ map[netip.Addr]string) {
		for _, f := range flows {
			listed[key{f.Local, f.Remote, f.FirstSeen}]++
			if slots[f.Slot] {
				t.Errorf("two flows in slot %d", f.Slot)
			}
			slots[f.Slot] = true
		}
	}); err != nil {
		t.Fatal(err)
	}
	for _, f := range s.Flows {
		if n := listed[key{f.Local, f.Remote, f.FirstSeen}]; n != 1 {
			t.Errorf("flow %v-%v listed %d times by FlowPages", f.Local, f.Remote, n)
		}
	}
	if len(listed) != len(s.Flows) {
		t.Errorf("FlowPages listed %d flows, the snapshot %d", len(listed), len(s.Flows))
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	checkWhole(t, e, recs)
	// EachFlow merges the workers' tables in order.
	var prev *flow.Summary
	n := 0
	if err := e.EachFlow(func(f *flow.Summary) {
		if prev != nil && flow.Order(prev, f) > 0 {
			t.Errorf("EachFlow: %v-%v before %v-%v", prev.Local, prev.Remote, f.Local, f.Remote)
		}
		c := *f
		prev = &c
		n++
	}); err != nil {
		t.Fatal(err)
	}
	if n != s.Stats.Flow.Flows {
		t.Errorf("EachFlow listed %d flows of %d", n, s.Stats.Flow.Flows)
	}
}

// waitFlows waits until the merged snapshot holds n flows with samples.
func waitFlows(t *testing.T, e *Engine, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := e.Snapshot(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		timed := 0
		for _, f := range s.Flows {
			if f.RTT.Samples > 0 {
				timed++
			}
		}
		if timed >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Logf("%d of %d flows timed after 10 s", timed, n)
			return // checkWhole says which
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestWorkersTunnels: connections inside two VXLAN overlays between A and
// B, one over the lab's IPv4 link carrying IPv4 and one over its IPv6 link
// carrying IPv6, captured on A's underlay with three workers, are whole in
// one worker each. The kernel's VXLAN endpoints pick the outer UDP source
// port of each direction by a hash of the inner flow that is not
// symmetric, so a hash of the outer headers would split them. (GRE and
// its per-direction optional fields are covered by filter's
// TestFanoutSymmetric: this kernel has no GRE devices.)
func TestWorkersTunnels(t *testing.T) {
	l := lab.New(t, lab.Config{KernelBridge: true})
	vxA, vxB := netip.MustParseAddr("10.42.0.1"), netip.MustParseAddr("10.42.0.2")
	vx6A, vx6B := netip.MustParseAddr("fd42::1"), netip.MustParseAddr("fd42::2")
	for _, h := range []struct {
		host                                  *lab.Host
		dev                                   string
		local, remote, local6, remote6, a, a6 netip.Addr
	}{
		{l.A, l.AIf, lab.AddrA4, lab.AddrB4, lab.AddrA6, lab.AddrB6, vxA, vx6A},
		{l.B, l.BIf, lab.AddrB4, lab.AddrA4, lab.AddrB6, lab.AddrA6, vxB, vx6B},
	} {
		for _, args := range [][]string{
			{"link", "add", "vx42", "type", "vxlan", "id", "42", "local", h.local.String(), "remote", h.remote.String(), "dstport", "4789", "dev", h.dev},
			{"addr", "add", h.a.String() + "/24", "dev", "vx42"},
			{"link", "set", "vx42", "up"},
			{"link", "add", "vx43", "type", "vxlan", "id", "43", "local", h.local6.String(), "remote", h.remote6.String(), "dstport", "4789", "dev", h.dev},
			{"addr", "add", h.a6.String() + "/64", "dev", "vx43", "nodad"},
			{"link", "set", "vx43", "up"},
		} {
			if _, err := h.host.Run("ip", args...); err != nil {
				t.Fatal(err)
			}
		}
	}
	e, stop := startWorkers(t, l, Config{Interface: l.AIf, Workers: 3, PollTimeout: 20 * time.Millisecond,
		LocalIPs: []netip.Prefix{netip.PrefixFrom(vxA, 32), netip.PrefixFrom(vx6A, 128)},
		Tunnels:  packet.EncapVXLAN})
	recs, s := shortConnsTo(t, l, e, 100, vxB, vx6B)
	if s.Stats.Tunnelled == 0 {
		t.Fatalf("no tunnelled segment decoded (stats %+v)", s.Stats)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	checkWhole(t, e, recs)
}

// TestWorkerPanic: a panic on a worker other than the first ends Run with
// a *PanicError naming it, every source closed, and the engine answers
// snapshots afterwards.
func TestWorkerPanic(t *testing.T) {
	l := lab.New(t, lab.Config{KernelBridge: true})
	e, stop := startWorkers(t, l, Config{Interface: l.AIf, Workers: 3, PollTimeout: 20 * time.Millisecond})
	// A request runs on the worker's own goroutine, between two packets,
	// as the per-packet code does.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.call(ctx, func(w *worker) {
		if w.id == 2 && w.src != nil {
			panic(fmt.Sprintf("worker %d: injected", w.id))
		}
	})
	err := stop()
	var p *PanicError
	if !errors.As(err, &p) || p.Worker != 2 || len(p.Stack) == 0 {
		t.Fatalf("Run: %v, want a *PanicError of worker 2 with its stack", err)
	}
	t.Logf("Run: %v", err)
	for _, w := range e.workers {
		if w.src != nil {
			t.Errorf("worker %d still holds its source", w.id)
		}
	}
	if _, err := e.Snapshot(context.Background()); err != nil {
		t.Errorf("Snapshot after the panic: %v", err)
	}
}
