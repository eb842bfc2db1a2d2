package tests

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/gometro/go-metro/capture"
	"github.com/gometro/go-metro/capture/flow"
	"github.com/gometro/go-metro/rttcheck"
	"github.com/gometro/go-metro/tests/lab"
)

// silent is an address in A's subnet that nobody owns: A sends it SYNs (a
// static neighbour entry points it at B's MAC, and B, not a router, drops
// them) and nothing ever answers, so every probe is a half-open flow, as in
// a SYN flood with spoofed or dead targets.
var silent = netip.MustParseAddr("192.0.2.3")

// TestFloodBoundedFlowTable keeps real connections running from A to B
// while A port-scans B's closed ports (answered by RST: closed flows) and
// SYN-floods an address that never answers (half-open flows), tens of
// thousands of probes far past a small max_flows, with the real check and
// a bare engine each in their own process in A, both with max_flows 256.
// It asserts that the table never holds more than max_flows (checked
// between every chunk of 1000 probes), that scan flows are evicted (closed
// and half-open ones, never an established one), that the real connections
// keep their flows and take new RTT samples and the check still reports
// their RTT, and that the processes' memory does not grow with the number
// of probes.
func TestFloodBoundedFlowTable(t *testing.T) {
	const (
		maxFlows = 256
		chunk    = 1000
		closed   = 20 // chunks of probes to B's closed ports (RST)
		halfOpen = 10 // chunks of probes to the silent address
		probes   = (closed + halfOpen) * chunk
		realConn = 4 // long request/response connections, plus one bulk
		// memSlack is what a process may grow besides the flow table:
		// snapshot copies, Go heap and GC headroom, runtime structures.
		// A leak of one flow per probe would be probes*FlowBytes = 27 MB.
		memSlack = 8 << 20
	)
	memBound := flow.ReservedBytes(maxFlows) + memSlack

	l := lab.New(t, lab.Config{KernelBridge: true})
	if _, err := l.A.Run("ip", "neigh", "replace", silent.String(), "lladdr", lab.MACB.String(), "dev", l.AIf, "nud", "permanent"); err != nil {
		t.Fatal(err)
	}
	srv := serveB4(t, l)

	chk := startCheckInstance(t, l, checkInstance(l, silent.String()), "max_flows: 256\nexp_ttl: 60\n", "", nil)
	eng := startEngineProbe(t, l, append(l.Remotes(), netip.PrefixFrom(silent, 32)), maxFlows, 0, 0, nil)
	tags := pairTags(l, lab.AddrA4, lab.AddrB4)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := &lab.Client{Host: l.A, InfoEvery: -1}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var workErrs []error
	keep := func(err error) {
		if err != nil && ctx.Err() == nil && !errors.Is(err, context.Canceled) {
			mu.Lock()
			workErrs = append(workErrs, err)
			mu.Unlock()
		}
	}
	for i := 0; i < realConn; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.RequestResponse(ctx, srv.Addr, 1<<20, 200, 3000, 20*time.Millisecond)
			keep(err)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, err := c.BulkSend(ctx, srv.Addr, 1<<40, 2<<20)
		keep(err)
	}()
	time.Sleep(500 * time.Millisecond) // let the real connections establish and take samples

	first := runCheck(t, chk)
	engBefore, err := eng.Do("snap")
	if err != nil || engBefore.Err != "" {
		t.Fatalf("engine snapshot: %v %s", err, engBefore.Err)
	}
	if !hasRTT(first, tags) {
		t.Fatalf("before the flood the check reports no RTT for the pair: %s", describe(first))
	}

	// The flood, in chunks, with a check Run and an engine snapshot
	// after each.
	var res lab.ScanResult
	maxTracked, maxEngine := 0.0, 0
	for i := 0; i < closed+halfOpen; i++ {
		target, wait := lab.AddrB4, 500*time.Millisecond
		if i%3 == 2 { // interleaved, so both kinds compete for slots
			target, wait = silent, 20*time.Millisecond
		}
		r, err := l.A.Scan(ctx, target, chunk, 500, wait, srv.Addr.Port())
		if err != nil {
			t.Fatalf("scan: %v", err)
		}
		res.Attempts += r.Attempts
		res.Refused += r.Refused
		res.Connected += r.Connected
		res.Pending += r.Pending
		run := runCheck(t, chk)
		if v, ok := run.Value(rttcheck.MetricFlowsTracked); !ok {
			t.Errorf("no %s in a Run", rttcheck.MetricFlowsTracked)
		} else if maxTracked = max(maxTracked, v); v > maxFlows {
			t.Errorf("after %d probes the check reports %v flows tracked, max_flows is %d", res.Attempts, v, maxFlows)
		}
		snap, err := eng.Do("snap")
		if err != nil || snap.Err != "" {
			t.Fatalf("engine snapshot: %v %s", err, snap.Err)
		}
		if maxEngine = max(maxEngine, snap.Stats.Flow.Flows); snap.Stats.Flow.Flows > maxFlows || len(snap.Flows) > maxFlows {
			t.Errorf("after %d probes the engine tracks %d flows (%d in the snapshot), max_flows is %d",
				res.Attempts, snap.Stats.Flow.Flows, len(snap.Flows), maxFlows)
		}
	}
	time.Sleep(300 * time.Millisecond) // the real connections take fresh samples after the flood
	last := runCheck(t, chk)
	engAfter, err := eng.Do("snap")
	if err != nil || engAfter.Err != "" {
		t.Fatalf("engine snapshot: %v %s", err, engAfter.Err)
	}
	cancel()
	wg.Wait()
	for _, err := range workErrs {
		t.Errorf("workload: %v", err)
	}

	st := engAfter.Stats.Flow
	evicted, _ := last.Value(rttcheck.MetricFlowsEvicted)
	firstEvicted, _ := first.Value(rttcheck.MetricFlowsEvicted)
	t.Logf("flood: %d SYNs, %d refused, %d connected, %d unanswered; %d check Runs during it, max tracked %v (check) %d (engine)",
		res.Attempts, res.Refused, res.Connected, res.Pending, closed+halfOpen, maxTracked, maxEngine)
	t.Logf("engine: flows %d created %d evicted half-open %d closed %d active %d expired %d; packets %d dropped %d",
		st.Flows, st.Created, st.EvictedHalfOpen, st.EvictedClosed, st.EvictedActive, st.Expired,
		engAfter.Stats.Packets, engAfter.Stats.Kernel.Dropped)
	t.Logf("check: go_metro.flows.evicted %v -> %v; last Run: %s", firstEvicted, evicted, describe(last))
	t.Logf("memory bound %d KiB (flow.ReservedBytes(%d): %d bytes a flow with small rings, + %d KiB): check RSS %d -> %d KiB heap %d -> %d KiB; engine RSS %d -> %d KiB heap %d -> %d KiB",
		memBound>>10, maxFlows, flow.FlowBytes, memSlack>>10, first.RSS>>10, last.RSS>>10, first.HeapInuse>>10, last.HeapInuse>>10,
		engBefore.RSS>>10, engAfter.RSS>>10, engBefore.HeapInuse>>10, engAfter.HeapInuse>>10)

	if res.Attempts != probes || res.Refused < closed*chunk*9/10 || res.Pending < halfOpen*chunk*9/10 {
		t.Fatalf("the flood did not happen as planned (%d probes, %d to closed ports, %d to a silent address): %+v",
			probes, closed*chunk, halfOpen*chunk, res)
	}
	if st.Created < probes/2 {
		t.Errorf("engine created %d flows for %d probes: the scan did not reach the table", st.Created, res.Attempts)
	}
	if st.Flows > maxFlows {
		t.Errorf("engine tracks %d flows, max_flows is %d", st.Flows, maxFlows)
	}
	if st.EvictedHalfOpen == 0 || st.EvictedClosed == 0 {
		t.Errorf("evictions after %d probes into a table of %d: %d half-open, %d closed; want both",
			res.Attempts, maxFlows, st.EvictedHalfOpen, st.EvictedClosed)
	}
	if st.EvictedActive != 0 {
		t.Errorf("%d established flows were evicted although scan flows were there to evict", st.EvictedActive)
	}
	if evicted <= firstEvicted {
		t.Errorf("the check's %s did not move during the flood: %v -> %v", rttcheck.MetricFlowsEvicted, firstEvicted, evicted)
	}
	if !hasRTT(last, tags) {
		t.Errorf("after the flood the check reports no new RTT samples for the pair: %s", describe(last))
	}
	// Every real connection still has its flow, with more samples than
	// before the flood.
	for _, rec := range c.Records() {
		fa, ok := findFlow(&capture.Snapshot{Flows: engAfter.Flows}, rec)
		if !ok {
			t.Errorf("%s %s: no flow after the flood", rec.Kind, rec.Key())
			continue
		}
		fb, _ := findFlow(&capture.Snapshot{Flows: engBefore.Flows}, rec)
		if fa.RTT.Samples <= fb.RTT.Samples {
			t.Errorf("%s %s: RTT samples %d before the flood, %d after", rec.Kind, rec.Key(), fb.RTT.Samples, fa.RTT.Samples)
		}
	}
	for _, m := range []struct {
		who           string
		before, after int64
	}{
		{"check RSS", first.RSS, last.RSS},
		{"check heap", int64(first.HeapInuse), int64(last.HeapInuse)},
		{"engine RSS", engBefore.RSS, engAfter.RSS},
		{"engine heap", int64(engBefore.HeapInuse), int64(engAfter.HeapInuse)},
	} {
		if m.before <= 0 || m.after <= 0 {
			t.Errorf("%s not measured (%d, %d)", m.who, m.before, m.after)
		} else if m.after-m.before > memBound {
			t.Errorf("%s grew by %d KiB during the flood, bound %d KiB", m.who, (m.after-m.before)>>10, memBound>>10)
		}
	}
}
