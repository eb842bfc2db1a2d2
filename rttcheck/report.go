package rttcheck

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"maps"
	"net/netip"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gometro/go-metro/capture"
	"github.com/gometro/go-metro/capture/flow"
	"github.com/gometro/go-metro/capture/packet"
	"github.com/gometro/go-metro/capture/rtt"
)

// flowID tells apart the flows that hold one table slot in turn
// (flow.Summary.Slot): a hash of what makes a flow itself, its ends, its
// first packet (which tells apart two connections that reused a 4-tuple)
// and its tunnel (tenants with the same inner addresses are distinct
// flows). Two flows that held one slot one after the other would share
// marks only if their 64-bit hashes were equal. Never 0, the empty mark's.
func flowID(seed maphash.Seed, f *flow.Summary) uint64 {
	var buf [96]byte
	b := buf[:0]
	for _, ap := range [2]netip.AddrPort{f.Local, f.Remote} {
		a := ap.Addr().As16()
		b = binary.LittleEndian.AppendUint16(append(b, a[:]...), ap.Port())
	}
	t := &f.Tunnel
	b = binary.LittleEndian.AppendUint64(b, uint64(f.FirstSeen))
	b = append(append(b, t.OuterA[:]...), t.OuterB[:]...)
	b = binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(b, t.ID), t.IDIn)
	b = binary.LittleEndian.AppendUint16(binary.LittleEndian.AppendUint16(b, uint16(t.Encaps)), uint16(t.IDOf))
	return maphash.Bytes(seed, b) | 1
}

// tagKey is what one submission is keyed by: flows whose tags are equal are
// one series and are combined, never submitted twice. port and role are
// empty unless the options tag them; srcTags and dstTags are the workload
// ends' tags (workloadEnd.key), empty for ends that are not workloads.
type tagKey struct {
	src, dst, port, role string
	tunnel               packet.Encap // each encapsulation is a tunnel:NAME tag
	srcTags, dstTags     string
}

func (k tagKey) less(o tagKey) bool {
	return cmp.Or(cmp.Compare(k.src, o.src), cmp.Compare(k.dst, o.dst), cmp.Compare(k.port, o.port),
		cmp.Compare(k.role, o.role), cmp.Compare(k.tunnel, o.tunnel),
		cmp.Compare(k.srcTags, o.srcTags), cmp.Compare(k.dstTags, o.dstTags)) < 0
}

