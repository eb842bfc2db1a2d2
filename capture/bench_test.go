package capture

import (
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
