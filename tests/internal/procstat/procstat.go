// Package procstat reads what the benchmark commands (tests/cmd/benchlive,
// tests/cmd/benchscale) compare capturers by, from /proc: a process's CPU
// time and memory, the machine's busy time, an interface's frame counters,
// and a description of the machine for their reports.
package procstat

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Threads lists the thread IDs of pid.
func Threads(pid int) map[int]bool {
	tids := map[int]bool{}
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			tids[n] = true
		}
	}
	return tids
}

// CPU is the CPU time of every live thread of pid: the sum of
// /proc/PID/task/*/schedstat (ns, on-CPU time, user and system).
func CPU(pid int) time.Duration {
	var sum int64
	for tid := range Threads(pid) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/schedstat", pid, tid))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) > 0 {
			n, _ := strconv.ParseInt(f[0], 10, 64)
			sum += n
		}
	}
	return time.Duration(sum)
}

// MachineBusy is the whole machine's non-idle CPU time from /proc/stat.
func MachineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var busy int64
	for i, s := range f[1:] {
		n, _ := strconv.ParseInt(s, 10, 64)
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		busy += n
	}
	return time.Duration(busy) * 10 * time.Millisecond // USER_HZ = 100
}

// DevPackets is the received and transmitted frames of dev in pid's
// network namespace.
func DevPackets(pid int, dev string) (rx, tx int64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/net/dev", pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(name) != dev {
			continue
		}
		x := strings.Fields(rest)
		rx, _ = strconv.ParseInt(x[1], 10, 64)
		tx, _ = strconv.ParseInt(x[9], 10, 64)
		return rx, tx
	}
	return 0, 0
}

// RSS is pid's resident set now (VmRSS) and at its peak (VmHWM), in KiB.
func RSS(pid int) (now, peak int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	field := func(v string) int64 {
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		return n
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			now = field(v)
		} else if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			peak = field(v)
		}
	}
	return now, peak
}

// Machine describes the machine for a report: host name, CPUs, CPU model
// and kernel release.
func Machine() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s, %d CPUs (%s), kernel %s", host, numCPU(), cpuModelName(), kernelRelease())
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "\nprocessor") + 1
}

func cpuModelName() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return "unknown CPU"
}

func kernelRelease() string {
	var u syscall.Utsname
	if syscall.Uname(&u) != nil {
		return "?"
	}
	var b []byte
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return string(b)
}
