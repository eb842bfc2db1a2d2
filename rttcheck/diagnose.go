package rttcheck

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/gometro/go-metro/capture"
	"github.com/gometro/go-metro/capture/filter"
	"github.com/gometro/go-metro/capture/flow"
	"github.com/gometro/go-metro/capture/source"
)

// DiagnosisResult numbers equal the agent's diagnosis.Result.
type DiagnosisResult int

// Diagnosis results, numbered as the agent numbers them.
const (
	DiagnosisPass    DiagnosisResult = 0
	DiagnosisFail    DiagnosisResult = 1
	DiagnosisWarning DiagnosisResult = 2
)

func (r DiagnosisResult) String() string {
	switch r {
	case DiagnosisPass:
		return "PASS"
	case DiagnosisFail:
		return "FAIL"
	case DiagnosisWarning:
		return "WARNING"
	}
	return "UNKNOWN"
}

// Diagnosis is one answer to "why is there no RTT?" for one instance, in
// the shape of the agent's diagnosis.Diagnosis (`agent diagnose`).
type Diagnosis struct {
	Result DiagnosisResult
	// Name is what was checked, with the interface: "capture permission on eth0".
	Name string
	// Diagnosis is what was found, in a sentence with the numbers.
	Diagnosis string
	// Remediation says what to do; set whenever Result is not a pass.
	Remediation string
	// RawError is the underlying error, when there is one.
	RawError string
}

// The subjects of the diagnoses, in the order Diagnose returns them.
const (
	diagPermission = "capture permission"
	diagInterface  = "interface"
	diagCapture    = "capture running"
	diagFilter     = "kernel filter"
	diagDrops      = "kernel drops"
	diagLocal      = "local addresses"
	diagHosts      = "hosts resolved"
	diagTraffic    = "traffic seen"
)

// fixNetRaw is the remediation of a missing CAP_NET_RAW, shared by two diagnoses.
const fixNetRaw = "grant CAP_NET_RAW to the process that runs the check: `setcap cap_net_raw+ep` on the binary " +
	"(/opt/datadog-agent/bin/agent/agent), or AmbientCapabilities=CAP_NET_RAW in its systemd unit, " +
	"or capabilities.add: [NET_RAW] in a container"

// fixSysNice is the remediation when the capture may not raise its readers'
// priority (capture_nice), shared by two diagnoses.
const fixSysNice = "grant CAP_SYS_NICE to the process that runs the check (`setcap cap_net_raw,cap_sys_nice+ep` on the binary, " +
	"AmbientCapabilities in its systemd unit, or capabilities.add: [SYS_NICE] in a container), or remove `capture_nice`"

// diagState is what Diagnose reads of the check: a copy of the status the
// capture owner publishes, with the configuration.
type diagState struct {
	status
	cfg *Config
}

// diagState gives a capture that has neither opened nor failed yet up to
// wait to do so (as the first Run does), then copies the status.
func (c *Check) diagState(wait time.Duration) diagState {
	return diagState{c.await(wait, func(s *status) bool { return s.state > stateOpening }), c.cfg}
}

// Diagnose checks, for this instance, everything RTT depends on: the
// permission to capture, the interface, the capture itself, the kernel
// filter against the kernel's limit, kernel drops, the local addresses
// that tell direction, host resolution, and traffic for the monitored
// remotes. Every result that is not a pass carries a remediation.
//
// It is safe to call at any time after Configure, concurrently with Run
// (the agent serves `agent diagnose` from another goroutine while the check
// runs on schedule), and right after Configure, before any Run: it then
// gives a capture that has not opened yet a moment to open or fail, as the
// first Run does. It changes no state that Run reports.
func (c *Check) Diagnose() (out []Diagnosis) {
	// The agent calls this from its API server: a bug here must not take
	// the agent down.
	defer func() {
		if r := recover(); r != nil {
			c.log.Errorf("go-metro: diagnose panicked: %v\n%s", r, debug.Stack())
			out = []Diagnosis{{Result: DiagnosisFail, Name: "go-metro diagnosis",
				Diagnosis:   fmt.Sprintf("the diagnosis itself failed: %v", r),
				Remediation: "report this error (with the agent log) to go-metro"}}
		}
	}()
	st := c.diagState(firstOpenWait)
	if st.state == stateNew || st.state == stateCancelled {
		return []Diagnosis{{Result: DiagnosisFail, Name: "go-metro instance",
			Diagnosis:   "the instance is not running (not configured, or unscheduled)",
			Remediation: "check `agent status` for a loading error of go-metro and fix conf.yaml"}}
	}

	var snap *capture.Snapshot
	var snapErr error
	if st.eng != nil {
		ctx, cancel := context.WithTimeout(context.Background(), snapshotTimeout)
		snap, snapErr = st.eng.Stats(ctx) // the flows a page at a time (traffic)
		cancel()
	}
	d := diagnoser{st: st, in: &st.cfg.Instance, ini: &st.cfg.Init, snap: snap, snapErr: snapErr}
	out = []Diagnosis{
		d.permission(),
		d.iface(),
		d.capture(),
		d.filter(),
		d.drops(),
		d.local(),
		d.hosts(),
		d.traffic(),
	}
	where := st.cfg.Instance.Interface
	if where == FileInterface {
		where = st.cfg.Instance.Pcap
	}
	for i := range out {
		out[i].Name += " on " + where
	}
	return out
}

