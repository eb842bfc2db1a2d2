package tests

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/gometro/go-metro/rttcheck"
	"github.com/gometro/go-metro/tests/internal/probe"
	"github.com/gometro/go-metro/tests/lab"
)

// TestMain lets the test binary double as the probe child (tests/internal/
// probe): tests re-execute it inside namespace A to run the real check
// there; and as the lab's by-name client (lab.ByNameEnv).
func TestMain(m *testing.M) {
	if os.Getenv(probe.RoleEnv) != "" {
		os.Exit(probe.Main())
	}
	if os.Getenv(lab.ByNameEnv) != "" {
		os.Exit(lab.ByNameMain())
	}
	os.Exit(m.Run())
}

// pairTags are the tags of the check's per-host-pair metrics for A -> B.
func pairTags(l *lab.Lab, local, remote netip.Addr) []string {
	return []string{"src:" + local.String(), "dst:" + remote.String(), "iface:" + l.AIf}
}

// checkInstance is a check instance on A's veth monitoring B (and extra
// remote addresses or prefixes).
func checkInstance(l *lab.Lab, extra ...string) string {
	ips := []string{fmt.Sprintf("%q", lab.AddrB4), fmt.Sprintf("%q", lab.AddrB6)}
	for _, e := range extra {
		ips = append(ips, fmt.Sprintf("%q", e))
	}
	return fmt.Sprintf("interface: %s\nips: [%s]\nreverse_dns: false\ntags: [lab:%s]\n",
		l.AIf, strings.Join(ips, ", "), l.Prefix)
}

// startCheck starts the real check in a child process inside A. prepare
// may change the command's credentials (lab.AsUser); exe "" re-executes the
// test binary itself.
func startCheck(t *testing.T, l *lab.Lab, initYAML, exe string, prepare func(*exec.Cmd) *exec.Cmd) *probe.Proc {
	t.Helper()
	return startCheckInstance(t, l, checkInstance(l), initYAML, exe, prepare)
}

func startCheckInstance(t *testing.T, l *lab.Lab, instance, initYAML, exe string, prepare func(*exec.Cmd) *exec.Cmd) *probe.Proc {
	t.Helper()
	return startProbe(t, l, probe.Options{
		Exe: exe, Role: "check", Prepare: prepare,
		Env: []string{probe.InstanceEnv + "=" + instance, probe.InitEnv + "=" + initYAML},
	})
}

// startProbe starts a probe child inside A and fails t unless it reports
// ready; the child is killed when the test ends. Both roles start so.
func startProbe(t *testing.T, l *lab.Lab, opts probe.Options) *probe.Proc {
	t.Helper()
	p, err := probe.Start(l.A, opts)
	if err != nil {
		t.Fatalf("start %s in A: %v", opts.Role, err)
	}
	t.Cleanup(p.Kill)
	if p.Ready.Err != "" {
		t.Fatalf("%s did not start: %s", opts.Role, p.Ready.Err)
	}
	return p
}

// runCheck asks the child for one Run.
func runCheck(t *testing.T, p *probe.Proc) probe.Report {
	t.Helper()
	r, err := p.Do("run")
	if err != nil {
		t.Fatalf("check Run: %v", err)
	}
	if r.Err != "" {
		t.Fatalf("check Run returned an error: %s", r.Err)
	}
	return r
}

// unprivilegedExe copies the test binary where uid 65534 can run it.
func unprivilegedExe(t *testing.T) string {
	t.Helper()
	exe, dir, err := probe.CopyExecutable()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return exe
}

// describe is a one-line account of a Run for failure messages and logs.
func describe(r probe.Report) string {
	sc := r.Service()
	var b strings.Builder
	fmt.Fprintf(&b, "service check %s %q; warnings %q; metrics:", sc.Status, sc.Message, r.Warnings)
	for _, m := range r.Metrics {
		if strings.HasPrefix(m.Name, "system.net.tcp.rtt") {
			fmt.Fprintf(&b, " %s=%.3f{%s}", m.Name, m.Value, strings.Join(m.Tags, ","))
		}
	}
	return b.String()
}

// hasRTT reports whether a Run submitted the smoothed RTT for the pair and
// counted new samples for it.
func hasRTT(r probe.Report, tags []string) bool {
	_, avg := r.Value(rttcheck.MetricRTTAvg, tags...)
	n, cnt := r.Value(rttcheck.MetricRTTSamples, tags...)
	return avg && cnt && n > 0
}
