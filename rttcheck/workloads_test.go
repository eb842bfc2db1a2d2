package rttcheck

import (
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/gometro/go-metro/capture"
	"github.com/gometro/go-metro/capture/flow"
)

// fakeWorkloads stands for the agent's workload metadata and tagger: each
// workload's tags by cardinality, cumulative as the tagger's are.
type fakeWorkloads struct {
	mu      sync.Mutex
	byAddr  map[netip.Addr]fakeWorkload
	changed chan struct{}
	lookups []string // "addr card"
}

type fakeWorkload struct {
	low, orch, high []string
}

func newFakeWorkloads(w map[string]fakeWorkload) *fakeWorkloads {
	f := &fakeWorkloads{byAddr: map[netip.Addr]fakeWorkload{}, changed: make(chan struct{})}
	for a, wl := range w {
		f.byAddr[netip.MustParseAddr(a)] = wl
	}
	return f
}

func (f *fakeWorkloads) Addrs() ([]netip.Addr, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []netip.Addr
	for a := range f.byAddr {
		out = append(out, a)
	}
	return out, f.changed
}

func (f *fakeWorkloads) Lookup(a netip.Addr, card string) ([]string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookups = append(f.lookups, a.String()+" "+card)
	w, ok := f.byAddr[a]
	if !ok {
		return nil, false
	}
	tags := slices.Clone(w.low)
	switch card {
	case "", "low":
	case "orchestrator":
		tags = append(tags, w.orch...)
	case "high":
		tags = append(append(tags, w.orch...), w.high...)
	case "none":
		tags = nil
	}
	return tags, true
}

// set replaces the workloads and tells the check, as a workloadmeta event.
func (f *fakeWorkloads) set(w map[string]fakeWorkload) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.byAddr = map[netip.Addr]fakeWorkload{}
	for a, wl := range w {
		f.byAddr[netip.MustParseAddr(a)] = wl
	}
	close(f.changed)
	f.changed = make(chan struct{})
}

// Two containers of one image on a Docker bridge and a pod, as the tagger
// tags them (comp/core/tagger/collectors/workloadmeta_extract.go):
// container_name is high cardinality, pod_name orchestrator.
var (
	web1 = fakeWorkload{low: []string{"image_name:nginx", "short_image:nginx", "docker_image:nginx:1.27"}, high: []string{"container_name:web-1", "container_id:aaa"}}
	web2 = fakeWorkload{low: []string{"image_name:nginx", "short_image:nginx", "docker_image:nginx:1.27"}, high: []string{"container_name:web-2", "container_id:bbb"}}
	api  = fakeWorkload{low: []string{"kube_namespace:prod", "kube_deployment:api", "kube_service:api", "kube_replica_set:api-7d9f"}, orch: []string{"pod_name:api-7d9f-x1"}}
)

const (
	hostIP = "10.0.0.1"
	web1IP = "172.17.0.2"
	web2IP = "172.17.0.3"
	apiIP  = "10.244.0.7"
)

var oneSample = est(1, msNS, msNS, msNS, msNS, msNS/2, 1)

// workloadFlows: each container calls the pod, the pod answers on its own
// side, the host calls the pod, and a container calls out.
func workloadFlows() []flow.Summary {
	return []flow.Summary{
		{Local: ap(web1IP + ":40000"), Remote: ap(apiIP + ":8080"), RTT: oneSample, FirstSeen: 1},
		{Local: ap(web2IP + ":40000"), Remote: ap(apiIP + ":8080"), RTT: oneSample, FirstSeen: 2},
		{Local: ap(apiIP + ":8080"), Remote: ap(web1IP + ":40000"), RTT: oneSample, FirstSeen: 3},
		{Local: ap(hostIP + ":40000"), Remote: ap(apiIP + ":8080"), RTT: oneSample, FirstSeen: 4},
		{Local: ap(web1IP + ":40001"), Remote: ap("192.0.2.9:443"), RTT: oneSample, FirstSeen: 5},
	}
}

func newWorkloadCheck(t *testing.T, w Workloads, extra string, flows []flow.Summary) (*Check, *fakeEngine) {
	t.Helper()
	fe := &fakeEngine{snap: capture.Snapshot{Flows: flows}}
	c := New(Options{Workloads: w})
	c.timing = testTiming
	c.hostAddrs = func() ([]netip.Addr, error) { return []netip.Addr{netip.MustParseAddr(hostIP)}, nil }
	c.newEngine = func(cc capture.Config) (engine, error) {
		fe.set(func(f *fakeEngine) { f.cfg = cc })
		return fe, nil
	}
	c.res = &fakeResolver{}
	if err := configureYAML(c, "interface: docker0\nall_remote_hosts: true\nreverse_dns: false\nlocal_ips: [192.168.9.0/24]\n"+extra, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Cancel)
	waitFor(t, "engine", c.engineStarted)
	return c, fe
}