type diagnoser struct {
	st      diagState
	in      *InstanceConfig
	ini     *InitConfig
	snap    *capture.Snapshot // nil: no engine yet, or snapErr
	snapErr error
}

func (d *diagnoser) replay() bool { return d.in.Interface == FileInterface }

// open reports whether the capture source is open now.
func (d *diagnoser) open() bool {
	if d.st.eng == nil || d.st.err != nil {
		return false
	}
	select {
	case <-d.st.eng.Opened():
		return true
	default:
		return false
	}
}

func pass(name, format string, args ...any) Diagnosis {
	return Diagnosis{Result: DiagnosisPass, Name: name, Diagnosis: fmt.Sprintf(format, args...)}
}

func problem(r DiagnosisResult, name, fix string, err error, format string, args ...any) Diagnosis {
	dg := Diagnosis{Result: r, Name: name, Diagnosis: fmt.Sprintf(format, args...), Remediation: fix}
	if err != nil {
		dg.RawError = err.Error()
	}
	return dg
}

func (d *diagnoser) permission() Diagnosis {
	if d.replay() {
		return pass(diagPermission, "not needed: replaying a file")
	}
	if errors.Is(d.st.err, source.ErrNicePermission) {
		// Checked first: the error wraps EPERM too.
		return problem(DiagnosisFail, diagPermission, fixSysNice, d.st.err,
			"capture_nice %d raises the capture readers' priority, which the process (uid %d) may not do: it lacks CAP_SYS_NICE", d.in.Nice, os.Getuid())
	}
	if errors.Is(d.st.err, os.ErrPermission) {
		return problem(DiagnosisFail, diagPermission, fixNetRaw, d.st.err,
			"the capture socket on %s cannot be opened: the process (uid %d) lacks CAP_NET_RAW", d.in.Interface, os.Getuid())
	}
	if d.open() {
		return pass(diagPermission, "the capture socket is open (CAP_NET_RAW effective)")
	}
	// Not open yet (or failed for another reason): tell from the process's
	// capabilities whether it could open one.
	has, err := effectiveCapability(capNetRaw)
	switch {
	case err != nil:
		return problem(DiagnosisWarning, diagPermission, fixNetRaw, err,
			"cannot read the process's capabilities, and capture is not open yet")
	case !has:
		return problem(DiagnosisFail, diagPermission, fixNetRaw, nil,
			"the process (uid %d) lacks CAP_NET_RAW, which capture needs", os.Getuid())
	}
	return pass(diagPermission, "CAP_NET_RAW is effective")
}

func (d *diagnoser) iface() Diagnosis {
	if d.replay() {
		if _, err := os.Stat(d.in.Pcap); err != nil {
			return problem(DiagnosisFail, diagInterface, "fix `pcap` in conf.yaml: it must name a readable pcap or pcapng file", err,
				"the replay file cannot be read")
		}
		return pass(diagInterface, "replay file %s is present", d.in.Pcap)
	}
	if d.in.Interface == AnyInterface {
		return pass(diagInterface, "capturing on every interface (any)")
	}
	ifi, err := net.InterfaceByName(d.in.Interface)
	if err != nil {
		return problem(DiagnosisFail, diagInterface,
			"set `interface` in conf.yaml to one listed by `ip link` in the agent's network namespace "+
				"(in a container, run the agent with the host network)", err,
			"no interface %q in the agent's network namespace", d.in.Interface)
	}
	if ifi.Flags&net.FlagUp == 0 || (d.snap != nil && d.snap.LinkDown) {
		return problem(DiagnosisFail, diagInterface, fmt.Sprintf("bring it up (`ip link set %s up`); capture resumes by itself", ifi.Name), nil,
			"%s is down: no packets until it is up", ifi.Name)
	}
	if ifi.Flags&net.FlagRunning == 0 {
		return problem(DiagnosisWarning, diagInterface, "check the cable, the peer or the virtual link of "+ifi.Name, nil,
			"%s is up but has no carrier (not running): no packets flow", ifi.Name)
	}
	return pass(diagInterface, "%s is present (index %d) and up", ifi.Name, ifi.Index)
}

