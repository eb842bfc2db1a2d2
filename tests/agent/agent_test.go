// Package agent drives a real Datadog Agent binary built with go-metro
// (`make agent`, bin/agent) in the namespace lab of tests/lab: the agent
// runs in A, captures A's veth, and its output is compared with the
// kernel's own view of the same connections through the delay line.
//
//   - `agent check go-metro --json`: the host pair's rtt.avg is within
//     max(2 %, 0.3 ms) of the kernel's srtt; can_capture OK; as uid 65534
//     without capabilities, CRITICAL naming CAP_NET_RAW, and `agent
//     diagnose --local` fails the permission with its remediation;
//   - `agent check go-metro --json` while A resolves a name through dnsmasq
//     in B (its namespace's resolv.conf) and connects: the series carry
//     the name asked for (dns_test.go);
//   - `agent run`, then `agent status` (instance [OK], its samples, the
//     inventory metadata, go-metro's version), `agent diagnose` against the
//     running agent (all eight diagnoses pass), the series reaching a fake
//     intake, and SIGTERM: the agent exits within 5 s.
//
// The binary is $GOMETRO_AGENT, else bin/agent at the repository root. It
// needs root (the lab); without the binary or root the tests skip, unless
// CI is set: then they fail, so CI cannot go green by skipping them.
package agent

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gometro/go-metro/capture"
	"github.com/gometro/go-metro/internal/syncbuf"
	"github.com/gometro/go-metro/rttcheck"
	"github.com/gometro/go-metro/tests/internal/delayline"
	"github.com/gometro/go-metro/tests/lab"
)

// The design's accuracy bar, as in tests/accuracy_test.go.
const (
	srttRelTol = 0.02
	srttAbsTol = 300 * time.Microsecond
)

// oneWay is the delay line's delay each way: a 50 ms path RTT, one of
// the design's accuracy points (10, 50, 150 ms).
const oneWay = 25 * time.Millisecond

// agentBinary returns the agent to test, skipping or (in CI) failing when
// there is none.
func agentBinary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("GOMETRO_AGENT")
	if bin == "" {
		bin = filepath.Join("..", "..", "bin", "agent")
	}
	abs, err := filepath.Abs(bin)
	if err == nil {
		if _, err = os.Stat(abs); err == nil {
			return abs
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("no agent binary (%v) and CI is set: run `make agent` first (make test does)", err)
	}
	t.Skipf("no agent binary (%v): run `make agent` (needs a datadog-agent checkout) or set GOMETRO_AGENT", err)
	return ""
}

// agentDir is one agent's configuration: datadog.yaml and go-metro's
// conf.yaml, in a directory readable by everyone (the unprivileged runs).
type agentDir struct {
	dir, yaml string
}

