// Package lab builds a three-host network out of Linux network namespaces for
// end-to-end tests of go-metro against the kernel's own RTT estimate:
//
//	A (client) --veth-- M (delay line) --veth-- B (server)
//
// A and B hold IPv4 and IPv6 addresses and static neighbour entries for each
// other; M holds no addresses and runs the userspace delay line
// (tests/internal/delayline) that bridges its two veths at layer 2 with
// per-direction delay, jitter and loss. Every veth has its offloads off, so
// frames captured on A's veth are real segments with correct checksums.
//
// Code runs inside a host with Host.Do / Host.Go (a locked OS thread that
// entered the namespace and dies afterwards), commands with Host.Command.
// Namespaces are named with a per-process, per-lab prefix and deleted by
// t.Cleanup whatever happens. The workloads (servers in B, clients in A) and
// the kernel ground truth (TCP_INFO) are in this package too.
//
// Everything here needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN): RequireRoot
// skips tests otherwise, but fails them when the CI environment variable is
// set, so CI can never go green by skipping the lab.
package lab

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gometro/go-metro/tests/internal/delayline"
	"golang.org/x/sys/unix"
)

// Fixed addressing. Each lab lives in its own namespaces, so every lab can
// use the same documentation prefixes without colliding.
var (
	AddrA4 = netip.MustParseAddr("192.0.2.1")
	AddrB4 = netip.MustParseAddr("192.0.2.2")
	AddrA6 = netip.MustParseAddr("2001:db8::1")
	AddrB6 = netip.MustParseAddr("2001:db8::2")
	MACA   = net.HardwareAddr{0x02, 0x67, 0x6d, 0, 0, 0x0a}
	MACB   = net.HardwareAddr{0x02, 0x67, 0x6d, 0, 0, 0x0b}
)

// Config configures a lab. The zero value is a lab whose delay line adds no
// delay.
type Config struct {
	// Line is the delay line's configuration (per-direction delay, jitter,
	// loss, queue). AtoB is client to server.
	Line delayline.Config
	// KeepDelayedACK leaves Linux's delayed ACKs on. By default A and B
	// route to each other with "quickack 1", so every segment is ACKed at
	// once: a delayed ACK adds up to 40 ms to the kernel's RTT sample of an
	// odd trailing segment, which would make "srtt is 2 x one-way delay"
	// untestable. Tests of delayed-ACK handling turn it back on.
	KeepDelayedACK bool
	// MTU of every veth; 0 leaves the default 1500.
	MTU int
	// Bottleneck, when its Rate is set, limits A->B with a token bucket on
	// M's veth toward B (tc tbf), after the delay line: a queue that
	// builds when A sends faster and drains when it slows down, so the RTT
	// moves inside a flight.
	Bottleneck Bottleneck
	// Offloads leaves TSO, GSO, GRO, scatter-gather and checksum offload
	// on, as real hosts run them: the capture on A sees 64 KB super-frames
	// with partial checksums, and the delay line carries them whole
	// (PACKET_VNET_HDR). Line's FrameSize and QueueLimit default to fit.
	Offloads bool
	// Congestion is A's and B's TCP congestion control (sysctl
	// net.ipv4.tcp_congestion_control, per namespace, or TCP_CONGESTION
	// on the lab's sockets where the host does not allow it as a
	// namespace's default); empty keeps the kernel's default (often cubic,
	// whose HyStart leaves slow start as soon as the RTT rises, so it
	// never fills a deep queue; "reno" does; some kernels default to bbr).
	Congestion string
	// StretchACKs turns GRO on at B's veth: B's stack receives coalesced
	// segments and acknowledges several MSS with one ACK (stretch ACKs).
	StretchACKs bool
	// KernelBridge joins M's veths with a Linux bridge instead of the delay
	// line: no delay, no loss, but the kernel's forwarding rate, for load
	// tests that need more packets per second than the userspace line
	// forwards (about 12k-33k frames/s on the 2-core test VM). Line and the
	// delay line methods are unused then.
	KernelBridge bool
}

// Bottleneck is a rate limit with a queue.
type Bottleneck struct {
	Rate   int64         // bits per second; 0: no bottleneck
	Buffer time.Duration // queue held at Rate (tbf latency) before dropping
}