// rttSeries returns the rtt.avg series' tags, each sorted, by src and dst.
func rttSeries(r *recorder) map[string][]string {
	out := map[string][]string{}
	for _, s := range r.find(MetricRTTAvg) {
		tags := slices.Clone(s.tags)
		out[s.tags[0]+" "+s.tags[1]] = tags
		sort.Strings(tags)
	}
	return out
}

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		p, err := ParsePrefix(s)
		if err != nil {
			panic(err)
		}
		out = append(out, p)
	}
	return out
}

// The addresses of containers and pods are local to the engine from its
// start, with local_ips; their series are named and tagged by workload,
// the local end under the agent's tag names, the remote one with dst_.
func TestWorkloadsLocalAndTagged(t *testing.T) {
	w := newFakeWorkloads(map[string]fakeWorkload{web1IP: web1, web2IP: web2, apiIP: api})
	c, fe := newWorkloadCheck(t, w, "tag_cardinality: high\n", workloadFlows())
	var cfg capture.Config
	fe.set(func(f *fakeEngine) { cfg = f.cfg })
	if want := prefixes("192.168.9.0/24", apiIP, web1IP, web2IP); !slices.Equal(cfg.LocalIPs, want) {
		t.Errorf("engine LocalIPs %v, want %v", cfg.LocalIPs, want)
	}
	r := runOnce(t, c)
	got := rttSeries(r)
	want := map[string][]string{
		"src:web-1 dst:api-7d9f-x1": {"container_id:aaa", "container_name:web-1", "docker_image:nginx:1.27", "image_name:nginx", "short_image:nginx",
			"dst:api-7d9f-x1", "dst_kube_deployment:api", "dst_kube_namespace:prod", "dst_kube_replica_set:api-7d9f", "dst_kube_service:api", "dst_pod_name:api-7d9f-x1",
			"iface:docker0", "src:web-1"},
		"src:web-2 dst:api-7d9f-x1": {"container_id:bbb", "container_name:web-2", "docker_image:nginx:1.27", "image_name:nginx", "short_image:nginx",
			"dst:api-7d9f-x1", "dst_kube_deployment:api", "dst_kube_namespace:prod", "dst_kube_replica_set:api-7d9f", "dst_kube_service:api", "dst_pod_name:api-7d9f-x1",
			"iface:docker0", "src:web-2"},
		"src:api-7d9f-x1 dst:web-1": {"dst:web-1", "dst_container_id:aaa", "dst_container_name:web-1", "dst_docker_image:nginx:1.27", "dst_image_name:nginx", "dst_short_image:nginx",
			"iface:docker0", "kube_deployment:api", "kube_namespace:prod", "kube_replica_set:api-7d9f", "kube_service:api", "pod_name:api-7d9f-x1", "src:api-7d9f-x1"},
		"src:10.0.0.1 dst:api-7d9f-x1": {"dst:api-7d9f-x1", "dst_kube_deployment:api", "dst_kube_namespace:prod", "dst_kube_replica_set:api-7d9f", "dst_kube_service:api", "dst_pod_name:api-7d9f-x1",
			"iface:docker0", "src:10.0.0.1"},
		"src:web-1 dst:192.0.2.9": {"container_id:aaa", "container_name:web-1", "docker_image:nginx:1.27", "dst:192.0.2.9", "iface:docker0", "image_name:nginx", "short_image:nginx", "src:web-1"},
	}
	for sd, tags := range want {
		sort.Strings(tags)
		if !slices.Equal(got[sd], tags) {
			t.Errorf("%s: tags\n%v\nwant\n%v", sd, got[sd], tags)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d series, want %d: %v", len(got), len(want), got)
	}
	if inv := c.Inventory(); inv["workloads"] != "3" || inv["tag_cardinality"] != "high" {
		t.Errorf("inventory %v, want workloads 3 and tag_cardinality high", inv)
	}
	// The tagger is asked once per address and role in a run, at the
	// instance's cardinality.
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.lookups) != 5 || !slices.Contains(w.lookups, apiIP+" high") {
		t.Errorf("lookups %v, want 5 at high", w.lookups)
	}
}

