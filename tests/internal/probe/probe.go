// Package probe runs go-metro's real check logic (rttcheck) or a bare
// capture engine in a child process that lives entirely inside one of the
// lab's network namespaces, and drives it over stdin/stdout.
//
// Why a child process: a capture socket belongs to the network namespace of
// the thread that creates it, and rttcheck creates it on goroutines of its
// own, which may run on any thread of the process. A process started inside
// namespace A (lab.Host.Start) has every thread in A, so the check runs
// unmodified there. A child also gives the tests what a shared process
// cannot: its own goroutines and descriptors (leak checks), its own memory
// (bounds under a flood), its own CPU time, and its own credentials
// (running as an unprivileged user with or without CAP_NET_RAW).
//
// The parent re-executes its own binary (a test binary or the demo) with
// RoleEnv set; that binary calls Main first thing. Protocol: the child
// prints one JSON Report per line; it prints a "ready" report once
// started, then answers each command line on stdin with one report:
//
//	run   (check role)  c.Run with a recording sender
//	snap  (engine role) engine.Snapshot: counters, flows, capture-thread CPU
//	stop                Cancel / end Run, then (check role) goroutine-leak
//	                    and descriptor checks; the child exits after it
//
// End of stdin (the parent died) stops the child too.
package probe

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gometro/go-metro/capture"
	"github.com/gometro/go-metro/capture/flow"
	"github.com/gometro/go-metro/internal/checkrec"
	"github.com/gometro/go-metro/rttcheck"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

// Environment of the child.
const (
	RoleEnv     = "GOMETRO_PROBE_ROLE"     // "check" or "engine"
	InstanceEnv = "GOMETRO_PROBE_INSTANCE" // check: instance YAML
	InitEnv     = "GOMETRO_PROBE_INIT"     // check: init_config YAML
	EngineEnv   = "GOMETRO_PROBE_ENGINE"   // engine: EngineConfig as JSON
)

// EngineConfig is what the engine role builds its capture.Config from.
type EngineConfig struct {
	Interface string
	Remotes   []netip.Prefix
	MaxFlows  int
	RingSize  int // bytes, fixed; 0: sized by need
	Nice      int // capture.Config.ReaderNice
}

// Metric is one submission of the check.
type Metric struct {
	Name  string
	Type  string // gauge, count, monotonic_count
	Value float64
	Tags  []string
}

// ServiceCheck is one service check submission.
type ServiceCheck struct {
	Name    string
	Status  string // OK, WARNING, CRITICAL, UNKNOWN
	Tags    []string
	Message string
}

// Report is one line of the child's output.
type Report struct {
	Kind string // ready, run, snap, stop
	Err  string `json:",omitempty"`

	// Check role.
	Metrics       []Metric       `json:",omitempty"`
	ServiceChecks []ServiceCheck `json:",omitempty"`
	Warnings      []string       `json:",omitempty"`

	// Engine role.
	Stats    *capture.Stats `json:",omitempty"`
	Flows    []flow.Summary `json:",omitempty"`
	LinkDown bool           `json:",omitempty"`
	// ThreadCPU is the CPU time (user+system) of the OS thread that runs
	// the engine's loop: the capture's own cost, without GC or the parent.
	ThreadCPU time.Duration `json:",omitempty"`
	// ThreadUserCPU is the user-mode part of ThreadCPU: decoding and the
	// flow table. The system part is poll and, charged to whichever
	// thread was on the CPU, softirq work of the network stack.
	ThreadUserCPU time.Duration `json:",omitempty"`

	// Both roles: the child process.
	ProcCPU    time.Duration // user+system of the whole process
	RSS        int64         // VmRSS in bytes
	HeapInuse  uint64        // after a forced GC
	Goroutines int
	UID        int
	CapEff     string // effective capability mask, hex, from /proc/self/status

	// Stop of the check role.
	Leaked    string   `json:",omitempty"` // goleak's report; empty: none
	FDsBefore []string `json:",omitempty"` // fd -> target before Configure
	FDsAfter  []string `json:",omitempty"` // the same after Cancel
}

// Find returns the metrics named name whose tags contain every one of tags.
func (r *Report) Find(name string, tags ...string) []Metric {
	var out []Metric
	for _, m := range r.Metrics {
		if m.Name == name && hasAll(m.Tags, tags) {
			out = append(out, m)
		}
	}
	return out
}

