package tests

import (
	"context"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gometro/go-metro/rttcheck"
	"github.com/gometro/go-metro/tests/internal/probe"
	"github.com/gometro/go-metro/tests/lab"
	"golang.org/x/sys/unix"
)

// exchange makes a few request/response exchanges from A to B so the
// capture has something to time.
func exchange(t *testing.T, l *lab.Lab, srv netip.AddrPort) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := &lab.Client{Host: l.A, InfoEvery: -1}
	if _, err := c.RequestResponse(ctx, srv, 5, 200, 2000, 5*time.Millisecond); err != nil {
		t.Fatalf("workload: %v", err)
	}
}

// runUntil runs the check every 300 ms until ok accepts a Run or limit
// passes (a bound on a hang: the check retries with a 1 s backoff that
// doubles). It returns the last Run and whether ok accepted it.
func runUntil(t *testing.T, p *probe.Proc, limit time.Duration, before func(), ok func(probe.Report) bool) (probe.Report, bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		if before != nil {
			before()
		}
		r := runCheck(t, p)
		if ok(r) {
			return r, true
		}
		if time.Now().After(deadline) {
			return r, false
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func critical(substr ...string) func(probe.Report) bool {
	return func(r probe.Report) bool {
		sc := r.Service()
		if sc.Status != "CRITICAL" || len(r.Warnings) == 0 {
			return false
		}
		for _, s := range substr {
			if !strings.Contains(sc.Message, s) {
				return false
			}
		}
		return true
	}
}

// TestCheckFaults breaks the capture under the real check, running in its
// own process in A, and asserts what the check reports and that it
// recovers by itself, without being restarted.
func TestCheckFaults(t *testing.T) {
	l := lab.New(t, lab.Config{KernelBridge: true})
	srv := serveB4(t, l)
	tags := pairTags(l, lab.AddrA4, lab.AddrB4)
	healthy := func(r probe.Report) bool { return r.Service().Status == "OK" && hasRTT(r, tags) }
	traffic := func() { exchange(t, l, srv.Addr) }
	// After a link was down, A's IPv4 neighbour entry and quickack route
	// are gone with it: put them back as the lab made them.
	restoreA := func() {
		for _, args := range [][]string{
			{"neigh", "replace", lab.AddrB4.String(), "lladdr", lab.MACB.String(), "dev", l.AIf, "nud", "permanent"},
			{"route", "replace", lab.AddrB4.String() + "/32", "dev", l.AIf, "quickack", "1"},
		} {
			if _, err := l.A.Run("ip", args...); err != nil {
				t.Fatal(err)
			}
		}
	}

	cases := []struct {
		name     string
		breakIt  func() error
		broken   func(probe.Report) bool
		repairIt func() error
	}{
		{
			name:    "interface deleted and re-created",
			breakIt: l.DeleteLinkA,
			// The capture fails and the check names the interface.
			broken:   critical("cannot capture on "+l.AIf, "(retrying)"),
			repairIt: l.AddLinkA,
		},
		{
			name:     "link down then up",
			breakIt:  func() error { return l.SetLinkA(false) },
			broken:   critical("interface " + l.AIf + " is down"),
			repairIt: func() error { err := l.SetLinkA(true); restoreA(); return err },
		},
	}
	p := startCheck(t, l, "", "", nil)
	if r, ok := runUntil(t, p, 10*time.Second, traffic, healthy); !ok {
		t.Fatalf("the check never reported OK with RTT before any fault: %s", describe(r))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.breakIt(); err != nil {
				t.Fatal(err)
			}
			r, ok := runUntil(t, p, 10*time.Second, nil, tc.broken)
			t.Logf("broken: %s", describe(r))
			if !ok {
				t.Errorf("no CRITICAL naming the fault within 10s")
			}
			if err := tc.repairIt(); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			r, ok = runUntil(t, p, 45*time.Second, traffic, healthy)
			t.Logf("repaired (after %v): %s", time.Since(start).Round(100*time.Millisecond), describe(r))
			if !ok {
				t.Errorf("the check did not recover to OK with RTT metrics: %s", describe(r))
			}
		})
	}
	t.Run("cancel leaks nothing", func(t *testing.T) {
		r := runCheck(t, p)
		if r.Service().Status != "OK" {
			t.Fatalf("not a live capture before Cancel: %s", describe(r))
		}
		checkStop(t, p)
	})
}

