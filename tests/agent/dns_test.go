package agent

import (
	"context"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gometro/go-metro/internal/syncbuf"
	"github.com/gometro/go-metro/rttcheck"
	"github.com/gometro/go-metro/tests/lab"
)

// TestAgentCheckDNSNames runs `agent check go-metro --json` in A while A
// resolves alias.metro.test (a CNAME chain to B's address, answered by
// dnsmasq in B on an address the instance does not monitor) through its
// namespace's resolv.conf and connects there: the agent's series carry
// dst:alias.metro.test, the name asked for.
func TestAgentCheckDNSNames(t *testing.T) {
	bin := agentBinary(t)
	l, srv := newLab(t)
	resolver := netip.MustParseAddr("192.0.2.53")
	if _, err := l.B.Run("ip", "addr", "add", resolver.String()+"/32", "dev", l.BIf); err != nil {
		t.Fatal(err)
	}
	if _, err := l.A.Run("ip", "neigh", "replace", resolver.String(), "lladdr", lab.MACB.String(), "dev", l.AIf, "nud", "permanent"); err != nil {
		t.Fatal(err)
	}
	l.B.StartDnsmasq(t, resolver, 60, "",
		"host-record=end.metro.test,"+lab.AddrB4.String()+",300",
		"cname=alias.metro.test,end.metro.test,300")
	l.A.SetResolvConf(t, "nameserver "+resolver.String()+"\n")
	cfg := newAgentDir(t, instance(l, ""), "http://127.0.0.1:9")

	var out syncbuf.Buffer
	cmd := exec.Command(bin, "check", "go-metro", "-c", cfg.yaml, "--json", "-t", "2", "--pause", "5000")
	done := startIn(t, l.A, cmd, &out)
	waitCaptureOpen(t, l, done)

	// glibc's resolver, through A's resolv.conf (getent runs under `ip
	// netns exec`), then a connection to the address it gave.
	res, err := l.A.Run("getent", "ahostsv4", "alias.metro.test")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(res)
	if len(f) == 0 || f[0] != lab.AddrB4.String() {
		t.Fatalf("alias.metro.test resolved to %q, want %v", res, lab.AddrB4)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := &lab.Client{Host: l.A}
	if _, err := c.RequestResponse(ctx, srv.Addr, 10, 100, 1000, 0); err != nil {
		t.Fatal(err)
	}
	<-done
	if cmd.ProcessState.ExitCode() != 0 {
		t.Fatalf("agent check exited with %v:\n%s", cmd.ProcessState, out.Bytes())
	}
	co := parseCheckOutput(t, out.Bytes())
	for _, m := range co[0].Aggregator.Metrics {
		if p := m.Points; len(p) > 0 && (strings.HasPrefix(m.Metric, "system.net.tcp.rtt") || strings.HasPrefix(m.Metric, "go_metro.dns")) {
			t.Logf("agent check --json: %-28s %10.4f %v", m.Metric, p[len(p)-1][1], m.Tags)
		}
	}
	pair := []string{"src:" + lab.AddrA4.String(), "dst:alias.metro.test", "iface:" + l.AIf}
	if _, _, ok := co.lastValue(rttcheck.MetricRTTAvg, pair...); !ok {
		t.Errorf("no %s for %v in:\n%s", rttcheck.MetricRTTAvg, pair, out.Bytes())
	}
	if n, _, ok := co.lastValue(rttcheck.MetricDNSNames, "iface:"+l.AIf); !ok || n < 1 {
		t.Errorf("%s = %v, %v; want at least 1", rttcheck.MetricDNSNames, n, ok)
	}
}