// newAgentDir writes a configuration that keeps the agent offline: the
// intake, metrics and processes alike, is intakeURL (a fake in the lab, or
// nothing), remote config and
// cloud metadata probes are off, and everything it writes stays in dir.
// Its ports (cmd_port 5001, expvar 5000, DogStatsD 8125) are those of the
// lab's namespace A, where each agent runs: no collision with another lab
// or an agent on the host.
func newAgentDir(t *testing.T, instance, intakeURL string) agentDir {
	t.Helper()
	dir := publicDir(t)
	confd := filepath.Join(dir, "conf.d", "go-metro.d")
	run := filepath.Join(dir, "run")
	for _, d := range []string{confd, run} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// run_path (and the auth token beside datadog.yaml) must be writable
	// by the unprivileged user too.
	for _, d := range []string{dir, run} {
		if err := os.Chmod(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	yaml := fmt.Sprintf(`api_key: 0123456789abcdef0123456789abcdef
hostname: gometro-lab
confd_path: %s
run_path: %s
log_file: %s
dd_url: %[4]s
process_config:
  process_dd_url: %[4]s
remote_configuration:
  enabled: false
cloud_provider_metadata: []
`, filepath.Join(dir, "conf.d"), run, filepath.Join(run, "agent.log"), intakeURL)
	path := filepath.Join(dir, "datadog.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := "init_config:\ninstances:\n  - " + strings.ReplaceAll(strings.TrimSpace(instance), "\n", "\n    ") + "\n"
	if err := os.WriteFile(filepath.Join(confd, "conf.yaml"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return agentDir{dir: dir, yaml: path}
}

// instance monitors B's IPv4 address on A's veth.
func instance(l *lab.Lab, extra string) string {
	return fmt.Sprintf("interface: %s\nips: [%s]\nreverse_dns: false\n%s", l.AIf, lab.AddrB4, extra)
}

// checkOutput is what `agent check --json` prints: one element per instance.
type checkOutput []struct {
	Aggregator struct {
		Metrics []struct {
			Metric string      `json:"metric"`
			Points [][]float64 `json:"points"`
			Tags   []string    `json:"tags"`
		} `json:"metrics"`
		ServiceChecks []struct {
			Check   string   `json:"check"`
			Status  int      `json:"status"`
			Message string   `json:"message"`
			Tags    []string `json:"tags"`
		} `json:"service_checks"`
	} `json:"aggregator"`
	Runner struct {
		CheckVersion string
		TotalRuns    int
		LastError    string
	} `json:"runner"`
}

func parseCheckOutput(t *testing.T, out []byte) checkOutput {
	t.Helper()
	// The JSON array is the output's last part; anything before it is log.
	i := bytes.Index(out, []byte("[\n"))
	var co checkOutput
	if i < 0 || json.Unmarshal(out[i:], &co) != nil || len(co) != 1 {
		t.Fatalf("agent check --json: no single-instance JSON in its output:\n%s", out)
	}
	return co
}

// lastValue is the last point of the metric's series carrying all tags.
func (co checkOutput) lastValue(metric string, tags ...string) (v, ts float64, ok bool) {
	for _, m := range co[0].Aggregator.Metrics {
		if m.Metric == metric && hasTags(m.Tags, tags) && len(m.Points) > 0 {
			p := m.Points[len(m.Points)-1]
			v, ts, ok = p[1], p[0], true
		}
	}
	return v, ts, ok
}

func hasTags(have, want []string) bool {
	for _, w := range want {
		found := false
		for _, h := range have {
			found = found || h == w
		}
		if !found {
			return false
		}
	}
	return true
}

// waitCaptureOpen waits until a packet socket in A is bound and running:
// the agent's capture (nothing else in A opens one). A socket is listed
// from its creation on, but receives nothing until it is bound, after its
// ring and filter are set up (tens of milliseconds): traffic started
// before that would be missed.
func waitCaptureOpen(t *testing.T, l *lab.Lab, done <-chan struct{}) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := l.A.Run("cat", "/proc/net/packet")
		if err == nil && packetSocketRunning(out) {
			return
		}
		select {
		case <-done:
			t.Fatal("the agent exited before its capture opened")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no capture socket in A within 30 s (%v): %s", err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// packetSocketRunning reports whether /proc/net/packet lists a socket whose
// R (running: bound, its protocol hooked) column is 1.
func packetSocketRunning(table string) bool {
	lines := strings.Split(strings.TrimSpace(table), "\n")
	col := slices.Index(strings.Fields(lines[0]), "R")
	for _, line := range lines[1:] {
		if f := strings.Fields(line); col >= 0 && col < len(f) && f[col] == "1" {
			return true
		}
	}
	return false
}

// startIn starts cmd in host h, its output collected in out.
func startIn(t *testing.T, h *lab.Host, cmd *exec.Cmd, out *syncbuf.Buffer) <-chan struct{} {
	t.Helper()
	return startWith(t, h.Start, cmd, out)
}

// startWith starts cmd with start (in a namespace, or where the test runs:
// (*exec.Cmd).Start), its output into out, and returns a channel closed
// when it has exited; the test's cleanup kills it if it still runs.
func startWith(t *testing.T, start func(*exec.Cmd) error, cmd *exec.Cmd, out *syncbuf.Buffer) <-chan struct{} {
	t.Helper()
	cmd.Stdout, cmd.Stderr = out, out
	if err := start(cmd); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return done
}

func newLab(t *testing.T) (*lab.Lab, *lab.Server) {
	t.Helper()
	d := delayline.Dir{Delay: oneWay}
	l := lab.New(t, lab.Config{Line: delayline.Config{AtoB: d, BtoA: d}})
	srv, err := l.B.Serve(netip.AddrPortFrom(lab.AddrB4, 0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return l, srv
}

// TestAgentCheck runs `agent check go-metro --json` twice 6 s apart while
// one connection makes request/response exchanges, then holds it quiet and
// open: the second run reports the flow's SRTT, which must match the
// kernel's srtt read at the same quiet moment.
func TestAgentCheck(t *testing.T) {
	bin := agentBinary(t)
	l, srv := newLab(t)
	cfg := newAgentDir(t, instance(l, ""), "http://127.0.0.1:9")

	var out syncbuf.Buffer
	cmd := exec.Command(bin, "check", "go-metro", "-c", cfg.yaml, "--json", "-t", "2", "--pause", "6000")
	done := startIn(t, l.A, cmd, &out)
	waitCaptureOpen(t, l, done)

	// One connection, quiet and still open when the second run reads it.
	var final lab.TCPInfo
	quiet := make(chan struct{})
	c := &lab.Client{Host: l.A, BeforeClose: func(r *lab.ConnRecord) {
		final = r.Final
		close(quiet)
		<-done
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	werr := make(chan error, 1)
	go func() { _, err := c.RequestResponse(ctx, srv.Addr, 30, 300, 4000, 10*time.Millisecond); werr <- err }()
	select {
	case <-quiet:
	case err := <-werr:
		t.Fatalf("workload: %v", err)
	case <-done:
		t.Fatalf("agent check ended before the workload did:\n%s", out.Bytes())
	}
	quietAt := time.Now()
	<-done
	if err := <-werr; err != nil {
		t.Errorf("workload: %v", err)
	}
	if cmd.ProcessState.ExitCode() != 0 {
		t.Fatalf("agent check exited with %v:\n%s", cmd.ProcessState, out.Bytes())
	}
	co := parseCheckOutput(t, out.Bytes())
	pair := []string{"src:" + lab.AddrA4.String(), "dst:" + lab.AddrB4.String(), "iface:" + l.AIf}
	avg, ts, ok := co.lastValue(rttcheck.MetricRTTAvg, pair...)
	if !ok {
		t.Fatalf("no %s for %v in:\n%s", rttcheck.MetricRTTAvg, pair, out.Bytes())
	}
	if ts < float64(quietAt.Unix()) {
		t.Errorf("the last run (at %v) came before the connection went quiet (%v): not the same moment", ts, quietAt.Unix())
	}
	for _, m := range co[0].Aggregator.Metrics {
		if p := m.Points; len(p) > 0 {
			t.Logf("agent check --json: %-28s %10.4f %v", m.Metric, p[len(p)-1][1], m.Tags)
		}
	}
	got := time.Duration(avg * float64(time.Millisecond))
	tol := max(time.Duration(srttRelTol*float64(final.RTT)), srttAbsTol)
	t.Logf("agent check: %s %v = %v; kernel srtt %v (%+v, tolerance %v); runs %d, version %q",
		rttcheck.MetricRTTAvg, pair, got, final.RTT, got-final.RTT, tol, co[0].Runner.TotalRuns, co[0].Runner.CheckVersion)
	if d := got - final.RTT; math.Abs(float64(d)) > float64(tol) {
		t.Errorf("rtt.avg %v vs kernel srtt %v: off by %v, tolerance %v", got, final.RTT, d, tol)
	}
	if final.RTT < 2*oneWay {
		t.Errorf("kernel srtt %v below the path's %v: the delay line is not in the path", final.RTT, 2*oneWay)
	}
	// Issue 11's metrics through the real sender: the connect RTT of the
	// one connection is the path's, like srtt. (The distribution reaches
	// the aggregator as a sketch, which `agent check` prints only once its
	// 10 s bucket has closed; check/'s mocksender test covers it.)
	if hs, _, ok := co.lastValue(rttcheck.MetricRTTHandshake, pair...); !ok {
		t.Errorf("no %s for %v", rttcheck.MetricRTTHandshake, pair)
	} else if d := time.Duration(hs*float64(time.Millisecond)) - final.RTT; math.Abs(float64(d)) > float64(tol) {
		t.Errorf("%s %.3f ms vs kernel srtt %v: off by %v, tolerance %v", rttcheck.MetricRTTHandshake, hs, final.RTT, d, tol)
	}
	sc := co[0].Aggregator.ServiceChecks
	if len(sc) == 0 || sc[len(sc)-1].Check != rttcheck.ServiceCheckName || sc[len(sc)-1].Status != 0 {
		t.Errorf("service checks %+v, want %s OK", sc, rttcheck.ServiceCheckName)
	}
	if co[0].Runner.CheckVersion != rttcheck.Version || co[0].Runner.TotalRuns != 2 || co[0].Runner.LastError != "" {
		t.Errorf("runner: %+v, want version %s, 2 runs, no error", co[0].Runner, rttcheck.Version)
	}
}

// TestAgentUnprivileged runs the agent as uid 65534 without capabilities:
// `agent check` reports CRITICAL naming CAP_NET_RAW and no RTT, and `agent
// diagnose --local` fails the permission with the remediation.
func TestAgentUnprivileged(t *testing.T) {
	bin := agentBinary(t)
	l, _ := newLab(t)
	// A copy everyone can execute, wherever the checkout lives.
	exe := filepath.Join(publicDir(t), "agent")
	if err := copyFile(bin, exe); err != nil {
		t.Fatal(err)
	}
	_, intakeURL := startIntake(t, l)
	cfg := newAgentDir(t, instance(l, ""), intakeURL)

	var out syncbuf.Buffer
	cmd := lab.AsUser(exec.Command(exe, "check", "go-metro", "-c", cfg.yaml, "--json"), 65534, 65534)
	<-startIn(t, l.A, cmd, &out)
	co := parseCheckOutput(t, out.Bytes())
	sc := co[0].Aggregator.ServiceChecks
	if len(sc) != 1 || sc[0].Status != 2 || !strings.Contains(sc[0].Message, "CAP_NET_RAW") || !strings.Contains(sc[0].Message, l.AIf) {
		t.Errorf("service checks %+v, want one CRITICAL naming CAP_NET_RAW and %s", sc, l.AIf)
	} else {
		t.Logf("as uid 65534: %s CRITICAL %q", sc[0].Check, sc[0].Message)
	}
	if _, _, ok := co.lastValue(rttcheck.MetricRTTAvg); ok {
		t.Errorf("RTT reported without the capability to capture")
	}

	// agent diagnose asks the running agent (in 7.63, `diagnose --local`
	// loads no core check at all), here one running as that user.
	run := lab.AsUser(exec.Command(exe, "run", "-c", cfg.yaml), 65534, 65534)
	var runOut syncbuf.Buffer
	done := startIn(t, l.A, run, &runOut)
	waitStatus(t, l, exe, cfg, done, func(text string) bool {
		return regexp.MustCompile(`go-metro:[0-9a-f]+ \[WARNING\][\s\S]*?Total Runs: [1-9]`).MatchString(text)
	})
	logDiagnose(t, l, exe, cfg)
	b, err := l.A.Command(exe, "diagnose", "--include", "check-datadog", "--json", "-c", cfg.yaml).CombinedOutput()
	if err != nil {
		t.Errorf("agent diagnose: %v", err)
	}
	ds := parseDiagnoses(t, b)
	perm := ds["capture permission on "+l.AIf]
	if perm.Result != 1 || !strings.Contains(perm.Diagnosis, "CAP_NET_RAW") || !strings.Contains(perm.Remediation, "setcap cap_net_raw+ep") {
		t.Errorf("permission diagnosis %+v, want FAIL naming CAP_NET_RAW with the setcap remediation", perm)
	} else {
		t.Logf("agent diagnose, agent as uid 65534: FAIL %q; remediation %q", perm.Diagnosis, perm.Remediation)
	}
	if d := ds["interface on "+l.AIf]; d.Result != 0 {
		t.Errorf("interface diagnosis %+v, want a pass", d)
	}
	if d := ds["capture running on "+l.AIf]; d.Result != 1 || d.Remediation == "" {
		t.Errorf("capture diagnosis %+v, want FAIL with a remediation", d)
	}
	stopAgent(t, run, done)
}

// logDiagnose logs `agent diagnose -v` as a user reads it.
func logDiagnose(t *testing.T, l *lab.Lab, bin string, cfg agentDir) {
	t.Helper()
	b, err := l.A.Command(bin, "diagnose", "--include", "check-datadog", "-v", "-c", cfg.yaml).CombinedOutput()
	t.Logf("agent diagnose --include check-datadog -v (%v):\n%s", err, b)
}

// waitStatus polls `agent status` until ok accepts its text, and returns it.
func waitStatus(t *testing.T, l *lab.Lab, bin string, cfg agentDir, done <-chan struct{}, ok func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, _ := l.A.Command(bin, "status", "-c", cfg.yaml).CombinedOutput()
		if ok(string(b)) {
			return string(b)
		}
		select {
		case <-done:
			t.Fatalf("the agent exited; last status:\n%s", b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent status not as expected within 60 s:\n%s", b)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// stopAgent sends SIGTERM and requires a clean exit within 5 s.
func stopAgent(t *testing.T, run *exec.Cmd, done <-chan struct{}) {
	t.Helper()
	if err := run.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	select {
	case <-done:
		t.Logf("agent exited %v after SIGTERM (%v)", time.Since(sent).Round(10*time.Millisecond), run.ProcessState)
		if !run.ProcessState.Success() {
			t.Errorf("agent exit status after SIGTERM: %v", run.ProcessState)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("agent still running 5 s after SIGTERM")
	}
}

// publicDir is a temporary directory that every user can enter (t.TempDir's
// parent is private to root), removed at cleanup.
func publicDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gometro-agent-")
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o755)
}

type diag struct {
	Result      int    `json:"result"`
	Name        string `json:"name"`
	Category    string `json:"category"`
	Diagnosis   string `json:"diagnosis"`
	Remediation string `json:"remediation"`
}

// parseDiagnoses returns go-metro's diagnoses of `agent diagnose --json`
// by name.
func parseDiagnoses(t *testing.T, out []byte) map[string]diag {
	t.Helper()
	var res struct {
		Runs []struct {
			Suite     string `json:"suite_name"`
			Diagnoses []diag `json:"diagnoses"`
		} `json:"runs"`
	}
	i := bytes.IndexByte(out, '{')
	if i < 0 || json.Unmarshal(out[i:], &res) != nil {
		t.Fatalf("agent diagnose --json: no JSON in its output:\n%s", out)
	}
	m := map[string]diag{}
	for _, r := range res.Runs {
		for _, d := range r.Diagnoses {
			if r.Suite == "check-datadog" && strings.HasPrefix(d.Category, "go-metro:") {
				m[d.Name] = d
			}
		}
	}
	if len(m) != 8 {
		t.Errorf("%d go-metro diagnoses, want 8:\n%s", len(m), out)
	}
	return m
}

// fakeIntake accepts the agent's payloads and remembers whether a series
// payload named a metric.
type fakeIntake struct {
	mu     sync.Mutex
	series [][]byte // decompressed series payloads
	paths  map[string]int
}

func (f *fakeIntake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if r.Header.Get("Content-Encoding") == "deflate" {
		if zr, err := zlib.NewReader(bytes.NewReader(body)); err == nil {
			body, _ = io.ReadAll(zr)
		}
	}
	f.mu.Lock()
	f.paths[r.URL.Path]++
	if strings.Contains(r.URL.Path, "series") {
		f.series = append(f.series, body)
	}
	f.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write([]byte("{}"))
}

func (f *fakeIntake) sawSeries(metric, tag string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.series {
		if bytes.Contains(b, []byte(metric)) && bytes.Contains(b, []byte(tag)) {
			return true
		}
	}
	return false
}

// startIntake starts a fake intake on A's loopback, where the agent sends,
// and returns it and its URL. An agent whose intake does not answer waits
// for its final flushes at SIGTERM (7.68 with the container tags: about
// 20 s for the process intake); one that answers stops at once.
func startIntake(t *testing.T, l *lab.Lab) (*fakeIntake, string) {
	t.Helper()
	intake := &fakeIntake{paths: map[string]int{}}
	var ln net.Listener
	if err := l.A.Do(func() (err error) {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: intake, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	return intake, "http://" + ln.Addr().String()
}

// TestAgentRun runs the agent as a service in A with traffic flowing, and
// checks what a user checks: `agent status`, `agent diagnose`, the data at
// the intake, and a clean stop on SIGTERM.
func TestAgentRun(t *testing.T) {
	bin := agentBinary(t)
	l, srv := newLab(t)

	intake, intakeURL := startIntake(t, l)
	cfg := newAgentDir(t, instance(l, "min_collection_interval: 2"), intakeURL)

	// Traffic for the whole test.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c := &lab.Client{Host: l.A, InfoEvery: -1}
		for ctx.Err() == nil {
			_, _ = c.RequestResponse(ctx, srv.Addr, 10, 300, 4000, 20*time.Millisecond)
		}
	}()
	defer func() { cancel(); wg.Wait() }()

	var out syncbuf.Buffer
	run := exec.Command(bin, "run", "-c", cfg.yaml)
	done := startIn(t, l.A, run, &out)
	started := time.Now()

	// agent status: the instance OK with samples, twice run at least.
	status := regexp.MustCompile(`Instance ID: go-metro:[0-9a-f]+ \[OK\][\s\S]*?Total Runs: (\d+)\s+Metric Samples: Last Run: (\d+),`)
	text := waitStatus(t, l, bin, cfg, done, func(text string) bool {
		m := status.FindStringSubmatch(text)
		if m == nil || !strings.Contains(text, "metadata:") {
			return false
		}
		runs, _ := strconv.Atoi(m[1])
		samples, _ := strconv.Atoi(m[2])
		return runs >= 2 && samples > 0
	})
	t.Logf("agent status after %v:\n%s", time.Since(started).Round(time.Second), section(text, "go-metro ("))
	for _, want := range []string{
		"go-metro (" + rttcheck.Version + ")",
		"interface: " + l.AIf,
		"capture.backend: afpacket",
		"snaplen: " + strconv.Itoa(capture.DefaultSnaplen),
		"max_flows: " + strconv.Itoa(capture.DefaultMaxFlows),
		"ring_size.max: 33554432",
		"filter.instructions: ",
		"version: " + rttcheck.Version,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("agent status lacks %q", want)
		}
	}
	if strings.Contains(section(text, "go-metro ("), "Warning:") || strings.Contains(section(text, "go-metro ("), "Error:") {
		t.Errorf("go-metro instance has warnings or errors in agent status")
	}

	// agent diagnose, answered by the running agent: all eight pass.
	logDiagnose(t, l, bin, cfg)
	b, err := l.A.Command(bin, "diagnose", "--include", "check-datadog", "--json", "-c", cfg.yaml).CombinedOutput()
	if err != nil {
		t.Errorf("agent diagnose: %v", err)
	}
	for name, d := range parseDiagnoses(t, b) {
		if d.Result != 0 {
			t.Errorf("diagnosis %q: result %d %q (remediation %q)", name, d.Result, d.Diagnosis, d.Remediation)
		}
	}
	if d := parseDiagnoses(t, b)["traffic seen on "+l.AIf]; !strings.Contains(d.Diagnosis, "with RTT samples") {
		t.Errorf("traffic diagnosis %q", d.Diagnosis)
	} else {
		t.Logf("agent diagnose: %s: %s", d.Name, d.Diagnosis)
	}

	// The series reach the intake (a 15 s flush interval).
	dst := "dst:" + lab.AddrB4.String()
	for deadline := time.Now().Add(40 * time.Second); !intake.sawSeries(rttcheck.MetricRTTAvg, dst); {
		if time.Now().After(deadline) {
			intake.mu.Lock()
			t.Errorf("no series payload with %s %s reached the intake within 40 s; requests: %v", rttcheck.MetricRTTAvg, dst, intake.paths)
			intake.mu.Unlock()
			break
		}
		time.Sleep(500 * time.Millisecond)
	}

	stopAgent(t, run, done)
	if bytes.Contains(out.Bytes(), []byte("panic")) {
		t.Errorf("the agent's output mentions a panic:\n%s", out.Bytes())
	}
	// A healthy instance logs no error of its own. Warnings are shown, not
	// failed: on this 2-core VM under load a snapshot can miss its 1 s
	// deadline once in a while ("no snapshot this run"), which the next
	// run makes up for.
	for _, line := range strings.Split(string(out.Bytes()), "\n") {
		switch {
		case !strings.Contains(line, "go-metro"):
		case strings.Contains(line, "| ERROR |"):
			t.Errorf("agent log: %s", line)
		case strings.Contains(line, "| WARN |"):
			t.Logf("agent log (warning): %s", line)
		}
	}
}

// section is the part of agent status text from the line holding start to
// the next blank line pair.
func section(text, start string) string {
	i := strings.Index(text, start)
	if i < 0 {
		return ""
	}
	s := text[i:]
	if j := strings.Index(s, "\n\n\n"); j >= 0 {
		s = s[:j]
	}
	return s
}