func (d *diagnoser) capture() Diagnosis {
	if d.st.panicErr != nil {
		return problem(DiagnosisFail, diagCapture, "restart the agent and report the error (with the agent log) to go-metro",
			d.st.panicErr, "an internal error stopped part of the check")
	}
	if err := d.st.err; err != nil {
		fix := "see the error; go-metro retries in the background (1 s doubling to 30 s) and recovers by itself once it is fixed"
		switch {
		case errors.Is(err, source.ErrNicePermission):
			fix = fixSysNice
		case errors.Is(err, os.ErrPermission):
			fix = fixNetRaw
		case errors.Is(err, source.ErrNoSuchInterface), errors.Is(err, source.ErrInterfaceGone):
			fix = "create the interface or fix `interface` in conf.yaml; capture restarts by itself when it exists"
		case errors.Is(err, source.ErrUnsupportedBackend):
			fix = "set `capture_backend: afpacket`, or use a go-metro built with -tags pcap"
		}
		what := "capture is not running"
		if d.replay() {
			what = "the replay failed"
		}
		return problem(DiagnosisFail, diagCapture, fix, err, "%s: %v", what, err)
	}
	if d.replay() {
		if d.snap != nil {
			return pass(diagCapture, "replay read %d packets", d.snap.Stats.Packets)
		}
		return problem(DiagnosisWarning, diagCapture, "wait for the replay to open the file; check the agent log", d.snapErr, "the replay has not started")
	}
	if !d.open() {
		return problem(DiagnosisWarning, diagCapture, "wait a few seconds and run the diagnosis again; if it persists, see the agent log",
			d.snapErr, "capture has not opened yet")
	}
	opens := uint64(0)
	if d.snap != nil {
		opens = d.snap.Stats.SourceOpens
	}
	if d.in.Sample {
		return pass(diagCapture, "capturing with the %s backend in windows of %s every %s (capture opened %d time(s))",
			backendName(d.in), d.in.SampleDuration, d.in.SampleInterval, opens)
	}
	return pass(diagCapture, "capturing with the %s backend (capture opened %d time(s))", backendName(d.in), opens)
}

// backendName is the capture backend as configured, named.
func backendName(in *InstanceConfig) string {
	switch {
	case in.Interface == FileInterface:
		return "file"
	case in.Backend == "":
		return "afpacket"
	}
	return in.Backend
}

// someOf lists the first few of items and counts the rest: an instance may
// list thousands of remotes, and a diagnosis is read by a person.
func someOf(items []string) string {
	const most = 10
	if len(items) <= most {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:most], ", "), len(items)-most)
}

func (d *diagnoser) filter() Diagnosis {
	if d.replay() {
		return pass(diagFilter, "not used: a replay filters in user space")
	}
	remotes, ports := d.st.remotes, d.in.Ports
	if len(remotes) == 1 && remotes[0] == noMatch {
		return problem(DiagnosisWarning, diagFilter, "see the hosts diagnosis: the filter opens up as soon as a host resolves", nil,
			"none of the configured hosts resolved yet: the kernel filter matches nothing")
	}
	if len(remotes) == 0 && len(ports) == 0 {
		return pass(diagFilter, "none: every remote and every port is monitored, so every frame on the interface reaches user space")
	}
	// The installed program when capture runs (the kernel may have refused
	// a finer one), else the one capture will install.
	state, level, n, detail := "attached", filter.Exact, 0, ""
	if d.open() && d.snap != nil && d.snap.Filter.Instructions > 0 {
		level, n, detail = d.snap.Filter.Level, d.snap.Filter.Instructions, d.snap.Filter.Detail
	} else {
		prog, err := plannedFilter(d.in, remotes, d.ini.Snaplen)
		if err != nil {
			return problem(DiagnosisFail, diagFilter, "list fewer `ips`/`hosts` or `ports`", err, "no kernel filter can be built")
		}
		state, level, n, detail = "to be attached when capture opens", prog.Level, len(prog.Instructions), prog.Describe()
	}
	if level != filter.Exact {
		return problem(DiagnosisWarning, diagFilter,
			"merge `ips` into wider CIDR prefixes (a /24 costs what one address costs) or list fewer `ports`, so the exact filter fits", nil,
			"%s, coarser than configured: %s; %d remote prefixes and %d ports do not fit the kernel's limit of %d instructions, so more frames reach user space (monitoring stays exact)",
			state, detail, len(remotes), len(ports), filter.MaxInstructions)
	}
	return pass(diagFilter, "%s: %d of the kernel's %d instructions, for %d remote prefixes and %d ports",
		state, n, filter.MaxInstructions, len(remotes), len(ports))
}

