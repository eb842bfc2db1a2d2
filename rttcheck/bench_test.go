package rttcheck

import (
	"net/netip"
	"testing"
	"time"

	"github.com/gometro/go-metro/capture"
	"github.com/gometro/go-metro/capture/flow"
)

type nopSender struct{}

func (nopSender) Gauge(string, float64, string, []string)                           {}
func (nopSender) Count(string, float64, string, []string)                           {}
func (nopSender) MonotonicCount(string, float64, string, []string)                  {}
func (nopSender) Commit()                                                           {}
func (nopSender) ServiceCheck(string, ServiceCheckStatus, string, []string, string) {}

// BenchmarkRunFullTable measures one Run over a full default flow table
// (16384 flows across 1024 remote hosts): the per-collection cost of
// aggregation and submission.
func BenchmarkRunFullTable(b *testing.B) {
	const flows, hosts = capture.DefaultMaxFlows, 1024
	fe := &fakeEngine{}
	for i := 0; i < flows; i++ {
		remote := netip.AddrFrom4([4]byte{10, 1, byte(i % hosts >> 8), byte(i % hosts)})
		f := flow.Summary{
			Local:     netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), uint16(20000+i%40000)),
			Remote:    netip.AddrPortFrom(remote, 443),
			FirstSeen: int64(i),
		}
		f.RTT.Add(int64(1e6+i), int64(i))
		fe.snap.Flows = append(fe.snap.Flows, f)
	}
	fe.snap.Stats = capture.Stats{Packets: 1}
	c := New(Options{})
	c.newEngine = func(capture.Config) (engine, error) { return fe, nil }
	if err := configureYAML(c, "interface: eth0\nall_remote_hosts: true\nreverse_dns: false", ""); err != nil {
		b.Fatal(err)
	}
	defer c.Cancel()
	for !c.engineStarted() {
		time.Sleep(time.Millisecond)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Run(nopSender{}, nopSender{}); err != nil {
			b.Fatal(err)
		}
	}
}
