package tests

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/gometro/go-metro/capture"
	"github.com/gometro/go-metro/capture/packet"
	"github.com/gometro/go-metro/tests/internal/delayline"
	"github.com/gometro/go-metro/tests/lab"
)

// TestTunnelVXLANAgainstKernel runs TCP connections between A and B inside a
// VXLAN overlay (VNI 42 over the lab's delay-line link) while an engine
// captures A's underlay veth, expecting vxlan and monitoring only the inner
// remote (so the kernel filter must let the outer packets through): every
// connection meets the accuracy bar against the kernel's srtt, and its flow
// carries the tunnel in its key.
func TestTunnelVXLANAgainstKernel(t *testing.T) {
	l := lab.New(t, lab.Config{})
	inA, inB := netip.MustParseAddr("10.42.0.1"), netip.MustParseAddr("10.42.0.2")
	for _, h := range []struct {
		host                *lab.Host
		dev                 string
		local, remote, addr netip.Addr
		peer                netip.Addr
	}{{l.A, l.AIf, lab.AddrA4, lab.AddrB4, inA, inB}, {l.B, l.BIf, lab.AddrB4, lab.AddrA4, inB, inA}} {
		for _, args := range [][]string{
			{"link", "add", "vx42", "type", "vxlan", "id", "42", "local", h.local.String(), "remote", h.remote.String(), "dstport", "4789", "dev", h.dev},
			{"addr", "add", h.addr.String() + "/24", "dev", "vx42"},
			{"link", "set", "vx42", "up"},
			// As on the lab's own link: every segment ACKed at once, so
			// the kernel's srtt is the path's.
			{"route", "replace", h.peer.String() + "/32", "dev", "vx42", "quickack", "1"},
		} {
			if _, err := h.host.Run("ip", args...); err != nil {
				t.Fatal(err)
			}
		}
	}
	dir := delayline.Dir{Delay: 5 * time.Millisecond}
	if err := l.SetImpairment(dir, dir); err != nil {
		t.Fatal(err)
	}
	srv, err := l.B.Serve(netip.AddrPortFrom(inB, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer closeServer(t, srv)
	eng, stop := startEngineWith(t, l, capture.Config{Interface: l.AIf,
		LocalIPs: []netip.Prefix{netip.PrefixFrom(inA, 32)}, Remotes: []netip.Prefix{netip.PrefixFrom(inB, 32)},
		Tunnels: packet.EncapVXLAN})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var gathered comparisons
	c := &lab.Client{Host: l.A, BeforeClose: gathered.hook(t, eng)}
	if _, err := c.BulkSend(ctx, srv.Addr, 1<<20, 1<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RequestResponse(ctx, srv.Addr, 8, 300, 20000, 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	snap := stop()
	if _, err := l.StopDelayLine(); err != nil {
		t.Errorf("delay line: %v", err)
	}
	t.Logf("engine: packets %d tcp %d tunnelled %d skipped %d; kernel received %d dropped %d",
		snap.Stats.Packets, snap.Stats.TCPPackets, snap.Stats.Tunnelled, snap.Stats.TunnelSkipped,
		snap.Stats.Kernel.Received, snap.Stats.Kernel.Dropped)
	if snap.Stats.Kernel.Dropped != 0 {
		t.Errorf("the capture's kernel ring dropped %d frames: the comparison is void", snap.Stats.Kernel.Dropped)
	}
	cmps := gathered.all()
	checkComparisons(t, cmps)
	for _, cm := range cmps {
		if tk := cm.flow.Tunnel; cm.ok && (tk.Encaps != packet.EncapVXLAN || tk.ID != 42) {
			t.Errorf("%s: flow tunnel %q, want vxlan vni=42", cm.rec.Key(), tk)
		}
	}
}
