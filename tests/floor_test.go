package tests

import (
	"fmt"
	"testing"
	"time"

	"github.com/gometro/go-metro/capture/flow"
	"github.com/gometro/go-metro/tests/internal/delayline"
	"github.com/gometro/go-metro/tests/lab"
)

// floorRuns is how many times each floor scenario runs.
const floorRuns = 5

// floorSlack is how far below the path's floor a sample may be: capture
// timestamp noise, nothing more.
const floorSlack = 50 * time.Microsecond

// TestMinimumAtFloor holds every RTT sample of every connection at or
// above the path's floor: the delay line delays every frame by 25 ms each
// way, so no segment is answered in less than 50 ms, and users read
// rtt.min and the low percentiles as that floor. Bulk uploads (cubic and
// BBR, without and with 1 % loss; unpaced ones fill the delay line's
// queue, so flights outgrow the flow's entries and entries interpolate)
// and request/response run floorRuns times each; per connection the
// smallest sample (Min) and every sample of the flow's reservoir must be
// at least the floor minus floorSlack.
func TestMinimumAtFloor(t *testing.T) {
	const oneWay = 25 * time.Millisecond
	floor := 2 * oneWay
	scenarios := []struct {
		name string
		cc   string
		loss float64
	}{
		{"cubic", "cubic", 0},
		{"bbr", "bbr", 0},
		{"cubic-loss1", "cubic", 0.01},
		{"bbr-loss1", "bbr", 0.01},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			dir := delayline.Dir{Delay: oneWay, Loss: sc.loss}
			l := lab.New(t, lab.Config{Congestion: sc.cc, Line: delayline.Config{AtoB: dir, BtoA: dir}})
			srv4, srv6 := serveBoth(t, l)
			lowest := time.Duration(0)
			for run := 1; run <= floorRuns; run++ {
				if run > 1 {
					if err := l.SetImpairment(dir, dir); err != nil {
						t.Fatal(err)
					}
				}
				eng, stop := startEngine(t, l)
				stopRec := startRecorder(t, l)
				// Cubic recovers slowly from a loss at 50 ms: what is left
				// to send when the workload ends may take a while.
				c := &lab.Client{Host: l.A, QuietTimeout: 30 * time.Second}
				cmps := runMix(t, c, eng,
					mixBulkSend(srv4.Addr, 3<<20, 0),
					mixBulkSend(srv6.Addr, 2<<20, 0),
					mixBulkSend(srv4.Addr, 2<<20, 1<<20),
					mixRequestResponse(srv4.Addr, 20, 300, 20000, 10*time.Millisecond),
					mixRequestResponse(srv6.Addr, 20, 3*1448+100, 4000, 10*time.Millisecond),
				)
				snap := stop()
				rec := stopRec()
				dumpRun(t, rec, fmt.Sprintf("floor-%s-run%d.pcap", sc.name, run))
				if _, err := l.StopDelayLine(); err != nil {
					t.Errorf("run %d: delay line: %v", run, err)
				}
				t.Logf("run %d: engine packets %d samples %d karn-skipped %d retransmits %d decimations %d",
					run, snap.Stats.Packets, snap.Stats.Flow.Samples, snap.Stats.Flow.KarnSkipped,
					snap.Stats.Flow.Retransmits, snap.Stats.Flow.Decimations)
				for _, c := range cmps {
					if !c.ok || c.flow.RTT.Samples == 0 {
						t.Errorf("run %d: %s %s: not timed", run, c.rec.Kind, c.rec.Key())
						continue
					}
					low := flowLowest(c.flow)
					if lowest == 0 || low < lowest {
						lowest = low
					}
					t.Logf("run %d: %-10s %-42s min %v (lowest kept sample %v), kernel min_rtt %v, samples %d, retrans %d",
						run, c.rec.Kind, c.rec.Key(), time.Duration(c.flow.RTT.Min), low, c.rec.Final.MinRTT,
						c.flow.RTT.Samples, c.rec.Final.TotalRetrans)
					if low < floor-floorSlack {
						t.Errorf("run %d: %s %s: a sample of %v, below the path's floor %v", run, c.rec.Kind, c.rec.Key(), low, floor)
					}
				}
			}
			t.Logf("SUMMARY %s: lowest sample over %d runs %v (floor %v)", sc.name, floorRuns, lowest, floor)
		})
	}
}

// flowLowest is the smallest RTT sample a flow summary shows: its
// estimator's minimum or a sample of its reservoir.
func flowLowest(f flow.Summary) time.Duration {
	low := time.Duration(f.RTT.Min)
	for _, v := range f.Health.RTTSampled[:min(f.Health.RTTSeen, flow.ReservoirSize)] {
		low = min(low, time.Duration(v)*time.Microsecond)
	}
	return low
}
