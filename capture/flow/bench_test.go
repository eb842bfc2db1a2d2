package flow

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/gometro/go-metro/capture/localaddr"
	"github.com/gometro/go-metro/capture/packet"
)

// BenchmarkProcess measures flow lookup + RTT update alone (no decoding):
// over one flow, as a bulk transfer (the live benchmark's iperf3) gives,
// and over 1000 interleaved flows; each sends a segment and receives its
// ACK.
func BenchmarkProcess(b *testing.B) {
	for _, flows := range []int{1, 1000} {
		b.Run(fmt.Sprintf("flows=%d", flows), func(b *testing.B) { benchmarkProcess(b, flows) })
	}
}

func benchmarkProcess(b *testing.B, flows int) {
	locals := &localaddr.Set{}
	locals.Set([]netip.Addr{localIP, netip.MustParseAddr("fe80::1")})
	tb := NewTable(TableConfig{MaxFlows: 4096, IdleTTL: 1e18, ExpTTL: 1e18}, locals, nil)
	pkts := make([]packet.Packet, 0, 2*flows)
	for i := 0; i < flows; i++ {
		port := uint16(10000 + i)
		pkts = append(pkts,
			packet.Packet{Src: v4(localIP), Dst: v4(remoteIP), SrcPort: port, DstPort: 443,
				Flags: packet.FlagACK, Seq: 0, Ack: 1, PayloadLen: 1448,
				HasTimestamps: true},
			packet.Packet{Src: v4(remoteIP), Dst: v4(localIP), SrcPort: 443, DstPort: port,
				Flags: packet.FlagACK, Seq: 1, Ack: 1448, HasTimestamps: true})
	}
	b.ReportAllocs()
	b.ResetTimer()
	var ts int64
	for i := 0; i < b.N; i++ {
		p := &pkts[i%len(pkts)]
		if i%len(pkts) == 0 {
			// Advance every flow's sequence space by one segment per round.
			for j := range pkts {
				if j%2 == 0 {
					pkts[j].Seq += 1448
					pkts[j].TSval++
				} else {
					pkts[j].Ack += 1448
					pkts[j].TSecr++
				}
			}
		}
		ts += 1000
		tb.Process(p, ts)
	}
	b.ReportMetric(float64(tb.Counters().Samples)/float64(b.N), "samples/pkt")
}

// BenchmarkReservoirAdd is the per-sample cost of keeping the RTT sample
// reservoir (see health.go); at 100 k samples/s it costs 100 k times this.
func BenchmarkReservoirAdd(b *testing.B) {
	tb := NewTable(TableConfig{MaxFlows: 4, IdleTTL: 1e18, ExpTTL: 1e18}, localSet{v4(localIP): true}, nil)
	syn := synTo(443)
	tb.Process(&syn, 1)
	f := firstFlow(tb)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if f.h.resN == 1<<20 {
			f.h.resN = 0 // a new interval now and then, as summaries do
		}
		f.addSample(int64(1e6+i%5000), int64(i)*10_000, &tb.sc)
	}
}