// Lab is a running three-namespace network. Create it with New.
type Lab struct {
	t      testing.TB // nil for labs made by Start
	cfg    Config
	Prefix string // unique per lab: every namespace name starts with it

	A, B, M *Host

	// Interface names. AIf is in A, BIf in B, MAIf and MBIf in M.
	AIf, BIf, MAIf, MBIf string

	mu   sync.Mutex
	line *DelayLine
}

var labSeq atomic.Int64

// RequireRoot skips the test unless it runs as root, and fails it instead
// when the environment variable CI is set: in CI the lab must run.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("lab tests need root (network namespaces) and CI is set: refusing to skip")
	}
	t.Skip("lab tests need root (network namespaces); skipped (set CI to make this a failure)")
}

// New builds a lab and starts its delay line with cfg.Line. It calls
// RequireRoot, fails the test on any setup error, and registers cleanup
// that deletes the namespaces even if the test fails or panics.
func New(t testing.TB, cfg Config) *Lab {
	t.Helper()
	RequireRoot(t)
	l, err := Start(cfg)
	if err != nil {
		t.Fatalf("%v", err)
	}
	l.t = t
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("lab cleanup: %v", err)
		}
	})
	return l
}

// Start is New for programs that are not tests (the demo): it builds the
// lab and returns it, or an error after removing whatever it had built.
// The caller must Close the lab. It needs root.
func Start(cfg Config) (*Lab, error) {
	for _, tool := range []string{"ip", "ethtool"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("lab: %s not found (install iproute2 and ethtool): %w", tool, err)
		}
	}
	janitor.Do(removeStale)
	n := labSeq.Add(1)
	// "gml" + pid and sequence in base 36 keeps names short (interface names
	// are limited to 15 bytes) and unique across parallel test processes.
	prefix := "gml" + strconv.FormatInt(int64(os.Getpid()), 36) + "x" + strconv.FormatInt(n, 36)
	l := &Lab{
		cfg: cfg, Prefix: prefix,
		AIf: prefix + "a", BIf: prefix + "b", MAIf: prefix + "ma", MBIf: prefix + "mb",
	}
	fail := func(what string, err error) (*Lab, error) {
		if cerr := l.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("cleanup: %w", cerr))
		}
		return nil, fmt.Errorf("lab %s: %w", what, err)
	}
	if err := l.setup(); err != nil {
		return fail("setup", err)
	}
	if cfg.KernelBridge {
		if err := l.bridge(); err != nil {
			return fail("bridge", err)
		}
		return l, nil
	}
	if cfg.Offloads {
		// Super-frames of up to 64 KiB plus the virtio header; fewer of
		// them fit the same memory.
		l.cfg.Line.FrameSize = max(l.cfg.Line.FrameSize, 65536+256)
		if l.cfg.Line.QueueLimit == 0 {
			l.cfg.Line.QueueLimit = 4096
		}
	}
	if err := l.StartDelayLine(l.cfg.Line); err != nil {
		return fail("delay line", err)
	}
	return l, nil
}

