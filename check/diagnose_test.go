//go:build test

package gometro

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/mock"

	"github.com/DataDog/datadog-agent/pkg/collector/check"

	"github.com/gometro/go-metro/rttcheck"
)

// A replay diagnoses as all passes: every subject is there, in the agent's
// types, under the instance's ID.
func TestGetDiagnosesReplay(t *testing.T) {
	pcap := writePcap(t, handshakeAndTwoRequests)
	c, s := configured(t, "interface: file\npcap: "+pcap+"\nips: ["+remoteIP+"]\nlocal_ips: ["+localIP+"]\n", "")
	runUntil(t, c, s, func(calls []mock.Call) bool {
		return called(calls, "MonotonicCount", rttcheck.MetricPackets, float64(len(handshakeAndTwoRequests)))
	})
	ds, err := c.GetDiagnoses()
	if err != nil {
		t.Fatal(err)
	}
	subjects := []string{"capture permission", "interface", "capture running", "kernel filter", "kernel drops",
		"local addresses", "hosts resolved", "traffic seen"}
	if len(ds) != len(subjects) {
		t.Fatalf("%d diagnoses, want %d: %+v", len(ds), len(subjects), ds)
	}
	for i, d := range ds {
		if d.Name != subjects[i]+" on "+pcap || d.Category != string(c.ID()) || statusOf(d).ToString(false) != "PASS" {
			t.Errorf("diagnosis %d: %+v", i, d)
		}
	}
	if want := "1 TCP flows tracked, 1 of them with RTT samples"; !strings.Contains(ds[7].Diagnosis, want) {
		t.Errorf("traffic: %q lacks %q", ds[7].Diagnosis, want)
	}
}

// A live instance on an interface that does not exist fails the interface
// diagnosis with a remediation, right after Configure (as `agent diagnose
// --local` asks), without a Run.
func TestGetDiagnosesMissingInterface(t *testing.T) {
	c, _ := configured(t, "interface: gm-nosuch0\nips: [10.0.0.1]\n", "")
	ds, err := c.GetDiagnoses()
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, d := range ds {
		if d.Name == "interface on gm-nosuch0" {
			found = true
			if statusOf(d).ToString(false) != "FAIL" || !strings.Contains(d.Diagnosis, "gm-nosuch0") || d.Remediation == "" {
				t.Errorf("interface diagnosis %+v", d)
			}
		}
	}
	if !found {
		t.Errorf("no interface diagnosis in %+v", ds)
	}
}

// The agent's own names for its results, whatever the variant.
func TestAgentResult(t *testing.T) {
	for _, tc := range []struct {
		in   rttcheck.DiagnosisResult
		want string
	}{
		{rttcheck.DiagnosisPass, "PASS"},
		{rttcheck.DiagnosisFail, "FAIL"},
		{rttcheck.DiagnosisWarning, "WARNING"},
		{rttcheck.DiagnosisResult(42), "UNEXPECTED ERROR"},
	} {
		if got := agentResult(tc.in).ToString(false); got != tc.want {
			t.Errorf("agentResult(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// Run publishes the inventory metadata under the instance's ID, and
// Version is go-metro's.
func TestInventoryAndVersion(t *testing.T) {
	inv := newInventoryMock()
	check.InitializeInventoryChecksContext(inv)
	t.Cleanup(check.ReleaseContext)
	pcap := writePcap(t, handshakeAndTwoRequests)
	c, s := configured(t, "interface: file\npcap: "+pcap+"\nall_remote_hosts: true\n", "snaplen: 150\nmax_flows: 64\n")
	runUntil(t, c, s, func([]mock.Call) bool { return true })
	got := inv.GetInstanceMetadata(string(c.ID()))
	want := map[string]interface{}{"version": rttcheck.Version, "interface": "file", "capture.backend": "file",
		"snaplen": "150", "max_flows": "64", "pcap": pcap}
	if len(got) != len(want) {
		t.Errorf("metadata %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("metadata %s = %v, want %v", k, got[k], v)
		}
	}
	if c.Version() != rttcheck.Version || rttcheck.Version == "" {
		t.Errorf("Version() = %q, want %q", c.Version(), rttcheck.Version)
	}
}
