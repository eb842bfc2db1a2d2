package capture

import (
	"context"
	"math"
	"net/netip"
	"sort"
	"testing"
	"time"

	"github.com/gometro/go-metro/internal/synth"
	"github.com/gometro/go-metro/internal/tsharkcmp"
)

// TestCompareWithTshark compares each flow's smoothed RTT with tshark's
// ack_rtt on a simulated capture (synth.Small: bulk, request/response,
// accepted and IPv6 flows, 1 % loss, keepalives). tshark is an independent
// reference, but its definition differs: it times an ACK from the LAST
// segment it covers, times retransmitted segments (no Karn), and times the
// ACKs of keepalive probes. Where those differences cannot arise
// (request/response flows without loss or keepalives, where each ACK covers
// one segment) the two must agree; elsewhere the gaps are logged by cause.
func TestCompareWithTshark(t *testing.T) {
	tsharkcmp.Require(t)
	c := synth.Generate(synth.Small())
	path, ref := c.TsharkRTT(t, "small.pcap")

	var local []netip.Prefix
	for _, a := range c.LocalIPs {
		local = append(local, netip.PrefixFrom(a, a.BitLen()))
	}
	forever := 100 * 365 * 24 * time.Hour
	e, err := New(Config{File: path, LocalIPs: local, MaxFlows: 4096, IdleTTL: forever, ExpTTL: forever})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := e.Run(ctx); err != nil {
		t.Fatal(err)
	}
	s, err := e.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ours := byKey(s.Flows)
	strict := 0

	type bucket struct {
		n, agree int
		diffs    []float64 // relative, ours - tshark
	}
	buckets := map[string]*bucket{}
	for _, tr := range c.Flows {
		got, ok := ours[[2]netip.AddrPort{tr.Local, tr.Remote}]
		want, okRef := ref[tr.Key()]
		if !ok || !okRef || want.N == 0 || got.RTT.Samples == 0 {
			continue
		}
		cause := tr.Kind.String()
		switch {
		case tr.Retransmits > 0:
			cause += " with retransmissions (tshark times them; Karn forbids)"
		case tr.KeepaliveProbes > 0:
			cause += " with keepalives (tshark times the probes' ACKs)"
		case tr.RemoteRetransmits > 0:
			cause += " with remote loss"
		}
		b := buckets[cause]
		if b == nil {
			b = &bucket{}
			buckets[cause] = b
		}
		d := float64(time.Duration(got.RTT.SRTT) - want.SRTT)
		rel := d / float64(want.SRTT)
		b.n++
		if math.Abs(d) <= math.Max(0.02*float64(want.SRTT), float64(300*time.Microsecond)) {
			b.agree++
		}
		b.diffs = append(b.diffs, rel)
		if tr.Kind != synth.ReqResp || tr.Retransmits > 0 || tr.RemoteRetransmits > 0 || tr.KeepaliveProbes > 0 {
			continue
		}
		strict++
		if math.Abs(d) > math.Max(0.02*float64(want.SRTT), float64(300*time.Microsecond)) {
			t.Errorf("%v -> %v: loss-free request/response flow: srtt %v, tshark %v",
				tr.Local, tr.Remote, time.Duration(got.RTT.SRTT), want.SRTT)
		}
	}
	if strict == 0 {
		t.Fatal("no loss-free request/response flow timed by both: nothing was compared")
	}
	causes := make([]string, 0, len(buckets))
	for k := range buckets {
		causes = append(causes, k)
	}
	sort.Strings(causes)
	for _, k := range causes {
		b := buckets[k]
		sort.Float64s(b.diffs)
		t.Logf("%-70s flows %4d  within 2%%/0.3ms %4d  diff median %+6.2f%%  p10 %+6.2f%%  p90 %+6.2f%%",
			k, b.n, b.agree, 100*b.diffs[len(b.diffs)/2], 100*b.diffs[len(b.diffs)/10], 100*b.diffs[len(b.diffs)*9/10])
	}
}
