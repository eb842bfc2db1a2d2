package main

// -trace: where the softirq work billed to a capturer comes from, exactly,
// from the kernel's own trace events (tracefs) rather than perf samples.
//
// Without IRQ time accounting the kernel bills a softirq to the task that
// is current when it runs: at the exit of an interrupt that hit the task,
// or inside one of the task's system calls when it re-enables softirqs.
// The trace follows, per CPU, which thread is current (sched_switch), what
// last interrupted it (the local timer, with the hrtimer that expired; an
// IPI; a device) and whether it is inside a system call, and charges each
// softirq run (softirq_entry to softirq_exit) to that cause when one of
// the capturer's threads is current. With tbf shaping the traffic, the
// shaper's watchdog hrtimer (qdisc_watchdog) releases packets from a timer
// interrupt, and their whole path through the veths, the bridge and B's
// TCP runs in that interrupt's softirq, on whatever task it interrupted.

import (
	"bufio"
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gometro/go-metro/tests/internal/procstat"
)

// traceEvents are the tracefs events -trace enables; raw_syscalls is
// filtered to the capturer's threads.
var traceEvents = []string{
	"sched/sched_switch", "irq/softirq_entry", "irq/softirq_exit", "irq/irq_handler_entry",
	"irq_vectors/local_timer_entry", "irq_vectors/call_function_single_entry",
	"irq_vectors/call_function_entry", "irq_vectors/reschedule_entry",
	"timer/hrtimer_expire_entry", "raw_syscalls/sys_enter", "raw_syscalls/sys_exit",
}

// softirqTrace is what one traced window found for one capturer.
type softirqTrace struct {
	onCPU   time.Duration            // the capturer's threads were current
	softirq time.Duration            // softirq work run while they were
	causes  map[string]time.Duration // that work by what started it
}

// add sums o into t (whose causes must be made).
func (t *softirqTrace) add(o softirqTrace) {
	t.onCPU += o.onCPU
	t.softirq += o.softirq
	for k, v := range o.causes {
		t.causes[k] += v
	}
}

func (t softirqTrace) share() float64 {
	if t.onCPU <= 0 {
		return -1
	}
	return float64(t.softirq) / float64(t.onCPU)
}

// topCauses names the largest causes with their share of t.softirq.
func (t softirqTrace) topCauses(n int) string {
	type kv struct {
		k string
		v time.Duration
	}
	var all []kv
	for k, v := range t.causes {
		all = append(all, kv{k, v})
	}
	slices.SortFunc(all, func(a, b kv) int { return cmp.Compare(b.v, a.v) })
	var parts []string
	for i, c := range all {
		if i == n || t.softirq <= 0 {
			break
		}
		parts = append(parts, fmt.Sprintf("%s %.0f%%", c.k, 100*float64(c.v)/float64(t.softirq)))
	}
	return strings.Join(parts, ", ")
}

func tracefs() (string, error) {
	for _, d := range []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"} {
		if _, err := os.Stat(filepath.Join(d, "trace")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("-trace: no tracefs (mount -t tracefs nodev /sys/kernel/tracing)")
}

// traceWindow records the events for window and attributes the softirq
// work billed to pid's threads. It takes the tracefs for itself (no other
// tracer may run) and leaves the events off and the buffer as it found it.
func traceWindow(pid int, window time.Duration) (softirqTrace, error) {
	dir, err := tracefs()
	if err != nil {
		return softirqTrace{}, err
	}
	w := func(name, val string) error { return os.WriteFile(filepath.Join(dir, name), []byte(val), 0o644) }
	// Put back what the window changes: the buffer size and whether tracing
	// was on (the events are assumed off, as they are unless a tracer runs).
	var saved [][2]string
	for _, name := range []string{"buffer_size_kb", "tracing_on"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return softirqTrace{}, fmt.Errorf("-trace: %w", err)
		}
		saved = append(saved, [2]string{name, strings.TrimSpace(string(b))})
	}
	tids := procstat.Threads(pid)
	var filter []string
	for tid := range tids {
		filter = append(filter, "common_pid == "+strconv.Itoa(tid))
	}
	steps := [][2]string{{"tracing_on", "0"}, {"trace", ""}, {"buffer_size_kb", "65536"},
		{"events/raw_syscalls/filter", strings.Join(filter, " || ")}}
	for _, e := range traceEvents {
		steps = append(steps, [2]string{"events/" + e + "/enable", "1"})
	}
	defer func() {
		w("tracing_on", "0")
		for _, e := range traceEvents {
			w("events/"+e+"/enable", "0")
		}
		w("events/raw_syscalls/filter", "0")
		w("trace", "")
		for _, kv := range saved {
			w(kv[0], kv[1])
		}
	}()
	for _, s := range steps {
		if err := w(s[0], s[1]); err != nil {
			return softirqTrace{}, fmt.Errorf("-trace: %s: %w", s[0], err)
		}
	}
	if err := w("tracing_on", "1"); err != nil {
		return softirqTrace{}, err
	}
	time.Sleep(window)
	if err := w("tracing_on", "0"); err != nil {
		return softirqTrace{}, err
	}
	for tid := range procstat.Threads(pid) {
		tids[tid] = true // threads started during the window
	}
	f, err := os.Open(filepath.Join(dir, "trace"))
	if err != nil {
		return softirqTrace{}, err
	}
	defer f.Close()
	return attribute(bufio.NewScanner(f), tids)
}

