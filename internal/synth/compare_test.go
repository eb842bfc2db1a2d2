package synth

import (
	"fmt"
	"os"
	"slices"
	"testing"
	"time"
)

// TestCompareTsharkTSV compares tshark's per-flow ack_rtt with the truth of the realistic
// capture (regenerated here: same Config, same bytes):
//
//	GOMETRO_SYNTH_OUT=/tmp/synth.pcap go test -run TestWriteCapture ./internal/synth/
//	tshark $(TsharkArgs) > /tmp/tshark_rtt.tsv     # the command is in TsharkArgs' doc
//	GOMETRO_TSHARK_TSV=/tmp/tshark_rtt.tsv go test -v -run TestCompareTsharkTSV ./internal/synth/
//
// It prints one line per flow and a summary; it fails only if the file cannot be read.
func TestCompareTsharkTSV(t *testing.T) {
	path := os.Getenv("GOMETRO_TSHARK_TSV")
	if path == "" {
		t.Skip("GOMETRO_TSHARK_TSV not set")
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rs, err := ParseTsharkRTT(f)
	if err != nil {
		t.Fatal(err)
	}
	c := Generate(Realistic())
	got := LocalSenderRTT(rs, c.LocalIPs)
	type row struct {
		fl FlowTruth
		ts RTTStats
	}
	var rows []row
	missing := 0
	for _, fl := range c.Flows {
		ts, ok := got[fl.Key()]
		if !ok {
			missing++
			continue
		}
		rows = append(rows, row{fl, ts})
	}
	slices.SortFunc(rows, func(a, b row) int { return int(a.fl.PathRTT - b.fl.PathRTT) })
	within := map[string]int{}
	total := map[string]int{}
	for _, r := range rows {
		class := "loss-free, no keepalive"
		switch {
		case r.fl.Retransmits > 0:
			class = "with retransmissions"
		case r.fl.KeepaliveProbes > 0:
			class = "with keepalive probes"
		}
		total[class]++
		rel := float64(r.ts.SRTT-r.fl.SeqRTT.SRTT) / float64(r.fl.SeqRTT.SRTT)
		if abs(rel) <= 0.02 || absDur(r.ts.SRTT-r.fl.SeqRTT.SRTT) <= 300*time.Microsecond {
			within[class]++
		}
		t.Logf("%-9v %-24v path=%-10v truth n=%-6d srtt=%-12v | tshark n=%-6d srtt=%-12v (%+.1f%%) retx=%d keepalives=%d",
			r.fl.Kind, r.fl.Remote, r.fl.PathRTT.Round(time.Microsecond), r.fl.SeqRTT.N, r.fl.SeqRTT.SRTT.Round(time.Microsecond),
			r.ts.N, r.ts.SRTT.Round(time.Microsecond), 100*rel, r.fl.Retransmits, r.fl.KeepaliveProbes)
	}
	for class, n := range total {
		t.Logf("%s: %d of %d flows with tshark SRTT within 2%% or 0.3 ms of the truth", class, within[class], n)
	}
	t.Logf("%s", fmt.Sprintf("%d flows without tshark samples for local data", missing))
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
