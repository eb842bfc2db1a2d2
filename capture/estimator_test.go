package capture

import (
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/gometro/go-metro/internal/synth"
)

// movingRTTConfigs are simulated uploads whose RTT moves inside a flight:
// queues that build at the bottleneck during slow start and drain, and
// ACKs that reach the capture point in compressed bursts.
func movingRTTConfigs() []struct {
	name string
	cfg  synth.Config
} {
	base := func(minRTT, maxRTT time.Duration, minMbps, maxMbps float64) synth.Config {
		c := synth.Small()
		c.Seed = 7
		c.BulkSendFlows, c.BulkRecvFlows, c.ReqRespFlows, c.AcceptFlows = 4, 0, 0, 0
		c.IPv6Flows = 1
		c.BulkBytes = 8 << 20
		c.Servers = 4
		c.MinRTT, c.MaxRTT = minRTT, maxRTT
		c.MinRateMbps, c.MaxRateMbps = minMbps, maxMbps
		c.LossRate = 0
		return c
	}
	ms := time.Millisecond
	plain := base(10*ms, 150*ms, 200, 1000)
	queue := base(10*ms, 60*ms, 10, 40)
	ackc := base(20*ms, 20*ms, 200, 400)
	ackc.AckCompression = 25 * ms
	ackc5 := base(10*ms, 50*ms, 50, 400)
	ackc5.AckCompression = 5 * ms
	lossy := base(20*ms, 60*ms, 20, 200)
	lossy.LossRate = 0.01
	return []struct {
		name string
		cfg  synth.Config
	}{
		{"plain", plain}, {"queue", queue}, {"ack-compression-25ms", ackc},
		{"ack-compression-5ms", ackc5}, {"queue-loss1", lossy},
	}
}

// TestMovingRTTAgainstKernelRule replays simulated uploads whose RTT moves
// inside a flight and holds each flow's smoothed RTT to the design's bar,
// max(2 %, 0.3 ms), against the srtt the kernel's rule computes from the
// same packets (FlowTruth.KernelRTT: one step per ACK, from the earliest
// newly acked segment). Lossy uploads are reported, not asserted: the
// simulator's truth has no SACK-timed samples, which both the kernel and
// the engine take.
func TestMovingRTTAgainstKernelRule(t *testing.T) {
	for _, sc := range movingRTTConfigs() {
		t.Run(sc.name, func(t *testing.T) {
			c := synth.Generate(sc.cfg)
			var local []netip.Prefix
			for _, a := range c.LocalIPs {
				local = append(local, netip.PrefixFrom(a, a.BitLen()))
			}
			s := replay(t, Config{File: writeCapture(t, c), LocalIPs: local})
			flows := byKey(s.Flows)
			for _, tr := range c.Flows {
				if tr.Kind != synth.BulkSend {
					continue
				}
				got := flows[[2]netip.AddrPort{tr.Local, tr.Remote}]
				want := tr.KernelRTT.SRTT
				diff := time.Duration(got.RTT.SRTT) - want
				tol := max(time.Duration(0.02*float64(want)), 300*time.Microsecond)
				t.Logf("%v path %v rate %.0f Mb/s: kernel-rule srtt %v (n=%d, samples %v..%v) go-metro %v (n=%d) %+.2f%%",
					tr.Remote, tr.PathRTT.Round(time.Microsecond), tr.RateMbps, want.Round(time.Microsecond), tr.KernelRTT.N,
					tr.KernelRTT.Min.Round(time.Microsecond), tr.KernelRTT.Max.Round(time.Microsecond),
					time.Duration(got.RTT.SRTT).Round(time.Microsecond), got.RTT.Samples,
					100*float64(diff)/float64(want))
				if sc.cfg.LossRate == 0 && math.Abs(float64(diff)) > float64(tol) {
					t.Errorf("%v: go-metro srtt %v, kernel rule %v: off by %v, tolerance %v",
						tr.Remote, time.Duration(got.RTT.SRTT), want, diff, tol)
				}
			}
		})
	}
}