// The series count follows the cardinality: at low both containers of an
// image are one end, named by the image, and the pod by its deployment;
// at none the ends keep their addresses and no workload tag, but stay local.
func TestWorkloadCardinality(t *testing.T) {
	for _, tc := range []struct {
		card   string
		series []string
	}{
		{"", []string{"src:10.0.0.1 dst:api", "src:api dst:nginx", "src:nginx dst:192.0.2.9", "src:nginx dst:api"}},
		{"low", []string{"src:10.0.0.1 dst:api", "src:api dst:nginx", "src:nginx dst:192.0.2.9", "src:nginx dst:api"}},
		{"orchestrator", []string{"src:10.0.0.1 dst:api-7d9f-x1", "src:api-7d9f-x1 dst:nginx", "src:nginx dst:192.0.2.9", "src:nginx dst:api-7d9f-x1"}},
		{"high", []string{"src:10.0.0.1 dst:api-7d9f-x1", "src:api-7d9f-x1 dst:web-1", "src:web-1 dst:192.0.2.9", "src:web-1 dst:api-7d9f-x1", "src:web-2 dst:api-7d9f-x1"}},
		{"none", []string{"src:10.0.0.1 dst:10.244.0.7", "src:10.244.0.7 dst:172.17.0.2", "src:172.17.0.2 dst:10.244.0.7", "src:172.17.0.2 dst:192.0.2.9", "src:172.17.0.3 dst:10.244.0.7"}},
	} {
		t.Run("card="+tc.card, func(t *testing.T) {
			w := newFakeWorkloads(map[string]fakeWorkload{web1IP: web1, web2IP: web2, apiIP: api})
			extra := ""
			if tc.card != "" {
				extra = "tag_cardinality: " + tc.card + "\n"
			}
			c, fe := newWorkloadCheck(t, w, extra, workloadFlows())
			r := runOnce(t, c)
			var got []string
			for sd, tags := range rttSeries(r) {
				got = append(got, sd)
				if tc.card == "none" && len(tags) != 3 {
					t.Errorf("%s: workload tags at cardinality none: %v", sd, tags)
				}
			}
			sort.Strings(got)
			if !slices.Equal(got, tc.series) {
				t.Errorf("series %q, want %q", got, tc.series)
			}
			if tc.card == "low" {
				// Both containers' flows to the pod are one series.
				for _, s := range r.find(MetricRTTSamples) {
					if s.tags[0] == "src:nginx" && s.tags[1] == "dst:api" && s.value != 2 {
						t.Errorf("nginx -> api samples %v, want 2 (two flows)", s.value)
					}
				}
			}
			var cfg capture.Config
			fe.set(func(f *fakeEngine) { cfg = f.cfg })
			if len(cfg.LocalIPs) != 4 {
				t.Errorf("engine LocalIPs %v: the workloads are local whatever the cardinality", cfg.LocalIPs)
			}
		})
	}
}

// Containers that start and stop are local from the next notice on, and a
// flow keeps the tags it was first seen with; a new flow takes the new ones.
func TestWorkloadsChangeAndStableTags(t *testing.T) {
	w := newFakeWorkloads(map[string]fakeWorkload{web1IP: web1, apiIP: api})
	flows := workloadFlows()[:1]
	c, fe := newWorkloadCheck(t, w, "tag_cardinality: high\n", flows)
	if got := rttSeries(runOnce(t, c)); got["src:web-1 dst:api-7d9f-x1"] == nil {
		t.Fatalf("series %v", got)
	}
	// web-1 is relabelled, the pod gone, web-2 started: one notice.
	relabelled := web1
	relabelled.high = []string{"container_name:web-1-renamed", "container_id:aaa"}
	w.set(map[string]fakeWorkload{web1IP: relabelled, web2IP: web2})
	waitFor(t, "new local addresses", func() bool {
		var last []netip.Prefix
		fe.set(func(f *fakeEngine) {
			if len(f.local) > 0 {
				last = f.local[len(f.local)-1]
			}
		})
		return slices.Equal(last, prefixes("192.168.9.0/24", web1IP, web2IP))
	})
	fe.set(func(f *fakeEngine) {
		f.snap.Flows = append(f.snap.Flows, flow.Summary{Local: ap(web1IP + ":40002"), Remote: ap(apiIP + ":8080"), RTT: oneSample, FirstSeen: 9})
	})
	got := rttSeries(runOnce(t, c))
	if got["src:web-1 dst:api-7d9f-x1"] == nil {
		t.Errorf("the first flow lost its tags: %v", got)
	}
	// The second flow's remote is no workload now: named by address.
	if tags := got["src:web-1-renamed dst:10.244.0.7"]; !slices.Contains(tags, "container_name:web-1-renamed") || slices.ContainsFunc(tags, func(s string) bool { return strings.HasPrefix(s, "dst_") }) {
		t.Errorf("the new flow's series %v (all %v)", tags, got)
	}
}

