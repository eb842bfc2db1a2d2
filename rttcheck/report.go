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
	"github.com/gometro/go-metro/capture/flow"
	"github.com/gometro/go-metro/capture/packet"
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
)

// flowKey identifies one flow across snapshots; FirstSeen tells apart two
// connections that reused a 4-tuple.
type flowKey struct {
	local, remote netip.AddrPort
	firstSeen     int64
	tunnel        flow.TunnelKey // tenants with the same inner addresses are distinct flows
}

// tagKey is what one submission is keyed by: flows whose tags are equal are
// one series and are combined, never submitted twice.
type tagKey struct {
	src, dst string
	tunnel   packet.Encap // each encapsulation is a tunnel:NAME tag
}

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
	c.runMu.Lock()
	defer c.runMu.Unlock()

	c.mu.Lock()
	configured, cancelled := c.configured, c.cancelled
	eng, captureErr, panicErr := c.eng, c.captureErr, c.panicErr
	hostAddr := c.hostAddr
	unresolved := append([]string(nil), c.unresolved...)
	c.mu.Unlock()
	if !configured {
		return nil, errors.New("go-metro: Run before Configure")
	}
	if cancelled {
		return nil, errors.New("go-metro: Run after Cancel")
	}
	cfg := c.cfg
	in := &cfg.Instance
	warnings = append(warnings, cfg.Warnings...)
	c.waitForCapture()
	c.mu.Lock()
	eng, captureErr, panicErr = c.eng, c.captureErr, c.panicErr
	c.mu.Unlock()

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
			c.reportFlows(s, snap, hostAddr, ifaceTag)
		}
		s.MonotonicCount(MetricPackets, float64(tot.packets), "", healthTags)
		s.MonotonicCount(MetricKernelDrops, float64(tot.drops), "", healthTags)
		s.MonotonicCount(MetricDecodeErrors, float64(tot.decodeErrors), "", healthTags)
		s.MonotonicCount(MetricFlowsEvicted, float64(tot.evicted), "", healthTags)
		s.Gauge(MetricFlowsTracked, float64(tracked), "", healthTags)
	}

	var problems []string
	if panicErr != nil {
		problems = append(problems, fmt.Sprintf("internal error on %s: %v", in.Interface, panicErr))
	}
	if captureErr != nil {
		msg := fmt.Sprintf("cannot capture on %s: %v", in.Interface, captureErr)
		if in.Interface == FileInterface {
			msg = fmt.Sprintf("cannot replay %s: %v", in.Pcap, captureErr)
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
	if len(problems) > 0 {
		sc.ServiceCheck(ServiceCheckName, StatusCritical, "", healthTags, strings.Join(problems, "; "))
		warnings = append(warnings, problems...)
	} else {
		sc.ServiceCheck(ServiceCheckName, StatusOK, "", healthTags, "")
	}
	if len(unresolved) > 0 {
		warnings = append(warnings, "hosts did not resolve: "+strings.Join(unresolved, ", "))
	}
	s.Commit()
	return warnings, nil
}

// waitForCapture gives a capture that has not yet opened or failed a
// moment to do so, so that a one-shot `agent check` right after Configure
// reports the truth (CRITICAL without CAP_NET_RAW, not an optimistic OK),
// and a replay's first Run reports the whole file rather than the part
// read so far. Later Runs do not wait.
func (c *Check) waitForCapture() {
	c.mu.Lock()
	attempted, done := c.attempted, c.captureDone
	replay := c.cfg.Instance.Interface == FileInterface
	c.mu.Unlock()
	if replay {
		waitAtMost(done, replayWait)
		return
	}
	waitAtMost(attempted, firstOpenWait)
}

func waitAtMost(ch <-chan struct{}, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	}
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

type addrPair struct {
	local, remote netip.Addr
	tunnel        packet.Encap
}

func (c *Check) reportFlows(s Sender, snap *capture.Snapshot, hostAddr map[netip.Addr]string, ifaceTag string) {
	now := time.Now()
	// Group by address pair first (no allocation per flow), then name each
	// pair once: names are what a series is keyed by, and two pairs can
	// share one (two addresses of one configured host).
	pairs := map[addrPair]*group{}
	if c.nextFlow == nil {
		c.nextFlow = make(map[flowKey]uint64, len(snap.Flows))
	}
	next := c.nextFlow
	clear(next)
	for i := range snap.Flows {
		f := &snap.Flows[i]
		if f.RTT.Samples == 0 {
			continue
		}
		fk := flowKey{f.Local, f.Remote, f.FirstSeen, f.Tunnel}
		next[fk] = f.RTT.Samples
		k := addrPair{f.Local.Addr().Unmap(), f.Remote.Addr().Unmap(), f.Tunnel.Encaps}
		g := pairs[k]
		if g == nil {
			g = &group{}
			pairs[k] = g
		}
		g.ests = append(g.ests, f.RTT)
		if prev := c.prevFlow[fk]; f.RTT.Samples > prev {
			g.newSamples += f.RTT.Samples - prev
		}
	}
	// Swap the maps: this run's flows are the next run's baseline.
	c.prevFlow, c.nextFlow = next, c.prevFlow

	groups := make(map[tagKey]*group, len(pairs))
	for p, pg := range pairs {
		k := tagKey{src: p.local.String(), dst: c.dstName(p.remote, hostAddr, now), tunnel: p.tunnel}
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
		if keys[i].dst != keys[j].dst {
			return keys[i].dst < keys[j].dst
		}
		return keys[i].tunnel < keys[j].tunnel
	})
	nextLast := make(map[tagKey]int64, len(groups))
	for _, k := range keys {
		g := groups[k]
		e := rtt.Combine(g.ests)
		tags := c.tags("src:"+k.src, "dst:"+k.dst, ifaceTag)
		tags = appendTunnelTags(tags, k.tunnel)
		nextLast[k] = e.LastAt
		// The last sample is only news if it is newer than what was reported.
		if prev, ok := c.prevLastAt[k]; !ok || e.LastAt > prev {
			s.Gauge(MetricRTT, ms(e.Last), "", tags)
		}
		s.Gauge(MetricRTTAvg, ms(e.SRTT), "", tags)
		s.Gauge(MetricRTTJitter, ms(e.RTTVAR), "", tags)
		s.Gauge(MetricRTTMin, ms(e.Min), "", tags)
		s.Gauge(MetricRTTMax, ms(e.Max), "", tags)
		s.Count(MetricRTTSamples, float64(g.newSamples), "", tags)
	}
	c.prevLastAt = nextLast
}

func ms(ns int64) float64 { return float64(ns) / 1e6 }

// appendTunnelTags adds tunnel:NAME for each encapsulation a series' flows
// were seen in. Tunnel IDs (VNI, key, ...) are not tags: their number is
// unbounded. So the flows of one host pair inside the same encapsulations
// are one series whatever their VNI, as flows of one pair are on bare
// traffic; bare and tunnelled flows of a pair are two series.
func appendTunnelTags(tags []string, e packet.Encap) []string {
	for _, name := range e.Names() {
		tags = append(tags, "tunnel:"+name)
	}
	return tags
}
