package tests

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gometro/go-metro/capture/dns"
	"github.com/gometro/go-metro/rttcheck"
	"github.com/gometro/go-metro/tests/internal/probe"
	"github.com/gometro/go-metro/tests/lab"
)

// TestDNSNames: dnsmasq in B answers for the zone metro.test (an A, an
// AAAA, a CNAME chain, a name with a 1-second TTL, a name asked over TCP, a
// name with 24 addresses, whose answer is longer than the header cut);
// A resolves through it (/etc/netns/A/resolv.conf, in place under `ip netns
// exec`) and connects to B by name. The real check, capturing on A's veth
// behind its kernel filter, must tag each series with the name that was
// asked for; after the short name's TTL and a re-resolve to a new address,
// the new address must get the name. The resolver's own address is not a
// monitored remote: its answers reach go-metro through the filter's DNS
// check. Each instance variant runs in its own check process, over the same
// traffic, so that the series each tag option makes are counted side by
// side (logged). Last, the standalone `go-metro check` runs in A and its
// output must carry the names, with either capture backend.
func TestDNSNames(t *testing.T) {
	l := lab.New(t, lab.Config{})
	var (
		addrA     = lab.AddrB4                       // a.metro.test
		addrAAAA  = lab.AddrB6                       // aaaa.metro.test
		addrChain = netip.MustParseAddr("192.0.2.4") // alias.metro.test -> mid -> end.metro.test
		addrShort = netip.MustParseAddr("192.0.2.5") // short.metro.test, TTL 1 s
		addrMoved = netip.MustParseAddr("192.0.2.6") // short.metro.test after the re-resolve
		addrTCP   = netip.MustParseAddr("192.0.2.7") // tcp.metro.test, asked over TCP
		resolver  = netip.MustParseAddr("192.0.2.53")
		many      = netip.MustParsePrefix("192.0.2.96/27") // many.metro.test: 24 of them
	)
	extra := []netip.Addr{addrChain, addrShort, addrMoved, addrTCP, resolver}
	var manyHosts strings.Builder
	for a, i := many.Addr(), 0; i < 24; a, i = a.Next(), i+1 {
		extra = append(extra, a)
		fmt.Fprintf(&manyHosts, "%v many.metro.test\n", a)
	}
	for _, a := range extra {
		if _, err := l.B.Run("ip", "addr", "add", a.String()+"/32", "dev", l.BIf); err != nil {
			t.Fatal(err)
		}
		if _, err := l.A.Run("ip", "neigh", "replace", a.String(), "lladdr", lab.MACB.String(), "dev", l.AIf, "nud", "permanent"); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := l.B.Serve(netip.AddrPortFrom(netip.IPv6Unspecified(), 0))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	port := strconv.Itoa(int(srv.Addr.Port()))

	// The zone: records with a TTL of their own in dnsmasq's configuration;
	// the short name and the many-address one in its hosts file, whose
	// records get local-ttl (1 s) and which a SIGHUP re-reads.
	short := func(a netip.Addr) string { return a.String() + " short.metro.test\n" + manyHosts.String() }
	dnsmasq := l.B.StartDnsmasq(t, resolver, 1, short(addrShort),
		"host-record=a.metro.test,"+addrA.String()+",300",
		"host-record=aaaa.metro.test,"+addrAAAA.String()+",300",
		"host-record=end.metro.test,"+addrChain.String()+",300",
		"cname=alias.metro.test,mid.metro.test,300",
		"cname=mid.metro.test,end.metro.test,300",
		"host-record=tcp.metro.test,"+addrTCP.String()+",300")
	udpConf := "nameserver " + resolver.String() + "\n"
	l.A.SetResolvConf(t, udpConf)

	// The check instances, one process each, started before any query so
	// that they see every answer. B's addresses are monitored; the
	// resolver's is not.
	ips := []string{addrA.String(), addrAAAA.String(), addrChain.String(), addrShort.String(), addrMoved.String(), addrTCP.String(), many.String()}
	variants := []struct {
		name, keys string
		series     int // after the six connections
	}{
		{"default (dns_names: true)", "", 6},
		{"dns_names: false", "dns_names: false\n", 6},
		{"tag_dst_port, tag_role", "tag_dst_port: true\ntag_role: true\n", 6},
		{"group_dst_ipv4_prefix: 24", "group_dst_ipv4_prefix: 24\n", 2}, // 192.0.2.0/24 and the AAAA's name
	}
	checks := make([]*probe.Proc, len(variants))
	for i, v := range variants {
		inst := fmt.Sprintf("interface: %s\nips: [%s]\nreverse_dns: false\ntags: [lab:%s]\n%s", l.AIf, strings.Join(ips, ", "), l.Prefix, v.keys)
		checks[i] = startCheckInstance(t, l, inst, "", "", nil)
		if r := runCheck(t, checks[i]); r.Service().Status != "OK" {
			sc := r.Service()
			t.Fatalf("%s: can_capture %s: %s", v.name, sc.Status, sc.Message)
		}
	}

	connect := func(name string, want netip.Prefix) netip.Addr {
		t.Helper()
		r, err := l.A.RequestsByName(name+":"+port, 20, 100, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if !want.Contains(r.Remote.Addr()) {
			t.Fatalf("%s resolved to %v, want %v", name, r.Remote.Addr(), want)
		}
		t.Logf("%s -> %v", name, r.Remote)
		return r.Remote.Addr()
	}
	host := func(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }
	connect("a.metro.test", host(addrA))
	connect("aaaa.metro.test", host(addrAAAA))
	connect("alias.metro.test", host(addrChain))
	connect("short.metro.test", host(addrShort))
	manyAddr := connect("many.metro.test", many)
	// Over TCP: the answer comes in one segment, length-prefixed.
	l.A.SetResolvConf(t, udpConf+"options use-vc\n")
	connect("tcp.metro.test", host(addrTCP))
	l.A.SetResolvConf(t, udpConf)

	// series returns a run's per-host-pair series: their tags but src and
	// the instance's, and the samples each counted.
	series := func(r *probe.Report) map[string]float64 {
		out := map[string]float64{}
		for _, m := range r.Find(rttcheck.MetricRTTSamples) {
			var tags []string
			for _, tag := range m.Tags {
				if !strings.HasPrefix(tag, "src:") && !strings.HasPrefix(tag, "lab:") && !strings.HasPrefix(tag, "iface:") {
					tags = append(tags, tag)
				}
			}
			out[strings.Join(tags, ",")] += m.Value
		}
		return out
	}
	// settle runs a check until its runs together hold want series (the
	// last frames of a connection reach the check within a ring block's
	// retire time), and returns them with the samples each counted.
	settle := func(p *probe.Proc, want int) (map[string]float64, probe.Report) {
		t.Helper()
		all := map[string]float64{}
		var r probe.Report
		for deadline := time.Now().Add(10 * time.Second); ; {
			r = runCheck(t, p)
			for k, v := range series(&r) {
				all[k] += v
			}
			if len(all) >= want || time.Now().After(deadline) {
				return all, r
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	keys := func(m map[string]float64) []string {
		out := make([]string, 0, len(m))
		for k := range m {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	first := make([]map[string]float64, len(variants))
	for i, v := range variants {
		var r probe.Report
		first[i], r = settle(checks[i], v.series)
		names, _ := r.Value(rttcheck.MetricDNSNames)
		malformed, _ := r.Value(rttcheck.MetricDNSMalformed)
		t.Logf("%s: %d series %v; %s %v, %s %v", v.name, len(first[i]), keys(first[i]), rttcheck.MetricDNSNames, names, rttcheck.MetricDNSMalformed, malformed)
		if len(first[i]) != v.series {
			t.Errorf("%s: %d series, want %d", v.name, len(first[i]), v.series)
		}
		if i == 0 && (names < 29 || malformed != 0) {
			t.Errorf("%s: %s %v, %s %v; want at least 29 names (many.metro.test's 24 included), none malformed", v.name, rttcheck.MetricDNSNames, names, rttcheck.MetricDNSMalformed, malformed)
		}
	}
	wantNamed := []string{"dst:a.metro.test", "dst:aaaa.metro.test", "dst:alias.metro.test", "dst:many.metro.test", "dst:short.metro.test", "dst:tcp.metro.test"}
	if got := keys(first[0]); !slices.Equal(got, wantNamed) {
		t.Errorf("default: series %v, want %v (the names asked for)", got, wantNamed)
	}
	var wantIPs []string
	for _, a := range []netip.Addr{addrAAAA, addrA, addrChain, addrShort, addrTCP, manyAddr} {
		wantIPs = append(wantIPs, "dst:"+a.String())
	}
	slices.Sort(wantIPs)
	if got := keys(first[1]); !slices.Equal(got, wantIPs) {
		t.Errorf("dns_names: false: series %v, want %v", got, wantIPs)
	}

	// The short name moves to a new address; after its TTL (and go-metro's
	// floor) the client resolves it again and connects there.
	if err := dnsmasq.SetHosts(short(addrMoved)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(dns.MinTTL + time.Second)
	connect("short.metro.test", host(addrMoved))
	// Without names the new address is a seventh series; with them its
	// samples (one connection's, 20 exchanges) go to dst:short.metro.test,
	// whose first address's connection ended before the previous run.
	if s, _ := settle(checks[1], 7); s["dst:"+addrMoved.String()] == 0 {
		t.Errorf("dns_names: false, after the re-resolve: %v; want dst:%v", s, addrMoved)
	} else {
		t.Logf("%s, after the re-resolve: %v", variants[1].name, s)
	}
	s := map[string]float64{}
	for deadline := time.Now().Add(10 * time.Second); s["dst:short.metro.test"] < 15 && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		r := runCheck(t, checks[0])
		for k, v := range series(&r) {
			s[k] += v
		}
	}
	t.Logf("%s, after the re-resolve: %v", variants[0].name, s)
	if s["dst:short.metro.test"] < 15 || s["dst:"+addrMoved.String()] != 0 || len(s) != 6 {
		t.Errorf("after the re-resolve: %v; want one connection's samples for dst:short.metro.test, no dst:%v", s, addrMoved)
	}
	for _, p := range checks {
		p.Stop()
	}

	// The standalone binary, as a user runs it: `go-metro check` in A
	// while clients connect by name, with each capture backend (built with
	// libpcap, as `make unit` builds it): many.metro.test's answer is
	// longer than the header cut, so neither may cut it.
	bin := lab.BuildBinary(t, "github.com/gometro/go-metro/cmd/go-metro", "pcap")
	for _, backend := range []string{"afpacket", "pcap"} {
		conf := filepath.Join(t.TempDir(), "conf.yaml")
		if err := os.WriteFile(conf, []byte(fmt.Sprintf("init_config:\ninstances:\n  - interface: %s\n    ips: [%s]\n    reverse_dns: false\n    capture_backend: %s\n",
			l.AIf, strings.Join(ips, ", "), backend)), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := l.A.Command(bin, "check", "--config", conf, "--duration", "4s")
		var out, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second) // the capture opens
		connect("alias.metro.test", host(addrChain))
		connect("aaaa.metro.test", host(addrAAAA))
		connect("many.metro.test", many)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("go-metro check (%s): %v\n%s%s", backend, err, stderr.String(), out.String())
		}
		t.Logf("go-metro check, capture_backend: %s:\n%s", backend, out.String())
		for _, name := range []string{"alias.metro.test", "aaaa.metro.test", "many.metro.test"} {
			if !strings.Contains(out.String(), "system.net.tcp.rtt.avg ") || !strings.Contains(out.String(), ",dst:"+name+",") {
				t.Errorf("go-metro check (%s) output has no dst:%s series", backend, name)
			}
		}
	}
}