func (l *Lab) setup() error {
	var err error
	if l.A, err = newHost(l.Prefix + "A"); err != nil {
		return err
	}
	if l.B, err = newHost(l.Prefix + "B"); err != nil {
		return err
	}
	if l.M, err = newHost(l.Prefix + "M"); err != nil {
		return err
	}
	// M is a wire: no IPv6 link-local addresses, no router solicitations,
	// nothing of its own on the link.
	for _, key := range []string{"net/ipv6/conf/all/disable_ipv6", "net/ipv6/conf/default/disable_ipv6"} {
		if err := l.M.WriteSysctl(key, "1"); err != nil {
			return err
		}
	}
	for _, h := range []*Host{l.A, l.B} {
		// Cached per-destination metrics would carry one scenario's RTT
		// into the next connection's RTO; every connection starts fresh.
		if err := h.WriteSysctl("net/ipv4/tcp_no_metrics_save", "1"); err != nil {
			return err
		}
		if l.cfg.Congestion != "" {
			// A namespace other than the host's may only default to an
			// algorithm of net.ipv4.tcp_allowed_congestion_control (EPERM
			// otherwise); the lab's sockets then ask for it themselves.
			err := h.WriteSysctl("net/ipv4/tcp_congestion_control", l.cfg.Congestion)
			switch {
			case errors.Is(err, fs.ErrPermission):
				h.congestion = l.cfg.Congestion
			case err != nil:
				return err
			}
		}
		if err := run("ip", "-n", h.Name, "link", "set", "lo", "up"); err != nil {
			return err
		}
	}
	if err := l.addLinkA(); err != nil {
		return err
	}
	if err := l.addLinkB(); err != nil {
		return err
	}
	if l.cfg.StretchACKs {
		if _, err := l.B.Run("ethtool", "-K", l.BIf, "gro", "on", "rx", "on"); err != nil {
			return err
		}
	}
	if b := l.cfg.Bottleneck; b.Rate > 0 {
		// A 16 KB bucket keeps the rate within a few frames (and above
		// rate/HZ, which tbf needs to reach the rate); latency is the
		// queue the bottleneck holds, dropping beyond it as a router's
		// buffer does.
		return run("tc", "-n", l.M.Name, "qdisc", "replace", "dev", l.MBIf, "root", "tbf",
			"rate", strconv.FormatInt(b.Rate, 10)+"bit", "burst", "16kb",
			"latency", strconv.FormatInt(b.Buffer.Milliseconds(), 10)+"ms")
	}
	return nil
}

// bridge joins M's two veths with a kernel bridge.
func (l *Lab) bridge() error {
	br := l.Prefix + "br"
	for _, c := range [][]string{
		{"-n", l.M.Name, "link", "add", br, "type", "bridge"},
		{"-n", l.M.Name, "link", "set", l.MAIf, "master", br},
		{"-n", l.M.Name, "link", "set", l.MBIf, "master", br},
		{"-n", l.M.Name, "link", "set", br, "up"},
	} {
		if err := run("ip", c...); err != nil {
			return err
		}
	}
	return nil
}

// addLinkA creates the veth A<->M and configures both ends.
func (l *Lab) addLinkA() error {
	return l.addLink(l.A, l.AIf, MACA, AddrA4, AddrA6, l.MAIf, AddrB4, AddrB6, MACB)
}

func (l *Lab) addLinkB() error {
	return l.addLink(l.B, l.BIf, MACB, AddrB4, AddrB6, l.MBIf, AddrA4, AddrA6, MACA)
}

func (l *Lab) addLink(h *Host, dev string, mac net.HardwareAddr, a4, a6 netip.Addr,
	mdev string, peer4, peer6 netip.Addr, peerMAC net.HardwareAddr) error {
	args := []string{"link", "add", "name", dev, "address", mac.String(), "netns", h.Name}
	if l.cfg.MTU > 0 {
		args = append(args, "mtu", strconv.Itoa(l.cfg.MTU))
	}
	args = append(args, "type", "veth", "peer", "name", mdev, "netns", l.M.Name)
	if l.cfg.MTU > 0 {
		args = append(args, "mtu", strconv.Itoa(l.cfg.MTU))
	}
	if err := run("ip", args...); err != nil {
		return err
	}
	if l.cfg.Offloads {
		// veths segment and checksum in hardware's stead by default;
		// GRO needs turning on (it enables the veth's NAPI).
		for _, c := range []struct {
			h   *Host
			dev string
		}{{l.M, mdev}, {h, dev}} {
			if _, err := c.h.Run("ethtool", "-K", c.dev, "gro", "on", "tso", "on", "gso", "on", "tx", "on", "rx", "on", "sg", "on"); err != nil {
				return err
			}
		}
	} else {
		if err := l.M.Offloads(mdev); err != nil {
			return err
		}
		if err := h.Offloads(dev); err != nil {
			return err
		}
	}
	cmds := [][]string{
		{"-n", l.M.Name, "link", "set", mdev, "up"},
		{"-n", h.Name, "addr", "add", a4.String() + "/24", "dev", dev},
		{"-n", h.Name, "addr", "add", a6.String() + "/64", "dev", dev, "nodad"},
		{"-n", h.Name, "link", "set", dev, "up"},
		// Static neighbours: no ARP or NDP through the delay line, so the
		// first SYN is not held back while the kernel resolves the peer (the
		// kernel would time that wait as part of the handshake RTT, the
		// capture would not).
		{"-n", h.Name, "neigh", "replace", peer4.String(), "lladdr", peerMAC.String(), "dev", dev, "nud", "permanent"},
		{"-n", h.Name, "-6", "neigh", "replace", peer6.String(), "lladdr", peerMAC.String(), "dev", dev, "nud", "permanent"},
	}
	if !l.cfg.KeepDelayedACK {
		cmds = append(cmds,
			[]string{"-n", h.Name, "route", "replace", peer4.String() + "/32", "dev", dev, "quickack", "1"},
			[]string{"-n", h.Name, "-6", "route", "replace", peer6.String() + "/128", "dev", dev, "quickack", "1"})
	}
	for _, c := range cmds {
		if err := run("ip", c...); err != nil {
			return err
		}
	}
	return nil
}

