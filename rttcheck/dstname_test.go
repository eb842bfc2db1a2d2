package rttcheck

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/gometro/go-metro/capture"
	"github.com/gometro/go-metro/capture/flow"
)

// TestDstPrecedence: dst is the configured host's name, else (with
// grouping) the network, else the DNS answer's name, else the reverse-DNS
// name, else the address; a DNS name is pinned like any other.
func TestDstPrecedence(t *testing.T) {
	flows := []flow.Summary{
		{Local: ap("10.0.0.1:40000"), Remote: ap("192.0.2.10:443"), RTT: est(1, msNS, msNS, msNS, msNS, msNS/2, 1), FirstSeen: 1},
		{Local: ap("10.0.0.1:40001"), Remote: ap("198.51.100.7:443"), RTT: est(1, msNS, msNS, msNS, msNS, msNS/2, 1), FirstSeen: 2},
		{Local: ap("10.0.0.1:40002"), Remote: ap("198.51.100.8:443"), RTT: est(1, msNS, msNS, msNS, msNS, msNS/2, 1), FirstSeen: 3},
		{Local: ap("10.0.0.1:40003"), Remote: ap("198.51.100.9:443"), RTT: est(1, msNS, msNS, msNS, msNS, msNS/2, 1), FirstSeen: 4},
		{Local: ap("10.0.0.1:40004"), Remote: ap("[2001:db8::7]:443"), RTT: est(1, msNS, msNS, msNS, msNS, msNS/2, 1), FirstSeen: 5},
	}
	names := map[netip.Addr]string{
		netip.MustParseAddr("192.0.2.10"):   "answered.example", // a configured host: its name wins
		netip.MustParseAddr("198.51.100.7"): "web.example",      // before its PTR name
		netip.MustParseAddr("2001:db8::7"):  "v6.example",
	}
	res := &fakeResolver{
		hosts: map[string][]string{"api.example.com": {"192.0.2.10"}},
		ptr:   map[string]string{"198.51.100.7": "ptr7.example.net", "198.51.100.8": "ptr8.example.net"},
	}
	for _, tc := range []struct {
		name, extra string
		want        []string // sorted
	}{
		{"default", "", []string{"dst:198.51.100.9", "dst:api.example.com", "dst:ptr8.example.net", "dst:v6.example", "dst:web.example"}},
		{"grouped by network", "group_dst_ipv4_prefix: 24\n", []string{"dst:198.51.100.0/24", "dst:api.example.com", "dst:v6.example"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fe := &fakeEngine{snap: capture.Snapshot{Flows: flows, DNSNames: names}}
			c := newTestCheck(t, Options{}, "interface: eth0\nips: [198.51.100.0/24, 2001:db8::/64]\nhosts: [api.example.com]\n"+tc.extra, "", fe, res)
			waitFor(t, "engine", c.engineStarted)
			dsts := rttAvgDsts
			// Reverse DNS answers arrive in the background.
			waitFor(t, "dst tags", func() bool { return reflect.DeepEqual(dsts(runOnce(t, c)), tc.want) })
			// The DNS answers expire: the names stay while the flows do.
			fe.set(func(f *fakeEngine) { f.snap.DNSNames = nil })
			if got := dsts(runOnce(t, c)); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("after the answers expired: %v, want %v", got, tc.want)
			}
		})
	}
}

// TestDNSNameBeforeReverseDNSFirstRun: a remote with a DNS name is reported
// under it from its first run, without waiting for reverse DNS.
func TestDNSNameBeforeReverseDNSFirstRun(t *testing.T) {
	flows := []flow.Summary{{Local: ap("10.0.0.1:40000"), Remote: ap("198.51.100.7:443"), RTT: est(1, msNS, msNS, msNS, msNS, msNS/2, 1), FirstSeen: 1}}
	fe := &fakeEngine{snap: capture.Snapshot{Flows: flows, DNSNames: map[netip.Addr]string{netip.MustParseAddr("198.51.100.7"): "web.example"}}}
	c := newTestCheck(t, Options{}, "interface: eth0\nips: [198.51.100.0/24]", "", fe, &fakeResolver{})
	waitFor(t, "engine", c.engineStarted)
	r := runOnce(t, c)
	if s := r.find(MetricRTTAvg); len(s) != 1 || s[0].tags[1] != "dst:web.example" {
		t.Fatalf("first run: %+v", s)
	}
}