// checkStop cancels the check in the child, which then checks for leaked
// goroutines (goleak) and descriptors (/proc/self/fd before Configure vs
// after Cancel).
func checkStop(t *testing.T, p *probe.Proc) {
	t.Helper()
	r, err := p.Stop()
	if err != nil {
		t.Fatalf("stop: %v", err)
	}
	t.Logf("after Cancel: %d goroutines; descriptors before Configure %q, after Cancel %q", r.Goroutines, r.FDsBefore, r.FDsAfter)
	if r.Leaked != "" {
		t.Errorf("goroutines left after Cancel:\n%s", r.Leaked)
	}
	if len(r.FDsBefore) == 0 || strings.Join(r.FDsBefore, "\n") != strings.Join(r.FDsAfter, "\n") {
		t.Errorf("descriptors differ:\nbefore Configure: %q\nafter Cancel:     %q", r.FDsBefore, r.FDsAfter)
	}
}

// TestCheckPrivileges runs the real check in A as uid 65534: without any
// capability it must report CRITICAL naming CAP_NET_RAW; with CAP_NET_RAW
// alone it must capture and report RTT.
func TestCheckPrivileges(t *testing.T) {
	l := lab.New(t, lab.Config{KernelBridge: true})
	srv := serveB4(t, l)
	exe := unprivilegedExe(t)
	tags := pairTags(l, lab.AddrA4, lab.AddrB4)

	t.Run("no capabilities", func(t *testing.T) {
		p := startCheck(t, l, "", exe, func(c *exec.Cmd) *exec.Cmd { return lab.AsUser(c, 65534, 65534) })
		exchange(t, l, srv.Addr)
		r := runCheck(t, p)
		t.Logf("uid %d CapEff %s: %s", r.UID, r.CapEff, describe(r))
		if r.UID != 65534 || strings.Trim(r.CapEff, "0") != "" {
			t.Fatalf("child runs as uid %d with capabilities %s, want 65534 with none", r.UID, r.CapEff)
		}
		sc := r.Service()
		if sc.Status != "CRITICAL" || !strings.Contains(sc.Message, "CAP_NET_RAW") || !strings.Contains(sc.Message, l.AIf) {
			t.Errorf("want CRITICAL naming CAP_NET_RAW and %s, got %s %q", l.AIf, sc.Status, sc.Message)
		}
		if _, ok := r.Value(rttcheck.MetricRTTAvg, tags...); ok {
			t.Errorf("RTT reported without the capability to capture: %s", describe(r))
		}
		checkStop(t, p)
	})
	t.Run("CAP_NET_RAW only", func(t *testing.T) {
		p := startCheck(t, l, "", exe, func(c *exec.Cmd) *exec.Cmd { return lab.AsUser(c, 65534, 65534, unix.CAP_NET_RAW) })
		r, ok := runUntil(t, p, 10*time.Second, func() { exchange(t, l, srv.Addr) },
			func(r probe.Report) bool { return r.Service().Status == "OK" && hasRTT(r, tags) })
		t.Logf("uid %d CapEff %s: %s", r.UID, r.CapEff, describe(r))
		if r.UID != 65534 || r.CapEff != "0000000000002000" {
			t.Fatalf("child runs as uid %d with capabilities %s, want 65534 with CAP_NET_RAW (0x2000) only", r.UID, r.CapEff)
		}
		if !ok {
			t.Errorf("no OK with RTT as an unprivileged user with CAP_NET_RAW: %s", describe(r))
		}
		checkStop(t, p)
	})
}
