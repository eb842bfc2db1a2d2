package synth

import (
	"testing"
	"time"

	"github.com/gometro/go-metro/internal/tsharkcmp"
)

// TestTsharkAgreesWithTruth runs tshark on a small loss-free capture: its per-flow ack_rtt
// for data the local host sent must match the simulator's own samples. This checks both the
// capture (tshark reads and analyses it as real TCP) and the helper.
func TestTsharkAgreesWithTruth(t *testing.T) {
	tsharkcmp.Require(t)
	cfg := Small()
	cfg.BulkSendFlows, cfg.BulkRecvFlows, cfg.BulkBytes = 1, 1, 1<<20
	cfg.ReqRespFlows, cfg.AcceptFlows, cfg.IPv6Flows = 6, 2, 3
	cfg.LossRate, cfg.KeepaliveFrac = 0, 0
	c := Generate(cfg)
	_, got := c.TsharkRTT(t, "tiny.pcap")
	for _, fl := range c.Flows {
		ts, ok := got[fl.Key()]
		if !ok {
			t.Errorf("%v %v: no tshark samples", fl.Kind, fl.Key())
			continue
		}
		t.Logf("%-9v %v rtt=%v truth n=%d srtt=%v mean=%v | tshark n=%d srtt=%v mean=%v", fl.Kind, fl.Remote, fl.PathRTT,
			fl.SeqRTT.N, fl.SeqRTT.SRTT, fl.SeqRTT.Mean, ts.N, ts.SRTT, ts.Mean)
		// Without loss both time each ACK against the segment it acknowledges, from the same
		// nanosecond timestamps, so the sample sequences are identical.
		if ts.N != fl.SeqRTT.N || absDur(ts.Mean-fl.SeqRTT.Mean) > time.Microsecond || absDur(ts.SRTT-fl.SeqRTT.SRTT) > time.Microsecond {
			t.Errorf("%v %v: tshark n=%d srtt=%v mean=%v, truth n=%d srtt=%v mean=%v", fl.Kind, fl.Key(),
				ts.N, ts.SRTT, ts.Mean, fl.SeqRTT.N, fl.SeqRTT.SRTT, fl.SeqRTT.Mean)
		}
	}
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
