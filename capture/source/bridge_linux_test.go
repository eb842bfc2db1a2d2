package source

import (
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// bridgeNet is testNet's two namespaces as two ports of a bridge in a third,
// the way containers sit on docker0: A and B talk through the bridge, and
// the bridge's own namespace has no address on their network.
type bridgeNet struct {
	*testNet
	nsBr, br string
}

func newBridgeNet(t *testing.T) *bridgeNet {
	t.Helper()
	tn := newTestNet(t)
	bn := &bridgeNet{testNet: tn, nsBr: tn.nsA + "-br", br: tn.ifA + "br"}
	run(t, "ip", "netns", "add", bn.nsBr)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", bn.nsBr).Run() })
	// Replace the direct veth with one veth per side into the bridge.
	run(t, "ip", "netns", "exec", tn.nsA, "ip", "link", "del", tn.ifA)
	ex := func(args ...string) { run(t, append([]string{"ip", "netns", "exec", bn.nsBr}, args...)...) }
	ex("ip", "link", "add", bn.br, "type", "bridge")
	for _, side := range []struct{ ns, ifname, port, addr, addr6 string }{
		{tn.nsA, tn.ifA, tn.ifA + "p", tn.addrA.String() + "/24", tn.addr6A.String() + "/64"},
		{tn.nsB, tn.ifB, tn.ifB + "p", tn.addrB.String() + "/24", tn.addr6B.String() + "/64"},
	} {
		ex("ip", "link", "add", side.port, "type", "veth", "peer", "name", side.ifname, "netns", side.ns)
		ex("ip", "link", "set", side.port, "master", bn.br, "up")
		for _, c := range [][]string{
			{"ip", "addr", "add", side.addr, "dev", side.ifname},
			{"ip", "addr", "add", side.addr6, "dev", side.ifname, "nodad"},
			{"ip", "link", "set", side.ifname, "up"},
		} {
			run(t, append([]string{"ip", "netns", "exec", side.ns}, c...)...)
		}
	}
	ex("ip", "link", "set", bn.br, "up")
	return bn
}

// promiscuity is the bridge's promiscuity count (`ip -d link`).
func (bn *bridgeNet) promiscuity(t *testing.T) int {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", bn.nsBr, "ip", "-d", "link", "show", bn.br).CombinedOutput()
	if err != nil {
		t.Fatalf("ip link show %s: %v: %s", bn.br, err, out)
	}
	m := regexp.MustCompile(`promiscuity (\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no promiscuity in %s", out)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// TestLiveBridge: a capture on a bridge sees the TCP between two of its
// ports, which the bridge forwards without passing up to its own device
// unless it is promiscuous; the capture's membership ends with it.
func TestLiveBridge(t *testing.T) { forBackends(t, testLiveBridge) }

func testLiveBridge(t *testing.T, backend string) {
	bn := newBridgeNet(t)
	if !inBridgeNs(t, bn, func() bool { return isBridge(bn.br) }) {
		t.Fatalf("isBridge(%s) = false", bn.br)
	}
	if inBridgeNs(t, bn, func() bool { return isBridge("lo") }) {
		t.Fatal("isBridge(lo) = true")
	}
	bn.listen(bn.addrB, 8080)
	var s Source
	if err := in(t, bn.nsBr, func() (err error) {
		s, err = OpenLive(backend, Options{Interface: bn.br, PollTimeout: 50 * time.Millisecond})
		return err
	}); err != nil {
		t.Fatalf("OpenLive on the bridge: %v", err)
	}
	if p := bn.promiscuity(t); p != 1 {
		t.Errorf("bridge promiscuity %d while captured, want 1", p)
	}
	bn.send("tcp", bn.addrB, 8080, 5)
	var toB, fromB int
	for _, f := range collect(t, s, 300*time.Millisecond) {
		switch {
		case !f.tcp:
		case f.dst == bn.addrB && f.dport == 8080:
			toB++
		case f.src == bn.addrB && f.sport == 8080:
			fromB++
		}
	}
	if toB == 0 || fromB == 0 {
		t.Errorf("capture on the bridge saw %d segments to B and %d from B, want both directions", toB, fromB)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if p := bn.promiscuity(t); p != 0 {
		t.Errorf("bridge promiscuity %d after Close, want 0", p)
	}
}

func inBridgeNs(t *testing.T, bn *bridgeNet, f func() bool) bool {
	t.Helper()
	var v bool
	if err := in(t, bn.nsBr, func() error { v = f(); return nil }); err != nil {
		t.Fatal(err)
	}
	return v
}
