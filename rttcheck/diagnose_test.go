package rttcheck

import (
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/gometro/go-metro/capture"
	"github.com/gometro/go-metro/capture/filter"
	"github.com/gometro/go-metro/capture/flow"
	"github.com/gometro/go-metro/capture/packet"
	"github.com/gometro/go-metro/capture/source"
)

// healthySnapshot is a capture on lo that saw a timed flow to 10.0.0.1.
func healthySnapshot() capture.Snapshot {
	var s capture.Snapshot
	s.Stats.Packets = 100
	s.Stats.Kernel.Received = 100
	s.Stats.SourceOpens = 1
	s.Stats.Flow.Created = 1
	// What the engine installs for the healthy instance's one remote.
	prog, err := filter.Build(packet.LinkTypeEthernet, []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32")}, nil, capture.DefaultSnaplen)
	if err != nil {
		panic(err)
	}
	s.Filter = capture.FilterStatus{Level: filter.Exact, Instructions: len(prog), Detail: fmt.Sprintf("exact (%d instructions)", len(prog))}
	s.LocalIPs = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	s.Flows = []flow.Summary{{Local: ap("127.0.0.1:40000"), Remote: ap("10.0.0.1:80"), RTT: est(5, msNS, msNS, msNS, msNS, msNS/2, 1)}}
	return s
}

// want is the expected result of one diagnosis, by subject, with
// substrings its text and remediation must contain.
type want struct {
	result    DiagnosisResult
	has       []string
	fixHas    string
	fixNotHas string // "": nothing
	subject   string
}

func TestDiagnose(t *testing.T) {
	// 2100 single addresses need more than the kernel's 4096 instructions.
	var many []string
	for i := 0; i < 2100; i++ {
		many = append(many, fmt.Sprintf("10.%d.%d.1", i/250, i%250))
	}
	bigIPs := "[" + strings.Join(many, ", ") + "]"
	oneFilter, err := filter.Build(packet.LinkTypeEthernet, []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32")}, nil, capture.DefaultSnaplen)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		instance string
		runErr   error
		snap     func(*capture.Snapshot)
		res      *fakeResolver
		want     []want // every other subject must pass
	}{
		{name: "healthy", instance: "interface: lo\nips: [10.0.0.1]",
			want: []want{
				{subject: diagFilter, result: DiagnosisPass, has: []string{"attached: " + strconv.Itoa(len(oneFilter)) + " of the kernel's 4096 instructions, for 1 remote prefixes and 0 ports"}},
				{subject: diagTraffic, result: DiagnosisPass, has: []string{"100 packets, 1 TCP flows tracked, 1 of them with RTT samples"}},
				{subject: diagInterface, result: DiagnosisPass, has: []string{"lo is present"}},
			}},
		{name: "no CAP_NET_RAW", instance: "interface: lo\nips: [10.0.0.1]",
			runErr: fmt.Errorf("capture: opening AF_PACKET socket for \"lo\": %w", os.ErrPermission),
			want: []want{
				{subject: diagPermission, result: DiagnosisFail, has: []string{"lacks CAP_NET_RAW"}, fixHas: "setcap cap_net_raw+ep"},
				{subject: diagCapture, result: DiagnosisFail, has: []string{"capture is not running"}, fixHas: "CAP_NET_RAW"},
				{subject: diagFilter, result: DiagnosisPass, has: []string{"to be attached when capture opens"}},
				{subject: diagDrops, result: DiagnosisWarning, has: []string{"capture is not running"}},
				{subject: diagLocal, result: DiagnosisWarning},
				{subject: diagTraffic, result: DiagnosisWarning},
			}},
		{name: "no CAP_SYS_NICE for capture_nice", instance: "interface: lo\nips: [10.0.0.1]\ncapture_nice: -10",
			runErr: fmt.Errorf("capture: setting the reader thread's nice value to -10: %w", fmt.Errorf("%w (%w)", source.ErrNicePermission, os.ErrPermission)),
			want: []want{
				{subject: diagPermission, result: DiagnosisFail, has: []string{"capture_nice -10", "lacks CAP_SYS_NICE"}, fixHas: "remove `capture_nice`"},
				{subject: diagCapture, result: DiagnosisFail, has: []string{"capture is not running"}, fixHas: "CAP_SYS_NICE"},
				{subject: diagFilter, result: DiagnosisPass, has: []string{"to be attached when capture opens"}},
				{subject: diagDrops, result: DiagnosisWarning, has: []string{"capture is not running"}},
				{subject: diagLocal, result: DiagnosisWarning},
				{subject: diagTraffic, result: DiagnosisWarning},
			}},
		{name: "kernel drops, reader at nice -10", instance: "interface: lo\nips: [10.0.0.1]\ncapture_nice: -10",
			snap: func(s *capture.Snapshot) {
				s.Stats.Kernel.Received, s.Stats.Kernel.Dropped, s.Stats.Kernel.RingSize = 990, 10, 32<<20
			},
			want: []want{{subject: diagDrops, result: DiagnosisWarning, has: []string{"dropped 10 of 1000 frames"}, fixNotHas: "capture_nice"}}},
		{name: "interface missing", instance: "interface: gm-nosuch0\nips: [10.0.0.1]",
			runErr: fmt.Errorf("capture: interface %q: %w", "gm-nosuch0", source.ErrNoSuchInterface),
			want: []want{
				{subject: diagInterface, result: DiagnosisFail, has: []string{`no interface "gm-nosuch0"`}, fixHas: "ip link"},
				{subject: diagCapture, result: DiagnosisFail, fixHas: "create the interface"},
				{subject: diagFilter, result: DiagnosisPass, has: []string{"to be attached"}},
				{subject: diagDrops, result: DiagnosisWarning},
				{subject: diagLocal, result: DiagnosisWarning},
				{subject: diagTraffic, result: DiagnosisWarning},
			}},
		// Capture runs with the coarser fallback the engine reports.
		{name: "filter too large", instance: "interface: lo\nips: " + bigIPs,
			snap: func(s *capture.Snapshot) {
				s.Filter = capture.FilterStatus{Level: filter.Aggregated, Instructions: 161, Detail: "aggregated remote prefixes (161 instructions, remote prefixes: 9)"}
			},
			want: []want{
				{subject: diagFilter, result: DiagnosisWarning, has: []string{"attached, coarser than configured: aggregated remote prefixes (161 instructions",
					"2100 remote prefixes and 0 ports do not fit the kernel's limit of 4096"}, fixHas: "wider CIDR"},
				{subject: diagTraffic, result: DiagnosisWarning, has: []string{"no flow to: 10.0.1.1/32, 10.0.2.1/32, ", ", 10.0.10.1/32 and 2089 more"}},
			}},
		// Before capture opens: the program it will fall back to.
		{name: "filter too large, capture not open", instance: "interface: lo\nips: " + bigIPs,
			runErr: fmt.Errorf("capture: opening AF_PACKET socket for \"lo\": %w", os.ErrPermission),
			want: []want{
				{subject: diagFilter, result: DiagnosisWarning, has: []string{"to be attached when capture opens, coarser than configured: aggregated remote prefixes"}, fixHas: "wider CIDR"},
				{subject: diagPermission, result: DiagnosisFail},
				{subject: diagCapture, result: DiagnosisFail},
				{subject: diagDrops, result: DiagnosisWarning},
				{subject: diagLocal, result: DiagnosisWarning},
				{subject: diagTraffic, result: DiagnosisWarning},
			}},
		{name: "sampling", instance: "interface: lo\nips: [10.0.0.1]\nsample: true\nsample_duration: 10\nsample_interval: 20",
			want: []want{{subject: diagCapture, result: DiagnosisPass, has: []string{"in windows of 10s every 20s"}}}},
		{name: "no filter", instance: "interface: lo\nall_remote_hosts: true",
			want: []want{{subject: diagFilter, result: DiagnosisPass, has: []string{"none: every remote and every port"}}}},
		{name: "kernel drops", instance: "interface: lo\nips: [10.0.0.1]\ncapture_buffer_mb: 8",
			snap: func(s *capture.Snapshot) { s.Stats.Kernel.Received, s.Stats.Kernel.Dropped = 990, 10 },
			want: []want{{subject: diagDrops, result: DiagnosisWarning, has: []string{"dropped 10 of 1000 frames (1.00%)"}, fixHas: "now 8 MiB"}}},
		{name: "kernel drops, ring sized by need", instance: "interface: lo\nips: [10.0.0.1]",
			snap: func(s *capture.Snapshot) {
				s.Stats.Kernel.Received, s.Stats.Kernel.Dropped, s.Stats.Kernel.RingSize = 990, 10, 16<<20
			},
			want: []want{{subject: diagDrops, result: DiagnosisWarning, has: []string{"dropped 10 of 1000 frames (1.00%)"}, fixHas: "now sized by need, 16 of at most 32 MiB"}}},
		{name: "kernel drops, reader at the agent's priority", instance: "interface: lo\nips: [10.0.0.1]",
			snap: func(s *capture.Snapshot) { s.Stats.Kernel.Received, s.Stats.Kernel.Dropped = 990, 10 },
			want: []want{{subject: diagDrops, result: DiagnosisWarning, fixHas: "set `capture_nice` (-10, say; needs CAP_SYS_NICE)"}}},
		{name: "no local address", instance: "interface: lo\nips: [10.0.0.1]",
			snap: func(s *capture.Snapshot) { s.LocalIPs = nil },
			want: []want{{subject: diagLocal, result: DiagnosisFail, has: []string{"no local address is known"}, fixHas: "local_ips"}}},
		{name: "mirrored traffic", instance: "interface: lo\nips: [10.0.0.1]",
			snap: func(s *capture.Snapshot) { s.Stats.Flow.Created, s.Stats.Flow.NotLocal, s.Flows = 0, 40, nil },
			want: []want{
				{subject: diagLocal, result: DiagnosisFail, has: []string{"40 TCP packets had neither address"}, fixHas: "local_ips"},
				{subject: diagTraffic, result: DiagnosisWarning, has: []string{"no flow to: 10.0.0.1/32"}},
			}},
		{name: "hosts unresolved", instance: "interface: lo\nhosts: [db1.invalid]",
			snap: func(s *capture.Snapshot) { s.Flows = nil },
			want: []want{
				{subject: diagHosts, result: DiagnosisFail, has: []string{"1 of 1 hosts did not resolve: db1.invalid (no such host)"}, fixHas: "resolv.conf"},
				{subject: diagFilter, result: DiagnosisWarning, has: []string{"none of the configured hosts resolved"}},
				{subject: diagTraffic, result: DiagnosisWarning, has: []string{"no flow to: db1.invalid"}},
			}},
		{name: "hosts resolved, one silent", instance: "interface: lo\nhosts: [web, db]",
			res: &fakeResolver{hosts: map[string][]string{"web": {"10.0.0.1"}, "db": {"10.0.0.9", "10.0.0.10"}}},
			want: []want{
				{subject: diagHosts, result: DiagnosisPass, has: []string{"2 hosts resolved to 3 addresses"}},
				{subject: diagTraffic, result: DiagnosisWarning, has: []string{"no flow to: db"}, fixHas: "tcpdump"},
			}},
		{name: "flows but no sample", instance: "interface: lo\nips: [10.0.0.1]",
			snap: func(s *capture.Snapshot) { s.Flows[0].RTT = est(0, 0, 0, 0, 0, 0, 0) },
			want: []want{{subject: diagTraffic, result: DiagnosisWarning, has: []string{"flows but no RTT sample yet to: 10.0.0.1/32"}}}},
		{name: "no packets", instance: "interface: lo\nips: [10.0.0.1]",
			snap: func(s *capture.Snapshot) { s.Stats.Packets, s.Flows = 0, nil },
			want: []want{{subject: diagTraffic, result: DiagnosisWarning, has: []string{"no packet captured yet"}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fe := &fakeEngine{runErr: tc.runErr, snap: healthySnapshot()}
			if tc.snap != nil {
				tc.snap(&fe.snap)
			}
			c := newTestCheck(t, Options{}, tc.instance, "", fe, tc.res)
			if tc.runErr != nil {
				waitFor(t, "capture error", func() bool { return c.status().err != nil })
			} else {
				waitFor(t, "capture open", func() bool { d := diagnoser{st: c.diagState(0)}; return d.open() })
			}
			got := c.Diagnose()
			subjects := []string{diagPermission, diagInterface, diagCapture, diagFilter, diagDrops, diagLocal, diagHosts, diagTraffic}
			if len(got) != len(subjects) {
				t.Fatalf("%d diagnoses, want %d: %+v", len(got), len(subjects), got)
			}
			iface := c.Config().Instance.Interface
			for i, subj := range subjects {
				g := got[i]
				if g.Name != subj+" on "+iface {
					t.Errorf("diagnosis %d is %q, want %q", i, g.Name, subj+" on "+iface)
				}
				w := want{subject: subj, result: DiagnosisPass}
				for _, x := range tc.want {
					if x.subject == subj {
						w = x
					}
				}
				if g.Result != w.result {
					t.Errorf("%s: %v (%s), want %v", subj, g.Result, g.Diagnosis, w.result)
				}
				for _, s := range w.has {
					if !strings.Contains(g.Diagnosis, s) {
						t.Errorf("%s: %q lacks %q", subj, g.Diagnosis, s)
					}
				}
				if g.Result != DiagnosisPass && g.Remediation == "" {
					t.Errorf("%s: %v without a remediation: %q", subj, g.Result, g.Diagnosis)
				}
				if g.Result == DiagnosisPass && g.Remediation != "" {
					t.Errorf("%s: a pass with a remediation %q", subj, g.Remediation)
				}
				if !strings.Contains(g.Remediation, w.fixHas) {
					t.Errorf("%s: remediation %q lacks %q", subj, g.Remediation, w.fixHas)
				}
				if w.fixNotHas != "" && strings.Contains(g.Remediation, w.fixNotHas) {
					t.Errorf("%s: remediation %q has %q", subj, g.Remediation, w.fixNotHas)
				}
			}
		})
	}
}

func TestDiagnoseReplay(t *testing.T) {
	pcap := t.TempDir() + "/x.pcap"
	if err := os.WriteFile(pcap, []byte("not yet read"), 0o644); err != nil {
		t.Fatal(err)
	}
	fe := &fakeEngine{snap: healthySnapshot()}
	c := newTestCheck(t, Options{}, "interface: file\npcap: "+pcap+"\nall_remote_hosts: true", "", fe, nil)
	waitFor(t, "replay done", func() bool { <-c.CaptureDone(); return true })
	for _, d := range c.Diagnose() {
		if d.Result != DiagnosisPass {
			t.Errorf("%s: %v %q", d.Name, d.Result, d.Diagnosis)
		}
		if !strings.HasSuffix(d.Name, " on "+pcap) {
			t.Errorf("diagnosis %q does not name the file", d.Name)
		}
	}
}

func TestDiagnoseNotConfigured(t *testing.T) {
	got := New(Options{}).Diagnose()
	if len(got) != 1 || got[0].Result != DiagnosisFail || got[0].Remediation == "" {
		t.Errorf("unconfigured check: %+v", got)
	}
}

// TestDiagnoseDuringRuns calls Diagnose while the check runs on schedule,
// as the agent does when `agent diagnose` asks a running agent; the race
// detector (make unit) checks the shared state.
func TestDiagnoseDuringRuns(t *testing.T) {
	fe := &fakeEngine{snap: healthySnapshot()}
	c := newTestCheck(t, Options{}, "interface: lo\nips: [10.0.0.1]", "", fe, nil)
	waitFor(t, "engine", c.engineStarted)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; i < 20; i++ {
			r := &recorder{}
			if _, err := c.Run(r, r); err != nil {
				t.Error(err)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; i < 20; i++ {
			if n := len(c.Diagnose()); n != 8 {
				t.Errorf("%d diagnoses", n)
			}
			_ = c.Inventory()
		}
	}()
	wg.Wait()
}

// TestDiagnoseLeavesSamples: Diagnose lists the flows without taking
// their RTT samples, which the next Run reports; a Run takes them.
func TestDiagnoseLeavesSamples(t *testing.T) {
	fe := &fakeEngine{snap: healthySnapshot()}
	c := newTestCheck(t, Options{}, "interface: lo\nips: [10.0.0.1]", "", fe, nil)
	waitFor(t, "engine", c.engineStarted)
	c.Diagnose()
	runOnce(t, c)
	fe.mu.Lock()
	defer fe.mu.Unlock()
	if want := []bool{false, true}; !reflect.DeepEqual(fe.took, want) {
		t.Errorf("FlowPages took samples %v, want %v (Diagnose, then Run)", fe.took, want)
	}
}

// A panic inside Diagnose (here the engine's Stats) is one failed
// diagnosis, never a crash of the agent's API server.
func TestDiagnoseRecoversPanics(t *testing.T) {
	fe := &fakeEngine{snap: healthySnapshot()}
	c := newTestCheck(t, Options{}, "interface: lo\nips: [10.0.0.1]", "", fe, nil)
	waitFor(t, "engine", c.engineStarted)
	fe.set(func(f *fakeEngine) { f.snapPanic = true })
	got := c.Diagnose()
	if len(got) != 1 || got[0].Result != DiagnosisFail || !strings.Contains(got[0].Diagnosis, "snapshot exploded") || got[0].Remediation == "" {
		t.Errorf("Diagnose after a panic: %+v", got)
	}
}
