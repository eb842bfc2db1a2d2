package tests

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/gometro/go-metro/tests/internal/delayline"
	"github.com/gometro/go-metro/tests/lab"
)

// lossRuns is how many times each loss scenario runs.
const lossRuns = 5

// TestAccuracyLoss holds go-metro to the kernel's srtt on a 50 ms path with
// 1 % and 2 % loss each way, lossRuns times each. During recovery the
// kernel times the ACKs that cover retransmitted data from the TSval they
// echo (tcp_ack_update_rtt falls back to tcp_rtt_tsopt_us when Karn's rule
// leaves no sequence sample and no SACK sample), so its srtt takes the
// queueing delay of the retransmissions; a monitor that skips those ACKs
// reads low. Every connection must be within max(2 %, 0.3 ms) at close and
// count the kernel's retransmissions.
func TestAccuracyLoss(t *testing.T) {
	ms := time.Millisecond
	type scenario struct {
		cc       string
		loss     float64
		offloads bool
	}
	var scenarios []scenario
	for _, cc := range []string{"cubic", "bbr"} {
		for _, loss := range []float64{0.01, 0.02} {
			scenarios = append(scenarios, scenario{cc, loss, false})
		}
	}
	// TSO, GSO and GRO on (lab.Config.Offloads): A sends super-frames,
	// the delay line loses one whole (every segment in it), and the kernel
	// retransmits and counts segments (tcpi_total_retrans counts
	// tcp_skb_pcount), which go-metro must count alike.
	scenarios = append(scenarios, scenario{"cubic", 0.01, true})
	for _, sc := range scenarios {
		loss := sc.loss
		name := fmt.Sprintf("%s-rtt50-loss%g", sc.cc, 100*loss)
		if sc.offloads {
			name = "offloads-" + name
		}
		t.Run(name, func(t *testing.T) {
			dir := delayline.Dir{Delay: 25 * ms, Loss: loss}
			l := lab.New(t, lab.Config{Congestion: sc.cc, Offloads: sc.offloads, Line: delayline.Config{AtoB: dir, BtoA: dir}})
			srv4, srv6 := serveBoth(t, l)
			var errs []float64
			var over overTime
			for run := 1; run <= lossRuns; run++ {
				if run > 1 {
					if err := l.SetImpairment(dir, dir); err != nil {
						t.Fatal(err)
					}
				}
				eng, stop := startEngine(t, l)
				stopRec := startRecorder(t, l)
				c := &lab.Client{Host: l.A, QuietTimeout: 30 * time.Second, InfoEvery: overTimeEvery}
				cmps := runMix(t, c, eng,
					mixBulkSend(srv4.Addr, 2<<20, 1<<20),
					mixBulkSend(srv6.Addr, 2<<20, 1<<20),
					mixBulkSend(srv4.Addr, 2<<20, 0),
					mixBulkReceive(srv4.Addr, 1<<20, 1<<20),
					mixRequestResponse(srv4.Addr, 8, 300, 20000, 50*ms),
				)
				snap := stop()
				rec := stopRec()
				dumpRun(t, rec, fmt.Sprintf("%s-run%d.pcap", name, run))
				st, err := l.StopDelayLine()
				if err != nil {
					t.Errorf("run %d: delay line: %v", run, err)
				}
				t.Logf("run %d: engine packets %d samples %d karn-skipped %d retransmits %d; line a->b lost %d, b->a lost %d",
					run, snap.Stats.Packets, snap.Stats.Flow.Samples, snap.Stats.Flow.KarnSkipped, snap.Stats.Flow.Retransmits,
					st.AtoB.DroppedLoss, st.BtoA.DroppedLoss)
				if snap.Stats.Kernel.Dropped != 0 {
					t.Errorf("run %d: the capture's kernel ring dropped %d frames: the comparison is void", run, snap.Stats.Kernel.Dropped)
				}
				errs = append(errs, checkComparisons(t, cmps)...)
				over.replay(t, run, rec, c.Records())
			}
			abs := make([]float64, len(errs))
			for i, e := range errs {
				abs[i] = math.Abs(e)
			}
			slices.Sort(abs)
			if len(abs) > 0 {
				t.Logf("SUMMARY loss %g%% at close: %d connections over %d runs, worst |error| %.3f%%, median %.3f%%",
					100*loss, len(abs), lossRuns, 100*abs[len(abs)-1], 100*abs[len(abs)/2])
			}
			over.summary(t, name)
		})
	}
}
