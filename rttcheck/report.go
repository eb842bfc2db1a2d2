package rttcheck

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	"github.com/gometro/go-metro/capture"
	"github.com/gometro/go-metro/capture/rtt"
)

// Metric names. RTT gauges are in milliseconds.
const (
	MetricRTT          = "system.net.tcp.rtt"
	MetricRTTAvg       = "system.net.tcp.rtt.avg"
	MetricRTTJitter    = "system.net.tcp.rtt.jitter"
	MetricRTTMin       = "system.net.tcp.rtt.min"
	MetricRTTMax       = "system.net.tcp.rtt.max"
	MetricRTTSamples   = "system.net.tcp.rtt.samples"
	MetricPackets      = "go_metro.packets"
	MetricKernelDrops  = "go_metro.kernel.drops"
	MetricDecodeErrors = "go_metro.decode_errors"
	MetricFlowsTracked = "go_metro.flows.tracked"
	MetricFlowsEvicted = "go_metro.flows.evicted"
	// MetricCapturePanics counts capture engine panics recovered; after
	// each, capture restarts on a fresh engine and flow table.
	MetricCapturePanics = "go_metro.capture.panics"
)

// flowKey identifies one flow across snapshots; FirstSeen tells apart two
// connections that reused a 4-tuple.
type flowKey struct {
	local, remote netip.AddrPort
	firstSeen     int64
}

// tagKey is what one submission is keyed by: flows whose tags are equal are
// one series and are combined, never submitted twice.
type tagKey struct{ src, dst string }

// Run reports what the capture measured since the previous Run: per host
// pair RTT gauges, capture health counters and the service check. It
// returns warnings for problems that last (capture down, unknown keys,
// unresolved hosts) so the agent shows them on every run while they last.
func (c *Check) Run(s Sender, sc ServiceCheckSender) (warnings []string, err error) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Errorf("go-metro: run panicked: %v\n%s", r, debug.Stack())
			err = fmt.Errorf("go-metro: run panicked: %v", r)
		}
	}()
	c.report.mu.Lock()
	defer c.report.mu.Unlock()

	switch c.status().state {
	case stateNew:
		return nil, errors.New("go-metro: Run before Configure")
	case stateCancelled:
		return nil, errors.New("go-metro: Run after Cancel")
	}
	cfg := c.cfg
	in := &cfg.Instance
	warnings = append(warnings, cfg.Warnings...)
	st := c.awaitCapture()
	eng := st.eng

	ifaceTag := "iface:" + in.Interface
	healthTags := c.tags(ifaceTag)

	var snap *capture.Snapshot
	if eng != nil {
		ctx, cancel := context.WithTimeout(context.Background(), snapshotTimeout)
		snap, err = eng.Snapshot(ctx)
		cancel()
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("capture on %s: no snapshot this run: %v", in.Interface, err))
			snap = nil
		}
	}

	// Health counters come from the snapshot. Before capture has started
	// they are zero, which is right; when a snapshot failed they are left
	// out, because a zero would read as a counter reset and the next real
	// value as a spike.
	if snap != nil || eng == nil {
		var tot totals
		var tracked int
		if snap != nil {
			tot = statsTotals(&snap.Stats)
			tracked = snap.Stats.Flow.Flows
			c.reportFlows(s, snap, st.hostAddr, ifaceTag)
		}
		s.MonotonicCount(MetricPackets, float64(tot.packets), "", healthTags)
		s.MonotonicCount(MetricKernelDrops, float64(tot.drops), "", healthTags)
		s.MonotonicCount(MetricDecodeErrors, float64(tot.decodeErrors), "", healthTags)
		s.MonotonicCount(MetricFlowsEvicted, float64(tot.evicted), "", healthTags)
		s.Gauge(MetricFlowsTracked, float64(tracked), "", healthTags)
		s.MonotonicCount(MetricCapturePanics, float64(st.panics), "", healthTags)
	}

	var problems []string
	if st.panicErr != nil {
		problems = append(problems, fmt.Sprintf("internal error on %s: %v", in.Interface, st.panicErr))
	}
	if st.err != nil {
		msg := fmt.Sprintf("cannot capture on %s: %v", in.Interface, st.err)
		if in.Interface == FileInterface {
			msg = fmt.Sprintf("cannot replay %s: %v", in.Pcap, st.err)
		} else {
			msg += " (retrying)"
		}
		problems = append(problems, msg)
	}
	if snap != nil && snap.LinkDown {
		// The socket stays bound and capture resumes by itself when the
		// link comes back; until then nothing can be measured.
		problems = append(problems, fmt.Sprintf("interface %s is down: no packets until it is up again", in.Interface))
	}
	if snap != nil && snap.Filter.Coarse() {
		// Not a service-check problem: every monitored segment is still
		// captured and filtered exactly in user space, at more CPU.
		warnings = append(warnings, fmt.Sprintf("kernel filter on %s is coarser than configured, so more packets reach user space (%d fallbacks so far): %s",
			in.Interface, snap.Stats.FilterFallbacks, snap.Filter.Detail))
	}
	if len(problems) > 0 {
		sc.ServiceCheck(ServiceCheckName, StatusCritical, "", healthTags, strings.Join(problems, "; "))
		warnings = append(warnings, problems...)
	} else {
		sc.ServiceCheck(ServiceCheckName, StatusOK, "", healthTags, "")
	}
	if len(st.unresolved) > 0 {
		warnings = append(warnings, "hosts did not resolve: "+strings.Join(st.unresolved, ", "))
	}
	s.Commit()
	return warnings, nil
}

