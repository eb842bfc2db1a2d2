//go:build test

// These tests need the agent's mocksender (build tag `test`) and therefore a
// datadog-agent workspace; see README.md for how to run them.

package gometro

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"

	"github.com/DataDog/datadog-agent/comp/core/autodiscovery/integration"
	"github.com/DataDog/datadog-agent/pkg/aggregator/mocksender"
	checkid "github.com/DataDog/datadog-agent/pkg/collector/check/id"
	"github.com/DataDog/datadog-agent/pkg/metrics/servicecheck"

	"github.com/gometro/go-metro/internal/pcaptest"
	"github.com/gometro/go-metro/rttcheck"
)

const (
	localIP  = "10.77.9.1"
	remoteIP = "10.77.9.2"
)

// seg is one TCP segment of the test capture, at ms milliseconds from the
// start, sent by the local host when out is true.
type seg struct {
	ms         float64
	out        bool
	syn, ack   bool
	seq, ackNo uint32
	payload    int
}

// handshakeAndTwoRequests is a connection we open: the SYN is answered in
// 10 ms, then two 100-byte segments are acknowledged after 20 ms and 30 ms.
// RFC 6298 on samples 10, 20, 30 ms: SRTT 10 -> 11.25 -> 13.59375 and
// RTTVAR 5 -> 6.25 -> 9.375, all exact in nanoseconds.
var handshakeAndTwoRequests = []seg{
	{ms: 0, out: true, syn: true, seq: 1000},
	{ms: 10, out: false, syn: true, ack: true, seq: 5000, ackNo: 1001},
	{ms: 10.1, out: true, ack: true, seq: 1001, ackNo: 5001},
	{ms: 20, out: true, ack: true, seq: 1001, ackNo: 5001, payload: 100},
	{ms: 40, out: false, ack: true, seq: 5001, ackNo: 1101},
	{ms: 50, out: true, ack: true, seq: 1101, ackNo: 5001, payload: 100},
	{ms: 80, out: false, ack: true, seq: 5001, ackNo: 1201},
}

// writePcap writes segs as an Ethernet pcap file and returns its path.
func writePcap(t *testing.T, segs []seg) string {
	t.Helper()
	c := pcaptest.Capture{
		Client:  netip.AddrPortFrom(netip.MustParseAddr(localIP), 40000),
		Server:  netip.AddrPortFrom(netip.MustParseAddr(remoteIP), 80),
		Snaplen: 65535,
	}
	for _, s := range segs {
		c.Segments = append(c.Segments, pcaptest.Segment{
			At: time.Duration(s.ms * float64(time.Millisecond)), FromClient: s.out,
			SYN: s.syn, ACK: s.ack, PSH: s.payload > 0, Seq: s.seq, Ack: s.ackNo, Payload: s.payload,
		})
	}
	path := filepath.Join(t.TempDir(), "flow.pcap")
	c.Write(t, path)
	return path
}

// configured returns a Check configured through the agent's code path and
// the mock sender that replaced its real sender.
func configured(t *testing.T, instance, initConfig string) (*Check, *mocksender.MockSender) {
	t.Helper()
	// No reverse DNS unless a test asks for it: the test addresses are
	// not ours to look up on the machine's resolver.
	if !strings.Contains(instance, "reverse_dns:") {
		instance += "\nreverse_dns: false\n"
	}
	c := newCheck(nil).(*Check)
	senderManager := mocksender.CreateDefaultDemultiplexer()
	t.Cleanup(func() { senderManager.Stop(false) })
	if err := configureAsLoader(c, senderManager, integration.Data(instance), integration.Data(initConfig)); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	t.Cleanup(c.Cancel)
	// The ID is only known after BuildID, inside Configure.
	s := mocksender.NewMockSenderWithSenderManager(c.ID(), senderManager)
	s.SetupAcceptAll()
	return c, s
}