// A trace line: "comm-pid [cpu] flags seconds: event: fields".
var traceLine = regexp.MustCompile(`^\s*.+-(\d+)\s+\[(\d+)\]\s+\S+\s+(\d+\.\d+):\s+(\w+):\s*(.*)$`)
var (
	hrtimerFn  = regexp.MustCompile(`function=(\S+)`)
	lostEvents = regexp.MustCompile(`LOST (\d+) EVENTS`)
)

// attribute reads trace lines and charges softirq runs to their cause
// while one of tids is current (every line names the task current on its
// CPU).
func attribute(sc *bufio.Scanner, tids map[int]bool) (softirqTrace, error) {
	type cpuState struct {
		switched  bool // since is the current task's switch-in
		since     float64
		cause     string // what the last interrupt was
		inIRQ     bool   // softirqs from here on run at that interrupt's exit
		syscall   bool   // the current task is inside a system call
		softStart float64
		softCause string
	}
	cpus := map[string]*cpuState{}
	t := softirqTrace{causes: map[string]time.Duration{}}
	secs := func(d float64) time.Duration { return time.Duration(d * 1e9) }
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := lostEvents.FindStringSubmatch(line); m != nil {
			return t, fmt.Errorf("-trace: the trace buffer lost %s events", m[1])
		}
		m := traceLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		ts, _ := strconv.ParseFloat(m[3], 64)
		c := cpus[m[2]]
		if c == nil {
			c = &cpuState{}
			cpus[m[2]] = c
		}
		switch ev, rest := m[4], m[5]; ev {
		case "sched_switch":
			if c.switched && tids[pid] {
				t.onCPU += secs(ts - c.since)
			}
			c.switched, c.since, c.syscall, c.inIRQ = true, ts, false, false
		case "sys_enter":
			c.syscall, c.inIRQ = true, false
		case "sys_exit":
			c.syscall, c.inIRQ = false, false
		case "local_timer_entry":
			c.cause, c.inIRQ = "timer", true
		case "hrtimer_expire_entry":
			if c.inIRQ && c.cause == "timer" {
				if f := hrtimerFn.FindStringSubmatch(rest); f != nil {
					c.cause = "timer " + f[1]
				}
			}
		case "call_function_single_entry", "call_function_entry", "reschedule_entry":
			c.cause, c.inIRQ = "IPI", true
		case "irq_handler_entry":
			c.cause, c.inIRQ = "device interrupt", true
		case "softirq_entry":
			c.softStart = ts
			switch {
			case c.inIRQ:
				c.softCause = c.cause
			case c.syscall:
				c.softCause = "system call"
			default:
				c.softCause = "other"
			}
		case "softirq_exit":
			if c.softStart != 0 && tids[pid] {
				d := secs(ts - c.softStart)
				t.softirq += d
				t.causes[c.softCause] += d
			}
			c.softStart = 0
		}
	}
	return t, sc.Err()
}
