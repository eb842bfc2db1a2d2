package rttcheck

import (
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/gometro/go-metro/capture"
	"github.com/gometro/go-metro/capture/flow"
)

type nopSender struct{}

func (nopSender) Gauge(string, float64, string, []string)                           {}
func (nopSender) Count(string, float64, string, []string)                           {}
func (nopSender) MonotonicCount(string, float64, string, []string)                  {}
func (nopSender) Distribution(string, float64, string, []string)                    {}
func (nopSender) Commit()                                                           {}
func (nopSender) ServiceCheck(string, ServiceCheckStatus, string, []string, string) {}

// BenchmarkRunFullTable measures one Run over a full default flow table
// (capture.DefaultMaxFlows flows across 1024 remote hosts): the
// per-collection cost of listing, aggregation and submission, and, as
// heap-MiB, the heap the check keeps between runs (after a collection).
func BenchmarkRunFullTable(b *testing.B) {
	const flows, hosts = capture.DefaultMaxFlows, 1024
	fe := &fakeEngine{}
	for i := 0; i < flows; i++ {
		remote := netip.AddrFrom4([4]byte{10, 1, byte(i % hosts >> 8), byte(i % hosts)})
		f := flow.Summary{
			Local:     netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), uint16(20000+i%40000)),
			Remote:    netip.AddrPortFrom(remote, 443),
			FirstSeen: int64(i),
			Slot:      int32(i),
		}
		f.RTT.Add(int64(1e6+i), int64(i))
		fe.snap.Flows = append(fe.snap.Flows, f)
	}
	fe.snap.Stats = capture.Stats{Packets: 1}
	fe.ownSlots = true
	c := benchCheck(b, fe)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Run(nopSender{}, nopSender{}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	fe.snap.Flows = nil // the fake's, not the check's
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
}

// BenchmarkRunDistribution measures one Run when the capture took 100 k RTT
// samples/s over a 15 s interval (1.5 M samples) on 1000 flows across 100
// host pairs: the distribution's per-run cost is bounded by
// rtt_distribution_values per pair (12800 values here), not by the rate.
func BenchmarkRunDistribution(b *testing.B) {
	const flows, hosts, perFlow = 1000, 100, 1500
	fe := &fakeEngine{}
	for i := 0; i < flows; i++ {
		f := flow.Summary{
			Local:     netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), uint16(20000+i)),
			Remote:    netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, 0, byte(i % hosts)}), 443),
			FirstSeen: int64(i),
		}
		f.RTT.Add(int64(1e6+i), int64(i))
		f.Health.RTTSeen = perFlow
		for k := range f.Health.RTTSampled {
			f.Health.RTTSampled[k] = uint32(1000 + i + k)
		}
		fe.snap.Flows = append(fe.snap.Flows, f)
	}
	c := benchCheck(b, fe)
	var n countingSender
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Run(&n, nopSender{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n.dist)/float64(b.N), "values/run")
}

type countingSender struct {
	nopSender
	dist int
}

func (c *countingSender) Distribution(string, float64, string, []string) { c.dist++ }

// benchCheck is a started check over fe that tracks every remote host.
func benchCheck(b *testing.B, fe *fakeEngine) *Check {
	c := New(Options{})
	c.newEngine = func(capture.Config) (engine, error) { return fe, nil }
	if err := configureYAML(c, "interface: eth0\nall_remote_hosts: true\nreverse_dns: false", ""); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Cancel)
	for !c.engineStarted() {
		time.Sleep(time.Millisecond)
	}
	return c
}