// An address of the host is never a workload's (host-network containers
// report it); tags that would read as go-metro's own or as the other end's
// are left out; under max_host_pairs the other bucket keeps its src's tags.
func TestWorkloadTagRules(t *testing.T) {
	w := newFakeWorkloads(map[string]fakeWorkload{
		hostIP: {low: []string{"container_name:hostnet"}},
		web1IP: {low: []string{"short_image:web", "role:frontend", "dst_zone:a", "iface:x"}},
		web2IP: {low: []string{"short_image:db", "port:5432", "role:db"}},
	})
	flows := []flow.Summary{
		{Local: ap(hostIP + ":40000"), Remote: ap(web2IP + ":5432"), RTT: oneSample, FirstSeen: 1},
		{Local: ap(web1IP + ":40000"), Remote: ap(web2IP + ":5432"), RTT: oneSample, FirstSeen: 2},
		{Local: ap(web1IP + ":40001"), Remote: ap("192.0.2.9:443"), RTT: oneSample, FirstSeen: 3},
	}
	c, fe := newWorkloadCheck(t, w, "max_host_pairs: 2\n", flows)
	var cfg capture.Config
	fe.set(func(f *fakeEngine) { cfg = f.cfg })
	if slices.Contains(cfg.LocalIPs, netip.MustParsePrefix(hostIP+"/32")) {
		t.Errorf("the host's address was taken for a workload's: %v", cfg.LocalIPs)
	}
	got := rttSeries(runOnce(t, c))
	want := map[string][]string{
		"src:10.0.0.1 dst:db":   {"dst:db", "dst_role:db", "dst_short_image:db", "iface:docker0", "src:10.0.0.1"},
		"src:web dst:192.0.2.9": {"dst:192.0.2.9", "iface:docker0", "short_image:web", "src:web"},
		// Third in series order, past max_host_pairs: web -> db.
		"src:web dst:other": {"dst:other", "iface:docker0", "short_image:web", "src:web"},
	}
	for sd, tags := range want {
		if !slices.Equal(got[sd], tags) {
			t.Errorf("%s: tags %v, want %v", sd, got[sd], tags)
		}
	}
	if len(got) != len(want) {
		t.Errorf("series %v, want %v", got, want)
	}
}

// Without workloads nothing changes: no lookups, LocalIPs as configured.
func TestNoWorkloads(t *testing.T) {
	c, fe := newWorkloadCheck(t, nil, "", workloadFlows())
	var cfg capture.Config
	fe.set(func(f *fakeEngine) { cfg = f.cfg })
	if !slices.Equal(cfg.LocalIPs, prefixes("192.168.9.0/24")) {
		t.Errorf("LocalIPs %v", cfg.LocalIPs)
	}
	for sd, tags := range rttSeries(runOnce(t, c)) {
		if len(tags) != 3 || strings.Contains(sd, "web") {
			t.Errorf("%s: %v", sd, tags)
		}
	}
	if inv := c.Inventory(); inv["workloads"] != "" || inv["tag_cardinality"] != "" {
		t.Errorf("inventory %v: workload keys without workloads", inv)
	}
}

// tag_cardinality takes the tagger's levels, and its short form orch.
func TestTagCardinalityKey(t *testing.T) {
	const base = "interface: eth0\nall_remote_hosts: true\n"
	for in, want := range map[string]string{"": "", "tag_cardinality: LOW": "low", "tag_cardinality: orch": "orchestrator",
		"tag_cardinality: orchestrator": "orchestrator", "tag_cardinality: high": "high", "tag_cardinality: none": "none"} {
		cfg, err := ParseConfig([]byte(base+in+"\n"), nil, -1)
		if err != nil {
			t.Errorf("%q: %v", in, err)
		} else if cfg.Instance.TagCardinality != want {
			t.Errorf("%q: %q, want %q", in, cfg.Instance.TagCardinality, want)
		}
	}
	for _, bad := range []string{"tag_cardinality: medium", "tag_cardinality: ''", "tag_cardinality: [low]"} {
		if _, err := ParseConfig([]byte(base+bad+"\n"), nil, -1); err == nil || !strings.Contains(err.Error(), "tag_cardinality") {
			t.Errorf("%s: error %v does not name the key", bad, err)
		}
	}
}
