package capture

import (
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"testing"

	"github.com/gometro/go-metro/capture/packet"
	"github.com/gometro/go-metro/internal/synth"
)

var (
	realisticOnce sync.Once
	realistic     *synth.Capture
)

// realisticCapture generates, once per test binary, the realistic capture:
// bulk flows both ways, hundreds of request/response connections, IPv6,
// loss and retransmissions; a few million frames held in memory.
func realisticCapture(tb testing.TB) *synth.Capture {
	realisticOnce.Do(func() { realistic = synth.Generate(synth.Realistic()) })
	return realistic
}

// BenchmarkHotPath measures the per-packet path exactly as Run executes it
// (decode, flow lookup, RTT update) over the realistic capture held in
// memory, so the source's I/O is out of the picture. One op is one packet.
func BenchmarkHotPath(b *testing.B) { hotPath(b, false) }

// BenchmarkHotPathDNS is BenchmarkHotPath with DNS names on, as the check
// runs by default: the same TCP packets, none of them a DNS answer.
func BenchmarkHotPathDNS(b *testing.B) { hotPath(b, true) }

func hotPath(b *testing.B, dnsNames bool) {
	c := realisticCapture(b)
	var prefixes []netip.Prefix
	for _, a := range c.LocalIPs {
		prefixes = append(prefixes, netip.PrefixFrom(a, a.BitLen()))
	}
	cfg := Config{File: "memory", LocalIPs: prefixes, MaxFlows: 16384, DNSNames: dnsNames}
	e, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	frames := c.Frames
	b.Logf("%d frames", len(frames))
	runtime.GC()
	var pkt packet.Packet
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f := &frames[i%len(frames)]
		if i%len(frames) == 0 && i > 0 {
			// A new pass replays the same sequence numbers: start from a
			// fresh engine so every pass measures the same work.
			b.StopTimer()
			if e, err = New(cfg); err != nil {
				b.Fatal(err)
			}
			runtime.GC()
			b.StartTimer()
		}
		e.handle(&pkt, packet.LinkTypeEthernet, f.Data, f.TS, int(f.WireLen))
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds()/1e6, "Mpps")
	st := e.snapshot().Stats
	if st.Malformed() != 0 {
		b.Fatalf("%d frames of the synthetic capture failed to decode", st.Malformed())
	}
}

// BenchmarkHotPathFlows is the per-packet path over many concurrent
// connections (synth.Concurrent): a handshake and an exchange per
// connection, opened one microsecond apart, then rounds of one exchange
// per connection in shuffled orders, so that consecutive packets belong
// to flows all over the table; about 6 million packets in all, so that
// each flow is created once and then looked up many times, as on a busy
// host. At a million flows the flow state fits no cache, and the lookup
// waits on memory. One op is one packet; the table is sized for the flows
// (max_flows = flows). -benchtime 6000000x runs each capture once.
func BenchmarkHotPathFlows(b *testing.B) {
	for _, n := range []int{1000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("flows=%d", n), func(b *testing.B) {
			c := synth.Concurrent(synth.ConcurrentConfig{Flows: n, Exchanges: max(2, 2_000_000/n)})
			benchmarkFrames(b, c, n)
		})
	}
}

// benchmarkFrames runs c's frames through a fresh engine of maxFlows
// flows per pass, as BenchmarkHotPath does.
func benchmarkFrames(b *testing.B, c *synth.Capture, maxFlows int) {
	var prefixes []netip.Prefix
	for _, a := range c.LocalIPs {
		prefixes = append(prefixes, netip.PrefixFrom(a, a.BitLen()))
	}
	cfg := Config{File: "memory", LocalIPs: prefixes, MaxFlows: maxFlows}
	e, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	frames := c.Frames
	runtime.GC()
	var pkt packet.Packet
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f := &frames[i%len(frames)]
		if i%len(frames) == 0 && i > 0 {
			b.StopTimer()
			if e, err = New(cfg); err != nil {
				b.Fatal(err)
			}
			runtime.GC()
			b.StartTimer()
		}
		e.handle(&pkt, packet.LinkTypeEthernet, f.Data, f.TS, int(f.WireLen))
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds()/1e6, "Mpps")
	st := e.snapshot().Stats
	if st.Malformed() != 0 {
		b.Fatalf("%d frames failed to decode", st.Malformed())
	}
	if b.N >= len(frames) && st.Flow.Flows != len(c.Flows) {
		b.Fatalf("%d flows tracked, want %d", st.Flow.Flows, len(c.Flows))
	}
}
