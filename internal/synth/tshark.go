package synth

import (
	"context"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gometro/go-metro/internal/tsharkcmp"
)

// FlowKey names a connection from the capture host's point of view.
type FlowKey = tsharkcmp.Key

// Key is the flow's FlowKey.
func (f *FlowTruth) Key() FlowKey { return FlowKey{Local: f.Local, Remote: f.Remote} }

// LocalSenderRTT summarises tshark's samples (from tsharkcmp.Run) that time data sent by one of
// the local addresses, what go-metro measures, keyed by connection like FlowTruth.Key. Streams
// that reuse a 4-tuple are merged. tshark's ack_rtt times every ACK against the segment it
// acknowledges, without Karn's rule, so it is a reference for loss-free flows only.
func LocalSenderRTT(ds []tsharkcmp.Direction, local []netip.Addr) map[FlowKey]RTTStats {
	out := map[FlowKey]RTTStats{}
	for k, samples := range tsharkcmp.LocalSender(ds, func(a netip.Addr) bool { return slices.Contains(local, a) }) {
		var s RTTStats
		for _, d := range samples {
			s.add(int64(d))
		}
		out[k] = s
	}
	return out
}

// TsharkRTT writes the capture to name in the test's temporary directory,
// runs tshark on it (for two minutes at the most) and returns the file's path
// and LocalSenderRTT of tshark's samples: the reference the tests that check
// against tshark start from. The caller has already called tsharkcmp.Require.
func (c *Capture) TsharkRTT(t testing.TB, name string) (string, map[FlowKey]RTTStats) {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := c.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rs, err := tsharkcmp.Run(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	return path, LocalSenderRTT(rs, c.LocalIPs)
}