// Remotes are B's addresses as host prefixes: what a capture on A should
// monitor (capture.Config.Remotes).
func (l *Lab) Remotes() []netip.Prefix {
	return []netip.Prefix{netip.PrefixFrom(AddrB4, 32), netip.PrefixFrom(AddrB6, 128)}
}

// Locals are A's addresses as host prefixes.
func (l *Lab) Locals() []netip.Prefix {
	return []netip.Prefix{netip.PrefixFrom(AddrA4, 32), netip.PrefixFrom(AddrA6, 128)}
}

// StartDelayLine starts the delay line in M with cfg (stopping a running one
// first) and returns once it forwards frames.
func (l *Lab) StartDelayLine(cfg delayline.Config) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.line != nil {
		if _, err := l.line.Stop(); err != nil {
			return err
		}
		l.line = nil
	}
	dl, err := startDelayLine(l.M, l.MAIf, l.MBIf, cfg, l.cfg.Offloads)
	if err != nil {
		return err
	}
	l.line = dl
	l.cfg.Line = cfg
	return nil
}

// SetImpairment restarts the delay line with new per-direction settings,
// keeping the rest of its configuration. Frames in flight are dropped, so
// call it between workloads.
func (l *Lab) SetImpairment(atob, btoa delayline.Dir) error {
	cfg := l.cfg.Line
	cfg.AtoB, cfg.BtoA = atob, btoa
	return l.StartDelayLine(cfg)
}

// StopDelayLine stops the delay line and returns its final counters. The
// link between A and B is cut until StartDelayLine.
func (l *Lab) StopDelayLine() (delayline.Stats, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.line == nil {
		return delayline.Stats{}, errors.New("lab: delay line is not running")
	}
	st, err := l.line.Stop()
	l.line = nil
	return st, err
}

// DeleteLinkA deletes the veth pair A<->M, as an interface that disappears
// under a running capture. The delay line stops (its socket is gone).
func (l *Lab) DeleteLinkA() error {
	l.mu.Lock()
	if l.line != nil {
		_, _ = l.line.Stop() // its port is about to vanish; counters are moot
		l.line = nil
	}
	l.mu.Unlock()
	return run("ip", "-n", l.A.Name, "link", "del", l.AIf)
}

// AddLinkA re-creates the veth pair A<->M with the same names, addresses and
// neighbours, and restarts the delay line with the last configuration.
func (l *Lab) AddLinkA() error {
	if err := l.addLinkA(); err != nil {
		return err
	}
	if l.cfg.KernelBridge {
		return run("ip", "-n", l.M.Name, "link", "set", l.MAIf, "master", l.Prefix+"br")
	}
	return l.StartDelayLine(l.cfg.Line)
}

// RecreateLink deletes and re-creates A's veth (new ifindex, same name).
func (l *Lab) RecreateLink() error {
	if err := l.DeleteLinkA(); err != nil {
		return err
	}
	return l.AddLinkA()
}

// SetLinkA sets A's veth up or down (ip link set up|down).
func (l *Lab) SetLinkA(up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	return run("ip", "-n", l.A.Name, "link", "set", l.AIf, state)
}