// runUntil runs the check, as the collector would on every interval, until
// done accepts the calls of one run. Capture runs in the background from
// Configure on, so the first runs may come before the replay was read.
// It returns the warnings of that run.
func runUntil(t *testing.T, c *Check, s *mocksender.MockSender, done func([]mock.Call) bool) []error {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.ResetCalls()
		c.GetWarnings() // the collector clears them before each run too
		if err := c.Run(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if done(s.Calls) {
			return c.GetWarnings()
		}
		if time.Now().After(deadline) {
			t.Fatalf("no run was complete within 10s; last run's calls: %v", s.Calls)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// called reports whether calls hold method(name, value, ...).
func called(calls []mock.Call, method, name string, value float64) bool {
	for _, c := range calls {
		if c.Method == method && c.Arguments.String(0) == name && c.Arguments.Get(1).(float64) == value {
			return true
		}
	}
	return false
}

func TestReplayReportsRTT(t *testing.T) {
	pcap := writePcap(t, handshakeAndTwoRequests)
	instance := strings.Join([]string{
		"interface: file",
		"pcap: " + pcap,
		"ips: [" + remoteIP + "]",
		"local_ips: [" + localIP + "]",
		"reverse_dns: false",
		"tags: [team:net]",
	}, "\n")
	c, s := configured(t, instance, "")
	// All frames read means the snapshot of that run holds the whole flow.
	warnings := runUntil(t, c, s, func(calls []mock.Call) bool {
		return called(calls, "MonotonicCount", rttcheck.MetricPackets, float64(len(handshakeAndTwoRequests)))
	})

	pair := []string{"src:" + localIP, "dst:" + remoteIP, "iface:file"}
	for _, tc := range []struct {
		metric string
		want   float64
	}{
		{"system.net.tcp.rtt", 30},
		{"system.net.tcp.rtt.avg", 13.59375},
		{"system.net.tcp.rtt.jitter", 9.375},
		{"system.net.tcp.rtt.min", 10},
		{"system.net.tcp.rtt.max", 30},
	} {
		s.AssertMetricOnce(t, "Gauge", tc.metric, tc.want, "", pair)
	}
	s.AssertMetric(t, "Count", "system.net.tcp.rtt.samples", 3, "", pair)
	// Every sample of the run, fewer than rtt_distribution_values, goes to
	// the agent's distribution (its sketches give the percentiles).
	for _, v := range []float64{10, 30} {
		s.AssertMetric(t, "Distribution", "system.net.tcp.rtt.distribution", v, "", pair)
	}
	s.AssertServiceCheck(t, rttcheck.ServiceCheckName, servicecheck.ServiceCheckOK, "", []string{"iface:file"}, "")
	// Inside the agent CheckBase's sender adds the instance tags; the check
	// must not add them a second time.
	s.AssertMetricNotTaggedWith(t, "Gauge", "system.net.tcp.rtt.avg", []string{"team:net"})
	s.AssertCalled(t, "Commit")
	if len(warnings) != 0 {
		t.Errorf("warnings = %v, want none", warnings)
	}
}

func TestReplayFailureIsCriticalAndWarned(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.pcap")
	c, s := configured(t, "interface: file\npcap: "+missing+"\nall_remote_hosts: true\n", "")
	warnings := runUntil(t, c, s, func(calls []mock.Call) bool {
		for _, call := range calls {
			if call.Method == "ServiceCheck" && call.Arguments.Get(1) == servicecheck.ServiceCheckCritical {
				return true
			}
		}
		return false
	})
	namesFile := mock.MatchedBy(func(msg string) bool { return strings.Contains(msg, missing) })
	s.AssertCalled(t, "ServiceCheck", rttcheck.ServiceCheckName, servicecheck.ServiceCheckCritical, "", mocksender.MatchTagsContains([]string{"iface:file"}), namesFile)
	// The agent shows warnings in `agent status` only for the run that
	// raised them, so each run must raise it again while the problem lasts.
	found := false
	for _, w := range warnings {
		found = found || strings.Contains(w.Error(), missing)
	}
	if !found {
		t.Errorf("warnings %v do not name %s", warnings, missing)
	}
}

func TestConfigureRejectsBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name, instance, initConfig string
		want                       []string // substrings of the error
	}{
		{"no remote hosts", "interface: eth0\n", "", []string{"ips"}},
		{"replay without file", "interface: file\nall_remote_hosts: true\n", "", []string{"pcap", "required"}},
		{"bad address", "interface: eth0\nips: [10.0.0.300]\n", "", []string{"ips[0]", "10.0.0.300"}},
		{"snaplen too small", "interface: eth0\nall_remote_hosts: true\n", "snaplen: 40\n", []string{"init_config", "snaplen"}},
		{"not a mapping", "- eth0\n", "", []string{"mapping"}},
		// CheckBase decodes tags itself, with an error naming only Go
		// types; rttcheck's validation must come first and name the key.
		{"agent key of the wrong type", "interface: eth0\nall_remote_hosts: true\ntags: team:net\n", "", []string{"tags: "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCheck(nil).(*Check)
			senderManager := mocksender.CreateDefaultDemultiplexer()
			defer senderManager.Stop(false)
			err := configureAsLoader(c, senderManager, integration.Data(tc.instance), integration.Data(tc.initConfig))
			if err == nil {
				c.Cancel()
				t.Fatal("Configure accepted the config")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			c.Cancel() // must be safe after a failed Configure
		})
	}
}

// The agent's sender, not rttcheck, adds the instance's tags and service:
// Configure must hand them to it, and finalize the service tag as
// CheckBase.Configure (which Check overrides) would.
func TestConfigureSetsSenderTagsAndService(t *testing.T) {
	pcap := writePcap(t, handshakeAndTwoRequests)
	instance := integration.Data("interface: file\npcap: " + pcap + "\nall_remote_hosts: true\ntags: [team:net]\nservice: rtt\n")
	initConfig := integration.Data("")
	senderManager := mocksender.CreateDefaultDemultiplexer()
	defer senderManager.Stop(false)
	// Register the mock under the ID Configure will compute, so that it
	// sees the calls Configure makes.
	s := mocksender.NewMockSenderWithSenderManager(checkid.BuildID(CheckName, integration.FakeConfigHash, instance, initConfig), senderManager)
	s.SetupAcceptAll()
	c := newCheck(nil).(*Check)
	if err := configureAsLoader(c, senderManager, instance, initConfig); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	defer c.Cancel()
	s.AssertCalled(t, "SetCheckCustomTags", []string{"team:net"})
	s.AssertCalled(t, "SetCheckService", "rtt")
	s.AssertCalled(t, "FinalizeCheckServiceTag")
}

func TestAgentStatus(t *testing.T) {
	for _, tc := range []struct {
		in   rttcheck.ServiceCheckStatus
		want servicecheck.ServiceCheckStatus
	}{
		{rttcheck.StatusOK, servicecheck.ServiceCheckOK},
		{rttcheck.StatusWarning, servicecheck.ServiceCheckWarning},
		{rttcheck.StatusCritical, servicecheck.ServiceCheckCritical},
		{rttcheck.StatusUnknown, servicecheck.ServiceCheckUnknown},
		{rttcheck.ServiceCheckStatus(42), servicecheck.ServiceCheckUnknown},
	} {
		if got := agentStatus(tc.in); got != tc.want {
			t.Errorf("agentStatus(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestRunAfterCancelFails(t *testing.T) {
	pcap := writePcap(t, handshakeAndTwoRequests)
	c, _ := configured(t, "interface: file\npcap: "+pcap+"\nall_remote_hosts: true\n", "")
	c.Cancel()
	if err := c.Run(); err == nil {
		t.Fatal("Run after Cancel returned no error")
	}
}
