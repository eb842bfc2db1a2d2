package capture

import (
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

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
	runtime.LockOSThread() // threadCPU counts this thread
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	b.ResetTimer()
	cpu := -threadCPU()
	for i := 0; i < b.N; i++ {
		f := &frames[i%len(frames)]
		if i%len(frames) == 0 && i > 0 {
			// A new pass replays the same sequence numbers: start from a
			// fresh engine so every pass measures the same work.
			b.StopTimer()
			cpu += threadCPU()
			if e, err = New(cfg); err != nil {
				b.Fatal(err)
			}
			runtime.GC()
			cpu -= threadCPU()
			b.StartTimer()
		}
		e.handle(&pkt, packet.LinkTypeEthernet, f.Data, f.TS, int(f.WireLen))
	}
	b.StopTimer()
	reportHotPath(b, e, cpu+threadCPU())
}

// reportHotPath reports a hot-path benchmark's packet rate and the CPU
// time its thread spent in the timed part, and fails it if any frame of
// the synthetic capture did not decode.
func reportHotPath(b *testing.B, e *Engine, cpu time.Duration) *Snapshot {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds()/1e6, "Mpps")
	b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
	snap := e.snapshot()
	if st := snap.Stats; st.Malformed() != 0 {
		b.Fatalf("%d frames of the synthetic capture failed to decode", st.Malformed())
	}
	return snap
}

// BenchmarkHotPathFlows is the per-packet path over many concurrent
// connections (synth.Concurrent): a table holding every connection, and
// packets of connections all over it, as on a busy host. The capture opens
// every connection (a handshake and an exchange each, one microsecond
// apart), then makes rounds of one exchange per connection in shuffled
// orders; the opening round runs untimed, to fill the table, and the
// shuffled rounds are timed: about 6 million packets of lookups, each of a
// flow far from the last. At a million flows the flow state fits no cache
// and the lookup waits on memory. One op is one packet; the table is sized
// for the flows (max_flows = flows). -benchtime 6000000x runs each capture
// once.
func BenchmarkHotPathFlows(b *testing.B) {
	for _, n := range []int{1000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("flows=%d", n), func(b *testing.B) {
			c := synth.Concurrent(synth.ConcurrentConfig{Flows: n, Exchanges: 1 + (6_000_000+3*n-1)/(3*n)})
			benchmarkFrames(b, c, n, 6*n) // the opening round: 6 frames a connection
		})
	}
}

// benchmarkFrames runs c's frames through an engine of maxFlows flows, the
// first warm of them untimed, the rest timed, with a fresh engine whenever
// they run out.
func benchmarkFrames(b *testing.B, c *synth.Capture, maxFlows, warm int) {
	var prefixes []netip.Prefix
	for _, a := range c.LocalIPs {
		prefixes = append(prefixes, netip.PrefixFrom(a, a.BitLen()))
	}
	cfg := Config{File: "memory", LocalIPs: prefixes, MaxFlows: maxFlows}
	var e *Engine
	var pkt packet.Packet
	fresh := func() {
		var err error
		if e, err = New(cfg); err != nil {
			b.Fatal(err)
		}
		for i := range c.Frames[:warm] {
			f := &c.Frames[i]
			e.handle(&pkt, packet.LinkTypeEthernet, f.Data, f.TS, int(f.WireLen))
		}
		runtime.GC()
	}
	frames := c.Frames[warm:]
	runtime.LockOSThread() // threadCPU counts this thread
	defer runtime.UnlockOSThread()
	fresh()
	b.ReportAllocs()
	b.ResetTimer()
	cpu := -threadCPU()
	for i := 0; i < b.N; i++ {
		f := &frames[i%len(frames)]
		if i%len(frames) == 0 && i > 0 {
			b.StopTimer()
			cpu += threadCPU()
			fresh()
			cpu -= threadCPU()
			b.StartTimer()
		}
		e.handle(&pkt, packet.LinkTypeEthernet, f.Data, f.TS, int(f.WireLen))
	}
	b.StopTimer()
	st := reportHotPath(b, e, cpu+threadCPU()).Stats
	if st.Flow.Flows != len(c.Flows) {
		b.Fatalf("%d flows tracked, want %d", st.Flow.Flows, len(c.Flows))
	}
}