// tags are the series' tags: src, dst, the optional port and role, extra,
// one tunnel:NAME per encapsulation, then the workload ends' tags.
func (k tagKey) tags(extra string) []string {
	t := make([]string, 0, 6)
	t = append(t, "src:"+k.src, "dst:"+k.dst)
	if k.port != "" {
		t = append(t, "dst_port:"+k.port)
	}
	if k.role != "" {
		t = append(t, "role:"+k.role)
	}
	t = append(t, extra)
	t = appendTunnelTags(t, k.tunnel)
	for _, wt := range []string{k.srcTags, k.dstTags} {
		if wt != "" {
			t = append(t, strings.Split(wt, "\x00")...)
		}
	}
	return t
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
		snap, err = eng.Stats(ctx) // the flows come a page at a time (reportFlows)
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
		var tracked, ring, dnsNames int
		if snap != nil {
			tot = statsTotals(&snap.Stats)
			tracked, ring, dnsNames = snap.Stats.Flow.Flows, snap.Stats.Kernel.RingSize, snap.DNSCached
			if err := c.reportFlows(s, eng, snap, st.hostAddr, c.newWorkloadEnds(st.workloads), ifaceTag); err != nil {
				warnings = append(warnings, fmt.Sprintf("capture on %s: flows listed in part this run, the rest are reported with the next: %v", in.Interface, err))
			}
		}
		s.MonotonicCount(MetricPackets, float64(tot.packets), "", healthTags)
		s.MonotonicCount(MetricKernelDrops, float64(tot.drops), "", healthTags)
		s.MonotonicCount(MetricDecodeErrors, float64(tot.decodeErrors), "", healthTags)
		s.MonotonicCount(MetricFlowsEvicted, float64(tot.evicted), "", healthTags)
		s.MonotonicCount(MetricRingsDenied, float64(tot.ringsDenied), "", healthTags)
		s.MonotonicCount(MetricDuplicates, float64(tot.duplicates), "", healthTags)
		s.Gauge(MetricFlowsTracked, float64(tracked), "", healthTags)
		s.Gauge(MetricRingSize, float64(ring), "", healthTags)
		s.MonotonicCount(MetricCapturePanics, float64(st.panics), "", healthTags)
		if in.DNSNames {
			s.MonotonicCount(MetricDNSMalformed, float64(tot.dnsMalformed), "", healthTags)
			s.Gauge(MetricDNSNames, float64(dnsNames), "", healthTags)
		}
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
	if snap != nil {
		// Packets whose capture time is impossible give no sample; a
		// clock that steps, or records corrupt on disk, say so.
		skips := snap.Stats.TimeBackwards + snap.Stats.TimeForward
		if n := skips - c.report.timeSkips; skips > c.report.timeSkips {
			warnings = append(warnings, fmt.Sprintf("capture on %s: %d packet(s) since the last run skipped for an impossible capture time, no RTT sample taken from them (%d in all went back more than %s, %d jumped more than %s ahead)",
				in.Interface, n, snap.Stats.TimeBackwards, capture.MaxReorder, snap.Stats.TimeForward, capture.MaxTimeJump))
		}
		c.report.timeSkips = skips
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

// dstName is the name of a remote address that is neither a configured
// host's nor a workload's of this host (pairDst and pinnedDst look those up
// first), from the first source that names it: the DNS answer that gave the
// address, its reverse-DNS name; else the address itself.
func (c *Check) dstName(a netip.Addr, now time.Time) string {
	if n, ok := c.dnsName(a); ok {
		return n
	}
	if c.rdns != nil {
		if n := c.rdns.name(a, now); n != "" {
			return n
		}
	}
	return a.String()
}

// dnsName is the name a DNS answer on the interface gave a: the name that
// was asked for, from this run's snapshot (capture.Snapshot.DNSNames; none
// without dns_names).
func (c *Check) dnsName(a netip.Addr) (string, bool) {
	n, ok := c.report.dnsNames[a]
	return n, ok
}

// synTimeout is how long our SYN goes unanswered (no packet at all from the
// peer) before the attempt counts as a SYN timeout: Linux's initial RTO is
// 1 s (RFC 6298 5.7), so by 3 s the SYN and at least one retransmission
// went unanswered (at 1 and 3 s; Linux >= 6.5 retransmits at 1, 2, 3 s,
// tcp_syn_linear_timeouts), and a client with tcp_syn_retries=1 has given
// up. An answer that comes later still counts the connection as opened.
var synTimeout = 3 * time.Second

// flowMark is what earlier Runs reported of one flow: the baselines its
// counters' increases are taken from, and the events already counted.
// The check keeps one per table slot (reportState.marks): 80 bytes.
type flowMark struct {
	id                                                 uint64 // the flow's flowID; 0: no flow yet
	samples, retrans, zeroRemote, zeroLocal, responses uint64
	respSum                                            int64
	events                                             uint8
	// local and remote are the flow's workload ends, fixed when the flow
	// is first seen: a flow keeps the tags it started with.
	local, remote *workloadEnd
}

// Connection events, each counted once per flow; bit i counts as counts[i].
const (
	evOpened uint8 = 1 << iota
	evClosed
	evReset
	evRefused
	evSYNTimeout
	evHandshake
)

// The counts a series sends, indexing healthDelta.counts; the first ones
// are the connection events, in the order of their ev bits.
const (
	cOpened = iota
	cClosed
	cReset
	cRefused
	cSYNTimeouts
	cRetrans
	cZeroRemote
	cZeroLocal
	nCounts
	nEvents = cSYNTimeouts + 1
)

var countMetrics = [nCounts]string{MetricOpened, MetricClosed, MetricReset, MetricRefused, MetricSYNTimeouts,
	MetricRetransmits, MetricZeroWinRemote, MetricZeroWinLocal}

// healthDelta is what a series adds up in one run.
type healthDelta struct {
	counts                [nCounts]uint64
	handshakeSum, respSum int64
	handshakes, responses uint64
}

func (d *healthDelta) add(o *healthDelta) {
	for i, v := range o.counts {
		d.counts[i] += v
	}
	d.handshakeSum += o.handshakeSum
	d.respSum += o.respSum
	d.handshakes += o.handshakes
	d.responses += o.responses
}

func (d *healthDelta) zero() bool { return *d == healthDelta{} }

type group struct {
	// pool combines the flows' estimators: the first pass as the flows
	// are listed, the second over reportState.spread once the groups are
	// series (rtt.Pool).
	pool       rtt.Pool
	newSamples uint64
	health     healthDelta
	dist       []distFlow
	into       *group // the group this one was merged into, if any
}

func (g *group) merge(o *group) {
	g.pool.Merge(&o.pool)
	g.newSamples += o.newSamples
	g.health.add(&o.health)
	g.dist = append(g.dist, o.dist...)
	o.into = g
}

// series is the group whose series g's flows are reported in: g, or the
// one it was merged into.
func (g *group) series() *group {
	for g.into != nil {
		g = g.into
	}
	return g
}

// spreadPoint is what the second pass of a group's rtt.Pool takes of one
// of its flows: 32 bytes instead of the flow's estimator.
type spreadPoint struct {
	g            *group
	samples      uint64
	srtt, rttvar int64
}

// pairKey is a host pair as the options split it: the remote port and the
// role are zero unless tagged.
type pairKey struct {
	local, remote netip.Addr
	port          uint16
	role          flow.Role
	tunnel        packet.Encap
	lw, rw        *workloadEnd // the flows' workload ends, nil for none
}

// since returns the increase of a cumulative counter over its baseline.
func since(now, prev uint64) uint64 {
	if now > prev {
		return now - prev
	}
	return 0
}

// flowDelta is what one flow adds this run, and its new mark.
func flowDelta(f *flow.Summary, prev flowMark, now int64) (healthDelta, flowMark, uint64) {
	h := &f.Health
	var d healthDelta
	m := flowMark{samples: f.RTT.Samples, retrans: f.Retransmits, zeroRemote: h.ZeroWindowsRemote,
		zeroLocal: h.ZeroWindowsLocal, responses: h.Responses, respSum: h.ResponseSum}
	d.counts[cRetrans] = since(f.Retransmits, prev.retrans)
	d.counts[cZeroRemote] = since(h.ZeroWindowsRemote, prev.zeroRemote)
	d.counts[cZeroLocal] = since(h.ZeroWindowsLocal, prev.zeroLocal)
	if h.Responses > prev.responses {
		d.responses = h.Responses - prev.responses
		d.respSum = h.ResponseSum - prev.respSum
	}
	var ev uint8
	if h.Opened {
		ev |= evOpened
	}
	if h.FIN {
		ev |= evClosed
	}
	if h.Reset {
		ev |= evReset
	}
	if h.Refused {
		ev |= evRefused
	}
	if h.SYNUnanswered && now-f.FirstSeen >= int64(synTimeout) {
		ev |= evSYNTimeout
	}
	if h.Handshake > 0 {
		ev |= evHandshake
	}
	fresh := ev &^ prev.events
	m.events = prev.events | ev
	for i := range nEvents {
		d.counts[i] = uint64(fresh>>i) & 1
	}
	if fresh&evHandshake != 0 {
		d.handshakes, d.handshakeSum = 1, h.Handshake
	}
	return d, m, since(f.RTT.Samples, prev.samples)
}

// flowPage is how many flows a Run takes from a worker at a time: 1.3 MiB
// of summaries, copied in about a millisecond between two packets.
const flowPage = 4096

// pageFor is the page for listing flows tracked flows: as large as they
// are up to flowPage, so that an instance with a few flows keeps a few
// kilobytes of page, not 1.3 MiB.
func pageFor(flows int) int { return min(flowPage, max(64, flows)) }

func (c *Check) reportFlows(s Sender, eng engine, snap *capture.Snapshot, hostAddr map[netip.Addr]string, we *workloadEnds, ifaceTag string) error {
	now := time.Now()
	opts := &c.shape
	// The clock a SYN timeout is judged by: capture time for a replay, the
	// wall clock live (no packet may arrive while a SYN goes unanswered).
	clock := snap.CaptureTime
	if c.cfg.Instance.Interface != FileInterface {
		clock = max(clock, snap.Taken.UnixNano())
	}
	// Group by address pair first (no allocation per flow), then name each
	// pair once: names are what a series is keyed by, and two pairs can
	// share one (two addresses of one configured host).
	pairs := map[pairKey]*group{}
	rs := &c.report
	if n := pageFor(snap.Stats.Flow.Flows); len(rs.page) < n {
		rs.page = make([]flow.Summary, n)
	}
	if rs.seed == (maphash.Seed{}) {
		rs.seed = maphash.MakeSeed()
	}
	names := map[netip.Addr]string{}
	rs.spread = rs.spread[:0]
	add := func(flows []flow.Summary, partNames map[netip.Addr]string) {
		maps.Copy(names, partNames)
		for i := range flows {
			f := &flows[i]
			// A slot's mark is this flow's only if the flow held the
			// slot then; a new flow starts from nothing, and overwrites
			// the mark of the flow gone before it.
			if n := int(f.Slot) + 1; n > len(rs.marks) {
				rs.marks = slices.Grow(rs.marks, n-len(rs.marks))[:n] // zeros: marks never shrink
			}
			mark := &rs.marks[f.Slot]
			id := flowID(rs.seed, f)
			seen := mark.id == id
			prev := *mark
			if !seen {
				prev = flowMark{}
			}
			d, m, newSamples := flowDelta(f, prev, clock)
			local, remote := f.Local.Addr().Unmap(), f.Remote.Addr().Unmap()
			if m.local, m.remote = prev.local, prev.remote; !seen {
				m.local, m.remote = we.end(local, false), we.end(remote, true)
			}
			m.id = id
			*mark = m
			if f.RTT.Samples == 0 && d.zero() {
				continue
			}
			k := pairKey{local: local, remote: remote, tunnel: f.Tunnel.Encaps, lw: m.local, rw: m.remote}
			if opts.TagDstPort {
				k.port = f.Remote.Port()
			}
			if opts.TagRole {
				k.role = f.Health.Role
			}
			g := pairs[k]
			if g == nil {
				g = &group{}
				pairs[k] = g
			}
			if f.RTT.Samples > 0 {
				g.pool.Add(&f.RTT)
				rs.spread = append(rs.spread, spreadPoint{g, f.RTT.Samples, f.RTT.SRTT, f.RTT.RTTVAR})
			}
			g.newSamples += newSamples
			g.health.add(&d)
			if f.Health.RTTSeen > 0 {
				g.dist = append(g.dist, distFlow{seen: f.Health.RTTSeen, vals: f.Health.RTTSampled})
			}
		}
	}
	// Each part waits for its worker as a snapshot does.
	listErr := eng.FlowPages(context.Background(), rs.page, true, snapshotTimeout, add)
	if listErr != nil {
		// A worker may still write to the page (FlowPages). The flows not
		// listed keep their marks, so what they did since is reported
		// next time.
		rs.page = nil
	}

	rs.dnsNames = names
	groups := c.nameGroups(pairs, hostAddr, now)
	for i := range rs.spread {
		p := &rs.spread[i]
		p.g.series().pool.Spread(p.samples, p.srtt, p.rttvar)
	}
	clear(rs.spread) // the groups are this run's

	keys := make([]tagKey, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	// Stable order makes output and tests deterministic.
	sort.Slice(keys, func(i, j int) bool { return keys[i].less(keys[j]) })
	nextLast := make(map[tagKey]int64, len(groups))
	var dist []float64
	for _, k := range keys {
		g := groups[k]
		tags := c.tags(k.tags(ifaceTag)...)
		if e := g.pool.Estimator(); e.Samples > 0 {
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
		c.reportHealth(s, &g.health, tags)
		dist = pickDistribution(dist[:0], g.dist, opts.DistributionValues, rs.rng)
		for _, v := range dist {
			s.Distribution(MetricRTTDistribution, v, "", tags)
		}
	}
	rs.prevLastAt = nextLast
	return listErr
}

// reportHealth sends a series' connection health: every count, in every
// run in which the series has RTT samples or a new event (else the series
// is not reported at all); the mean handshake and response times only
// when there are new ones.
func (c *Check) reportHealth(s Sender, d *healthDelta, tags []string) {
	for i, v := range d.counts {
		s.Count(countMetrics[i], float64(v), "", tags)
	}
	if d.handshakes > 0 {
		s.Gauge(MetricRTTHandshake, ms(d.handshakeSum)/float64(d.handshakes), "", tags)
	}
	if d.responses > 0 {
		s.Gauge(MetricResponseTime, ms(d.respSum)/float64(d.responses), "", tags)
	}
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