// Value returns the single value of a metric, and whether there was exactly one.
func (r *Report) Value(name string, tags ...string) (float64, bool) {
	ms := r.Find(name, tags...)
	if len(ms) != 1 {
		return 0, false
	}
	return ms[0].Value, true
}

// Service returns the go_metro.can_capture service check (zero if none).
func (r *Report) Service() ServiceCheck {
	for _, sc := range r.ServiceChecks {
		if sc.Name == rttcheck.ServiceCheckName {
			return sc
		}
	}
	return ServiceCheck{}
}

func hasAll(have, want []string) bool {
	for _, w := range want {
		found := false
		for _, h := range have {
			if h == w {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Main runs the child role named by RoleEnv and returns the exit code. The
// binary's main (or TestMain) calls it when RoleEnv is set.
func Main() int {
	// Ctrl-C in a terminal reaches the whole process group: the parent
	// decides when the child stops (it tears down in order).
	signal.Ignore(os.Interrupt)
	out := json.NewEncoder(os.Stdout)
	var err error
	switch role := os.Getenv(RoleEnv); role {
	case "check":
		err = checkRole(out)
	case "engine":
		err = engineRole(out)
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "probe: %v\n", err)
		return 1
	}
	return 0
}

// commands reads command lines from stdin on the calling goroutine (no
// goroutine of the probe's own may exist during a leak check).
func commands() *bufio.Scanner { return bufio.NewScanner(os.Stdin) }

func checkRole(out *json.Encoder) error {
	// The runtime opens its network poller (an epoll and an eventfd) the
	// first time any descriptor is registered, and keeps it for the life of
	// the process. Open it now, so the descriptor comparison after Cancel
	// shows what the check left open, not the runtime's poller.
	if r, w, err := os.Pipe(); err == nil {
		r.Close()
		w.Close()
	}
	fdsBefore := listFDs()
	ignore := goleak.IgnoreCurrent()

	c := rttcheck.New(rttcheck.Options{AddInstanceTags: true})
	cfg, err := rttcheck.ParseConfig([]byte(os.Getenv(InstanceEnv)), []byte(os.Getenv(InitEnv)), -1)
	if err == nil {
		err = c.Configure(cfg)
	}
	if err != nil {
		rep := newReport("ready")
		rep.Err = fmt.Sprintf("configure: %v", err)
		return out.Encode(rep)
	}
	if err := out.Encode(newReport("ready")); err != nil {
		c.Cancel()
		return err
	}
	in := commands()
	for in.Scan() {
		switch cmd := strings.TrimSpace(in.Text()); cmd {
		case "run":
			var rec checkrec.Recorder
			warnings, err := c.Run(&rec, &rec)
			rep := newReport("run")
			for _, m := range rec.Metrics() {
				rep.Metrics = append(rep.Metrics, Metric(m))
			}
			for _, sc := range rec.ServiceChecks() {
				rep.ServiceChecks = append(rep.ServiceChecks, ServiceCheck{Name: sc.Name, Status: sc.Status.String(), Tags: sc.Tags, Message: sc.Message})
			}
			rep.Warnings = warnings
			if err != nil {
				rep.Err = err.Error()
			}
			if err := out.Encode(rep); err != nil {
				c.Cancel()
				return err
			}
		case "stop":
			c.Cancel()
			rep := newReport("stop")
			if err := goleak.Find(ignore); err != nil {
				rep.Leaked = err.Error()
			}
			rep.FDsBefore, rep.FDsAfter = fdsBefore, listFDs()
			return out.Encode(rep)
		default:
			rep := newReport("error")
			rep.Err = fmt.Sprintf("unknown command %q", cmd)
			if err := out.Encode(rep); err != nil {
				c.Cancel()
				return err
			}
		}
	}
	c.Cancel()
	return in.Err()
}

func engineRole(out *json.Encoder) error {
	var ec EngineConfig
	if err := json.Unmarshal([]byte(os.Getenv(EngineEnv)), &ec); err != nil {
		return fmt.Errorf("engine config %q: %w", os.Getenv(EngineEnv), err)
	}
	eng, err := capture.New(capture.Config{Interface: ec.Interface, Remotes: ec.Remotes, MaxFlows: ec.MaxFlows, RingSize: ec.RingSize, ReaderNice: ec.Nice})
	if err != nil {
		rep := newReport("ready")
		rep.Err = err.Error()
		return out.Encode(rep)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var tid atomic.Int32
	runDone := make(chan error, 1)
	finalCPU := make(chan [2]time.Duration, 1) // total, user
	go func() {
		// One locked thread runs the whole loop, so its CPU time is the
		// capture's cost alone (GC and snapshot copies aside).
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tid.Store(int32(unix.Gettid()))
		var rerr error
		func() {
			defer func() {
				if r := recover(); r != nil {
					rerr = fmt.Errorf("engine Run panicked: %v", r)
				}
			}()
			rerr = eng.Run(ctx)
		}()
		var ru unix.Rusage
		if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err == nil {
			finalCPU <- [2]time.Duration{tvDur(ru.Utime) + tvDur(ru.Stime), tvDur(ru.Utime)}
		} else {
			finalCPU <- [2]time.Duration{-1, -1}
		}
		runDone <- rerr
	}()
	select {
	case <-eng.Opened():
	case err := <-runDone:
		rep := newReport("ready")
		rep.Err = fmt.Sprintf("engine Run ended before opening: %v", err)
		return out.Encode(rep)
	case <-time.After(10 * time.Second):
		rep := newReport("ready")
		rep.Err = "engine did not open its source within 10s"
		return out.Encode(rep)
	}
	if err := out.Encode(newReport("ready")); err != nil {
		return err
	}
	snap := func(kind string) *Report {
		rep := newReport(kind)
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		s, err := eng.Snapshot(sctx)
		if err != nil {
			rep.Err = err.Error()
			return rep
		}
		rep.Stats, rep.Flows, rep.LinkDown = &s.Stats, s.Flows, s.LinkDown
		rep.ThreadCPU, rep.ThreadUserCPU = threadCPU(int(tid.Load()))
		return rep
	}
	in := commands()
	for in.Scan() {
		switch cmd := strings.TrimSpace(in.Text()); cmd {
		case "snap":
			if err := out.Encode(snap("snap")); err != nil {
				return err
			}
		case "stop":
			rep := snap("stop")
			cancel()
			if err := <-runDone; err != nil {
				rep.Err = fmt.Sprintf("engine Run: %v", err)
			}
			cpu := <-finalCPU
			rep.ThreadCPU, rep.ThreadUserCPU = cpu[0], cpu[1]
			return out.Encode(rep)
		default:
			rep := newReport("error")
			rep.Err = fmt.Sprintf("unknown command %q", cmd)
			if err := out.Encode(rep); err != nil {
				return err
			}
		}
	}
	return in.Err()
}

func tvDur(tv unix.Timeval) time.Duration {
	return time.Duration(tv.Sec)*time.Second + time.Duration(tv.Usec)*time.Microsecond
}

// clockTick is USER_HZ, the unit of /proc/.../stat times; 100 on every
// Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// threadCPU reads the total (user+system) and user time of thread tid of
// this process from /proc (10 ms resolution); -1 if unreadable.
func threadCPU(tid int) (total, user time.Duration) {
	return statCPU(fmt.Sprintf("/proc/self/task/%d/stat", tid))
}

func statCPU(path string) (total, user time.Duration) {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1, -1
	}
	// Fields after the command name, which is in parentheses and may
	// contain spaces: state is field 3, utime 14, stime 15.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return -1, -1
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return -1, -1
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1, -1
	}
	return time.Duration(ut+st) * clockTick, time.Duration(ut) * clockTick
}

func newReport(kind string) *Report {
	r := &Report{Kind: kind, Goroutines: runtime.NumGoroutine(), UID: os.Getuid()}
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err == nil {
		r.ProcCPU = tvDur(ru.Utime) + tvDur(ru.Stime)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r.HeapInuse = ms.HeapInuse
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			v = strings.TrimSpace(v)
			switch k {
			case "VmRSS":
				if kb, err := strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64); err == nil {
					r.RSS = kb << 10
				}
			case "CapEff":
				r.CapEff = v
			}
		}
	}
	return r
}

// listFDs lists this process's descriptors as "fd -> target", sorted,
// leaving out the descriptor the listing itself uses.
func listFDs() []string {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return []string{"error: " + err.Error()}
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return []string{"error: " + err.Error()}
	}
	self := strconv.Itoa(int(d.Fd()))
	var out []string
	for _, n := range names {
		if n == self {
			continue
		}
		target, err := os.Readlink(filepath.Join("/proc/self/fd", n))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // closed while listing
			}
			target = "?" + err.Error()
		}
		out = append(out, n+" -> "+target)
	}
	sort.Strings(out)
	return out
}