// idle is the diagnosis of a subject that needs a running capture when
// there is none (nor a replay's result): nothing to judge yet.
func (d *diagnoser) idle(subject string) (Diagnosis, bool) {
	if d.snap != nil && (d.replay() || d.open()) {
		return Diagnosis{}, false
	}
	return problem(DiagnosisWarning, subject, "see the capture diagnosis: this is known once capture runs", d.snapErr,
		"capture is not running: nothing to judge yet"), true
}

func (d *diagnoser) drops() Diagnosis {
	if d.replay() {
		return pass(diagDrops, "not applicable to a replay")
	}
	if dg, ok := d.idle(diagDrops); ok {
		return dg
	}
	k := d.snap.Stats.Kernel
	if k.Dropped == 0 {
		return pass(diagDrops, "none: the kernel handed over all %d frames since capture started", k.Received)
	}
	fix := fmt.Sprintf("raise `capture_buffer_mb` (now %d MiB)", d.in.BufferMB)
	if d.in.BufferMB == 0 {
		// Sized by need, the ring grows after a drop: drops at a sudden
		// burst, before it grew, are what a fixed ring avoids.
		fix = fmt.Sprintf("set `capture_buffer_mb` to fix the ring at a size that holds the bursts (now sized by need, %d of at most %d MiB)",
			k.RingSize>>20, source.DefaultRingSize>>20)
	}
	if d.in.Nice >= 0 {
		// On busy CPUs the reader waits for its turn longer than a ring
		// holds; priority shortens the wait without a larger idle ring.
		fix += ", set `capture_nice` (-10, say; needs CAP_SYS_NICE) so the reader runs before the host's other work"
	}
	return problem(DiagnosisWarning, diagDrops,
		fix+", or narrow `ips`/`ports` so the kernel filter drops more before the ring", nil,
		"the kernel dropped %d of %d frames (%.2f%%) since capture started because the ring was full: RTT samples were missed",
		k.Dropped, k.Received+k.Dropped, 100*float64(k.Dropped)/float64(k.Received+k.Dropped))
}

func (d *diagnoser) local() Diagnosis {
	if dg, ok := d.idle(diagLocal); ok {
		return dg
	}
	fix := "give the interface an address, or list the monitored hosts' own addresses under `local_ips` " +
		"(mirror/SPAN ports, replays)"
	if len(d.snap.LocalIPs) == 0 {
		return problem(DiagnosisFail, diagLocal, fix, nil,
			"no local address is known, so no packet can be told outgoing from incoming and nothing is timed")
	}
	names := make([]string, 0, min(len(d.snap.LocalIPs), 4))
	for _, a := range d.snap.LocalIPs[:min(len(d.snap.LocalIPs), 4)] {
		names = append(names, a.String())
	}
	list := strings.Join(names, ", ")
	if len(d.snap.LocalIPs) > 4 {
		list += ", ..."
	}
	fl := d.snap.Stats.Flow
	if fl.NotLocal > 0 && fl.Created == 0 {
		return problem(DiagnosisFail, diagLocal, fix, nil,
			"%d TCP packets had neither address among the %d local ones (%s): this looks like mirrored traffic",
			fl.NotLocal, len(d.snap.LocalIPs), list)
	}
	how := "from the interface"
	switch {
	case d.snap.InferredLocal:
		how = "inferred from the capture"
	case len(d.in.LocalIPs) > 0:
		how = "from the interface and local_ips"
	}
	if n := len(d.st.workloads); n > 0 {
		how += fmt.Sprintf(", %d of them containers' and pods'", n)
	}
	return pass(diagLocal, "%d local addresses %s: %s", len(d.snap.LocalIPs), how, list)
}

