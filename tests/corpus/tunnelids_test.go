package corpus

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/gometro/go-metro/internal/tsharkcmp"
)

// TestTunnelIDPerDirection replays the corpus captures of connections whose
// tunnel carries one identifier each way (Geneve, VNI 11 from the client,
// 10 from the server, as EVPN asymmetric IRB or per-direction OVS keys
// do): each connection must be one flow, named with both identifiers,
// that go-metro times whenever tshark times it from the local side, its
// minimum not below tshark's where tshark times it often enough to judge
// (tsharkcmp's verdicts). Kept apart, the two directions would be two
// half-flows, neither of which sees both segments and their ACKs.
func TestTunnelIDPerDirection(t *testing.T) {
	corpus := corpusDir(t)
	tsharkcmp.Require(t)
	for _, tc := range []struct {
		file   string
		tunnel string // the joined flow's tunnel (ours/the peer's VNI)
	}{
		{"tcpdump/tests__geneve.pcap", "geneve vni=11/10 outer=20.0.0.1,20.0.0.2"},
		{"libpcap/tests__filter__geneve.pcap", "geneve vni=11/10 outer=20.0.0.1,20.0.0.2"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join(corpus, tc.file)
			r := replay(path)
			if r.snap == nil {
				t.Fatalf("replay: %v", r.err)
			}
			if len(r.snap.Flows) != 1 {
				for _, f := range r.snap.Flows {
					t.Logf("flow %v -> %v %s: %d samples", f.Local, f.Remote, f.Tunnel, f.RTT.Samples)
				}
				t.Fatalf("%d flows, want 1: the connection's two directions were not joined", len(r.snap.Flows))
			}
			f := r.snap.Flows[0]
			if got := f.Tunnel.String(); got != tc.tunnel {
				t.Errorf("tunnel %q, want %q", got, tc.tunnel)
			}
			j := judgeFile(path)
			if j.err != nil {
				t.Fatal(j.err)
			}
			if len(j.results) == 0 {
				t.Fatalf("tshark times no flow from the local side (%s): nothing compared", j.local)
			}
			for _, res := range j.results {
				t.Logf("%v", res)
				switch {
				case res.Verdict == tsharkcmp.Few && res.Ours.Samples == 0:
					// Too few to judge in the whole corpus, but here the
					// point: tshark times it, so must go-metro.
					t.Errorf("%v: go-metro takes no sample", res)
				case res.Verdict != tsharkcmp.Few && res.Verdict != tsharkcmp.OK:
					t.Errorf("%v", res)
				}
			}
			if !strings.Contains(f.Tunnel.String(), "/") {
				t.Errorf("the flow's tunnel %q shows one identifier", f.Tunnel)
			}
		})
	}
}