// Close stops the delay line and deletes the namespaces. New registers it
// with t.Cleanup; calling it again is harmless.
func (l *Lab) Close() error {
	var errs []error
	l.mu.Lock()
	if l.line != nil {
		if _, err := l.line.Stop(); err != nil {
			errs = append(errs, err)
		}
		l.line = nil
	}
	l.mu.Unlock()
	for _, h := range []*Host{l.A, l.B, l.M} {
		if h != nil {
			if err := h.close(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// run executes a command and returns an error holding its output.
func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// DelayLine is a delay line process running in M.
type DelayLine struct {
	cmd    *exec.Cmd
	stdout *bufio.Scanner
	stderr *strings.Builder
	done   chan error
	stats  chan delayline.Stats
}

// roleEnv makes the test binary act as the delay line command (see init).
const roleEnv = "GOMETRO_LAB_ROLE"

func init() {
	// The lab re-executes its own test binary as the delay line, so no
	// toolchain is needed at test time and the line is a separate process:
	// the engine under test does not share its CPU time or GC pauses.
	if os.Getenv(roleEnv) == "delayline" {
		// A test process killed hard (timeout, SIGKILL) runs no cleanup:
		// the line notices it was orphaned and stops itself.
		ppid := os.Getppid()
		go func() {
			for range time.Tick(500 * time.Millisecond) {
				if os.Getppid() != ppid {
					_ = unix.Kill(os.Getpid(), unix.SIGTERM)
					return
				}
			}
		}()
		os.Exit(delayline.Main(os.Args[1:], os.Stdout, os.Stderr))
	}
}

var janitor sync.Once

// removeStale deletes namespaces left by lab processes that died without
// cleanup (killed by a test timeout, say): names carry the owner's pid.
func removeStale() {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, "gml") {
			continue
		}
		pidPart, _, ok := strings.Cut(name[3:], "x")
		if !ok {
			continue
		}
		pid, err := strconv.ParseInt(pidPart, 36, 64)
		if err != nil || pid <= 0 || pid > 1<<22 {
			continue
		}
		if err := unix.Kill(int(pid), 0); errors.Is(err, unix.ESRCH) {
			_ = run("ip", "netns", "del", name)
		}
	}
}

// startDelayLine starts the line, and starts it once more if the first
// did not report ready in delayLineStartup: a line was seen twice in one CI
// run to stay silent for a minute on an idle machine, killed with nothing
// on its stderr, and never when run alone. What its threads were doing
// then goes to this process's stderr, so that the next one says why.
func startDelayLine(m *Host, ifA, ifB string, cfg delayline.Config, vnetHdr bool) (*DelayLine, error) {
	dl, err := startDelayLineOnce(m, ifA, ifB, cfg, vnetHdr)
	var stuck *notReadyError
	if !errors.As(err, &stuck) {
		return dl, err
	}
	fmt.Fprintf(os.Stderr, "%v; its threads were:\n%s\nstarting it again\n", err, stuck.threads)
	return startDelayLineOnce(m, ifA, ifB, cfg, vnetHdr)
}

// notReadyError is a delay line that did not report ready in time, with
// what its threads were doing (threadStates).
type notReadyError struct {
	stderr, threads string
}

func (e *notReadyError) Error() string {
	return fmt.Sprintf("lab: delay line not ready after %v: %s", delayLineStartup, e.stderr)
}

// threadStates lists pid's threads: name, state, the kernel function each
// waits in and its kernel stack (readable by root).
func threadStates(pid int) string {
	var b strings.Builder
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, t := range tasks {
		dir := fmt.Sprintf("/proc/%d/task/%s/", pid, t.Name())
		stat, _ := os.ReadFile(dir + "stat")
		wchan, _ := os.ReadFile(dir + "wchan")
		sched, _ := os.ReadFile(dir + "sched")
		stack, _ := os.ReadFile(dir + "stack")
		policy := ""
		for _, line := range strings.Split(string(sched), "\n") {
			if strings.HasPrefix(line, "policy") || strings.HasPrefix(line, "prio") {
				policy += strings.Join(strings.Fields(line), " ") + "; "
			}
		}
		fmt.Fprintf(&b, "  %s wchan=%s %s\n", strings.TrimSpace(string(stat)), wchan, policy)
		for _, line := range strings.Split(strings.TrimSpace(string(stack)), "\n") {
			if line != "" {
				fmt.Fprintf(&b, "      %s\n", line)
			}
		}
	}
	return b.String()
}

func startDelayLineOnce(m *Host, ifA, ifB string, cfg delayline.Config, vnetHdr bool) (*DelayLine, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("lab: delay line: own executable: %w", err)
	}
	args := []string{
		"-a", ifA, "-b", ifB,
		"-delay-ab", cfg.AtoB.Delay.String(), "-jitter-ab", cfg.AtoB.Jitter.String(),
		"-loss-ab", strconv.FormatFloat(cfg.AtoB.Loss, 'g', -1, 64),
		"-delay-ba", cfg.BtoA.Delay.String(), "-jitter-ba", cfg.BtoA.Jitter.String(),
		"-loss-ba", strconv.FormatFloat(cfg.BtoA.Loss, 'g', -1, 64),
		"-burst-ab", cfg.AtoB.Burst.String(), "-burst-ba", cfg.BtoA.Burst.String(),
		"-queue", strconv.Itoa(cfg.QueueLimit), "-frame-size", strconv.Itoa(cfg.FrameSize),
		"-spin", cfg.SpinMargin.String(), "-seed", strconv.FormatUint(cfg.Seed, 10),
	}
	if vnetHdr {
		args = append(args, "-vnet-hdr")
	}
	cmd := exec.Command(exe, args...)
	if chrt, err := exec.LookPath("chrt"); err == nil && os.Getenv("GOMETRO_LAB_NO_RT") == "" {
		// Real-time priority for every thread of the line (threads inherit
		// it): on a loaded 2-core machine (load average 17 while other
		// suites ran) the line's releases were otherwise up to 130 ms late.
		// The spin before each release is bounded (SpinMargin) and the
		// kernel's RT throttling keeps 5% of CPU time for everything else.
		cmd = exec.Command(chrt, append([]string{"--fifo", "10", exe}, args...)...)
	}
	cmd.Env = append(os.Environ(), roleEnv+"=delayline")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("lab: delay line: %w", err)
	}
	dl := &DelayLine{cmd: cmd, stdout: bufio.NewScanner(stdout), stderr: &strings.Builder{},
		done: make(chan error, 1), stats: make(chan delayline.Stats, 1)}
	cmd.Stderr = dl.stderr
	if err := m.Start(cmd); err != nil {
		return nil, fmt.Errorf("lab: delay line: %w", err)
	}
	ready := make(chan bool, 1)
	go func() {
		// Reads stdout to the end: the ready line, then the stats line.
		for dl.stdout.Scan() {
			line := dl.stdout.Text()
			switch {
			case line == delayline.ReadyLine:
				ready <- true
			case strings.HasPrefix(line, delayline.StatsPrefix):
				if st, err := parseStats(line); err == nil {
					dl.stats <- st
				}
			}
		}
		close(ready)
		dl.done <- cmd.Wait()
	}()
	select {
	case ok := <-ready:
		if ok {
			return dl, nil
		}
		err := <-dl.done
		return nil, fmt.Errorf("lab: delay line exited before ready: %v: %s", err, dl.stderr.String())
	case <-time.After(delayLineStartup):
		threads := threadStates(cmd.Process.Pid)
		_ = cmd.Process.Kill()
		<-dl.done
		return nil, &notReadyError{stderr: dl.stderr.String(), threads: threads}
	}
}

// delayLineStartup is how long the delay line may take to report ready: a
// ceiling, not a wait, since a ready line answers at once (startDelayLine
// starts a silent one once more).
const delayLineStartup = 30 * time.Second

// Stop sends SIGTERM and returns the counters the line printed on exit.
func (d *DelayLine) Stop() (delayline.Stats, error) {
	if err := d.cmd.Process.Signal(unix.SIGTERM); err != nil {
		return delayline.Stats{}, fmt.Errorf("lab: stop delay line: %w", err)
	}
	var err error
	select {
	case err = <-d.done:
	case <-time.After(10 * time.Second):
		_ = d.cmd.Process.Kill()
		err = fmt.Errorf("lab: delay line ignored SIGTERM for 10s (killed): %v", <-d.done)
	}
	select {
	case st := <-d.stats:
		if err != nil {
			return st, fmt.Errorf("lab: delay line exit: %w: %s", err, d.stderr.String())
		}
		return st, nil
	default:
		return delayline.Stats{}, fmt.Errorf("lab: delay line printed no stats (exit %v): %s", err, d.stderr.String())
	}
}