func (d *diagnoser) hosts() Diagnosis {
	if len(d.in.Hosts) == 0 {
		return pass(diagHosts, "no hosts configured")
	}
	if len(d.st.unresolved) > 0 {
		return problem(DiagnosisFail, diagHosts,
			"check the names and the resolver the agent uses (/etc/resolv.conf in its namespace), or list addresses under `ips`", nil,
			"%d of %d hosts did not resolve: %s", len(d.st.unresolved), len(d.in.Hosts), strings.Join(d.st.unresolved, ", "))
	}
	return pass(diagHosts, "%d hosts resolved to %d addresses", len(d.in.Hosts), len(d.st.hostAddr))
}

// target is one monitored remote as configured: an ips entry or a host.
type target struct {
	name  string
	flows int
	timed int // flows with at least one RTT sample
}

func (t *target) count(f *flow.Summary) {
	t.flows++
	if f.RTT.Samples > 0 {
		t.timed++
	}
}

func (d *diagnoser) traffic() Diagnosis {
	if dg, ok := d.idle(diagTraffic); ok {
		return dg
	}
	s := d.snap
	if s.Stats.Packets == 0 {
		return problem(DiagnosisWarning, diagTraffic,
			"check that this interface carries the traffic (`tcpdump -ni IF tcp`), and that `ips`/`hosts`/`ports` name it", nil,
			"no packet captured yet")
	}
	// Targets in the order of the configuration; a flow counts for every
	// ips prefix that holds its remote and for the host it resolved from
	// (looked up once per flow: there may be thousands of each).
	targets := make([]*target, 0, len(d.in.IPs)+len(d.in.Hosts))
	for _, p := range d.in.IPs {
		targets = append(targets, &target{name: p.String()})
	}
	hosts := map[string][]*target{}
	for _, h := range d.in.Hosts {
		t := &target{name: h}
		targets = append(targets, t)
		hosts[h] = append(hosts[h], t)
	}
	all := target{}
	count := func(flows []flow.Summary, _ map[netip.Addr]string) {
		for i := range flows {
			f := &flows[i]
			a := f.Remote.Addr().Unmap()
			all.count(f)
			for j, p := range d.in.IPs {
				if p.Contains(a) {
					targets[j].count(f)
				}
			}
			if h, ok := d.st.hostAddr[a]; ok {
				for _, t := range hosts[h] {
					t.count(f)
				}
			}
		}
	}
	// Listed as a Run lists them, leaving the RTT samples to the Run.
	if err := d.st.eng.FlowPages(context.Background(), make([]flow.Summary, pageFor(s.Stats.Flow.Flows)), false, snapshotTimeout, count); err != nil {
		return problem(DiagnosisWarning, diagTraffic, "run the diagnosis again", err,
			"%d packets, %d TCP flows tracked; listing them failed", s.Stats.Packets, s.Stats.Flow.Flows)
	}
	flows, timed := all.flows, all.timed
	var unseen, untimed []string
	for _, t := range targets {
		switch {
		case t.flows == 0:
			unseen = append(unseen, t.name)
		case t.timed == 0:
			untimed = append(untimed, t.name)
		}
	}
	summary := fmt.Sprintf("%d packets, %d TCP flows tracked, %d of them with RTT samples", s.Stats.Packets, flows, timed)
	switch {
	case len(unseen) > 0:
		return problem(DiagnosisWarning, diagTraffic,
			"confirm that traffic to them crosses this interface (`tcpdump -ni IF host ADDR`), and for hosts that they resolve to the addresses in use; "+
				"flows idle longer than idle_ttl are forgotten", nil,
			"%s; no flow to: %s", summary, someOf(unseen))
	case len(untimed) > 0:
		return problem(DiagnosisWarning, diagTraffic,
			"RTT needs data we send acknowledged by them, a handshake, or TCP timestamps on flows that only receive", nil,
			"%s; flows but no RTT sample yet to: %s", summary, someOf(untimed))
	case flows == 0:
		return problem(DiagnosisWarning, diagTraffic,
			"check that the monitored remotes exchange TCP traffic over this interface", nil, "%s", summary)
	}
	return pass(diagTraffic, "%s", summary)
}

// capNetRaw is CAP_NET_RAW's bit (linux/capability.h).
const capNetRaw = 13

// effectiveCapability reports whether capability bit cap is in the
// process's effective set, from /proc/self/status (portable to read; on
// systems without it the error says so).
func effectiveCapability(cap uint) (bool, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return false, fmt.Errorf("parsing CapEff %q: %w", v, err)
			}
			return mask&(1<<cap) != 0, nil
		}
	}
	if err := sc.Err(); err != nil {
		return false, err
	}
	return false, errors.New("no CapEff line in /proc/self/status")
}