// awaitCapture gives a capture that has not yet opened or failed a moment
// to do so, so that a one-shot `agent check` right after Configure reports
// the truth (CRITICAL without CAP_NET_RAW, not an optimistic OK), and waits
// for a replay to end, so that a replay's first Run reports the whole file
// rather than the part read so far. It returns the status to report.
func (c *Check) awaitCapture() status {
	if c.cfg.Instance.Interface == FileInterface {
		return c.await(replayWait, func(s *status) bool { return s.state > stateCapturing })
	}
	return c.await(firstOpenWait, func(s *status) bool { return s.state > stateOpening })
}

// tags returns extra plus, when the host program wants it, the instance tags.
func (c *Check) tags(extra ...string) []string {
	out := make([]string, 0, len(extra)+len(c.cfg.Instance.Tags))
	out = append(out, extra...)
	if c.opts.AddInstanceTags {
		out = append(out, c.cfg.Instance.Tags...)
	}
	return out
}

// dstName is the dst tag value of a remote address: the configured host
// name it resolved from, else its reverse-DNS name, else the address.
func (c *Check) dstName(a netip.Addr, hostAddr map[netip.Addr]string, now time.Time) string {
	if h, ok := hostAddr[a]; ok {
		return h
	}
	if c.rdns != nil {
		if n := c.rdns.name(a, now); n != "" {
			return n
		}
	}
	return a.String()
}

type group struct {
	ests       []rtt.Estimator
	newSamples uint64
}

type addrPair struct{ local, remote netip.Addr }

func (c *Check) reportFlows(s Sender, snap *capture.Snapshot, hostAddr map[netip.Addr]string, ifaceTag string) {
	now := time.Now()
	// Group by address pair first (no allocation per flow), then name each
	// pair once: names are what a series is keyed by, and two pairs can
	// share one (two addresses of one configured host).
	pairs := map[addrPair]*group{}
	rs := &c.report
	if rs.nextFlow == nil {
		rs.nextFlow = make(map[flowKey]uint64, len(snap.Flows))
	}
	next := rs.nextFlow
	clear(next)
	for i := range snap.Flows {
		f := &snap.Flows[i]
		if f.RTT.Samples == 0 {
			continue
		}
		fk := flowKey{f.Local, f.Remote, f.FirstSeen}
		next[fk] = f.RTT.Samples
		k := addrPair{f.Local.Addr().Unmap(), f.Remote.Addr().Unmap()}
		g := pairs[k]
		if g == nil {
			g = &group{}
			pairs[k] = g
		}
		g.ests = append(g.ests, f.RTT)
		if prev := rs.prevFlow[fk]; f.RTT.Samples > prev {
			g.newSamples += f.RTT.Samples - prev
		}
	}
	// Swap the maps: this run's flows are the next run's baseline.
	rs.prevFlow, rs.nextFlow = next, rs.prevFlow

	groups := make(map[tagKey]*group, len(pairs))
	for p, pg := range pairs {
		k := tagKey{src: p.local.String(), dst: c.dstName(p.remote, hostAddr, now)}
		if g := groups[k]; g != nil {
			g.ests = append(g.ests, pg.ests...)
			g.newSamples += pg.newSamples
		} else {
			groups[k] = pg
		}
	}

	keys := make([]tagKey, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	// Stable order makes output and tests deterministic.
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].src != keys[j].src {
			return keys[i].src < keys[j].src
		}
		return keys[i].dst < keys[j].dst
	})
	nextLast := make(map[tagKey]int64, len(groups))
	for _, k := range keys {
		g := groups[k]
		e := rtt.Combine(g.ests)
		tags := c.tags("src:"+k.src, "dst:"+k.dst, ifaceTag)
		nextLast[k] = e.LastAt
		// The last sample is only news if it is newer than what was reported.
		if prev, ok := rs.prevLastAt[k]; !ok || e.LastAt > prev {
			s.Gauge(MetricRTT, ms(e.Last), "", tags)
		}
		s.Gauge(MetricRTTAvg, ms(e.SRTT), "", tags)
		s.Gauge(MetricRTTJitter, ms(e.RTTVAR), "", tags)
		s.Gauge(MetricRTTMin, ms(e.Min), "", tags)
		s.Gauge(MetricRTTMax, ms(e.Max), "", tags)
		s.Count(MetricRTTSamples, float64(g.newSamples), "", tags)
	}
	rs.prevLastAt = nextLast
}

func ms(ns int64) float64 { return float64(ns) / 1e6 }
