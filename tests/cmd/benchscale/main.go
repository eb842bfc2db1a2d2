// Command benchscale measures what go-metro costs at the scale of a busy
// host, beside tcpdump, with public tools and the project's own capture
// generator (internal/synth). Three parts:
//
// rates: a capture of bulk and request/response TCP (synth.Realistic with
// smaller bulk transfers, about 1.25 million frames, headers only) is sent
// with tcpreplay into a veth, -loops times, at each rate of -rates (frames
// per second; "top" is --topspeed, the most this machine sends), while on
// the veth's peer go-metro (`go-metro check`, default capture settings,
// all_remote_hosts, local_ips the capture's local addresses) or `tcpdump
// -s 128 -w /dev/null tcp` captures, alternating, -pairs runs of each. Each
// run starts the capturer, leaves it idle for two seconds, then sends at
// full rate from the first frame: the ring starts from its idle size. Per
// run: the capturer's CPU from tcpreplay's start to half a second after
// the last frame (all its threads, from /proc), per frame sent; its kernel drops
// and the frames it saw, against those the interface received (the kernel
// may drop a frame before any capture when the receiving CPU's backlog is
// full, so tcpreplay's count is not the reference; go-metro counts every
// frame, tcpdump only TCP ones, so a few frames of the interface's own IPv6
// neighbour discovery show as not seen by tcpdump); its RSS idle and at its
// peak; the rate tcpreplay achieved. tcpreplay's own sends run the receive path of the peer (veth
// transmits complete in the sender's softirq), so the kernel bills that
// work to tcpreplay, not to the capturers: their CPU is their own, pinned
// or not. -pin puts tcpreplay on CPU 0 and the capturer on CPU 1; -load
// adds competing work for the whole run (spin: two busy loops; build: a Go
// build of the standard library, over and over, on both CPUs).
//
// flows: `go-metro replay --local-ip 10.1.0.1 --max-flows N'` (N' the power
// of two at or above N) of synth.Concurrent captures of N open
// request/response connections (SYN, SYN/ACK, ACK, request, response, ACK;
// none closed) for each N of -flows: its peak RSS and CPU time (from
// wait4), CPU per packet, and how many flows have RTT samples.
//
// check: `go-metro run` of an instance that replays the same captures
// (interface: file, max_flows N') and reports every second, for
// -check-for, to a DogStatsD stand-in that counts the rtt.avg gauges: its
// peak RSS and CPU, which add to the table's what each collection over a
// full table keeps and allocates.
//
// It needs root (namespaces) and tcpreplay and tcpdump for the rates
// (apt-get install tcpreplay tcpdump):
//
//	sudo make bench-scale
//	sudo go run ./tests/cmd/benchscale -parts rates -rates 250000,top -load build
//	sudo go run ./tests/cmd/benchscale -parts flows -flows 1000,1000000
//	sudo go run ./tests/cmd/benchscale -parts check -flows 262144,1000000 -check-for 40s
//	sudo go run ./tests/cmd/benchscale -gometro old=/tmp/go-metro.old -gometro new=/tmp/go-metro
//
// -gometro takes LABEL=BINARY[,KEY=VALUE...] as benchlive does (KEY=VALUE
// lines go to the instance, snaplen and max_flows to init_config); without
// it ./cmd/go-metro is built and run with its defaults. Captures are
// generated once into -cache.
package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/bits"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/gometro/go-metro/internal/synth"
	"github.com/gometro/go-metro/tests/internal/benchrun"
	"github.com/gometro/go-metro/tests/internal/procstat"
	"github.com/gometro/go-metro/tests/lab"
)

type options struct {
	parts    []string
	rates    []string
	flows    []int
	pairs    int
	loops    int
	load     string
	pin      bool
	cache    string
	tdSnap   int
	checkFor time.Duration
	gometro  benchrun.List
}

func main() {
	var o options
	parts := flag.String("parts", "rates,flows,check", "what to measure: rates (tcpreplay beside tcpdump), flows (replay of many concurrent connections), check (go-metro run reporting over them)")
	rates := flag.String("rates", "100000,250000,500000,1000000,top", "frames per second to send, comma-separated; top is tcpreplay --topspeed")
	flows := flag.String("flows", "1000,10000,100000,1000000", "concurrent connections of the flows part, comma-separated")
	flag.IntVar(&o.pairs, "pairs", 3, "runs of each capturer per rate (alternating)")
	flag.IntVar(&o.loops, "loops", 3, "times tcpreplay sends the capture per run")
	flag.StringVar(&o.load, "load", "none", "competing work during the rates: none, spin (two busy loops) or build (go build -a std, looping)")
	flag.BoolVar(&o.pin, "pin", false, "run tcpreplay on CPU 0 and the capturer on CPU 1 (taskset)")
	flag.StringVar(&o.cache, "cache", filepath.Join(os.TempDir(), "go-metro-benchscale"), "directory for the generated captures (kept between runs)")
	flag.IntVar(&o.tdSnap, "tcpdump-snaplen", 128, "tcpdump -s")
	flag.DurationVar(&o.checkFor, "check-for", 30*time.Second, "how long the check part runs go-metro for each number of flows")
	flag.Var(&o.gometro, "gometro", "LABEL=BINARY[,KEY=VALUE...] go-metro binary and extra settings (repeatable)")
	flag.Parse()
	if os.Getenv(runEnv) != "" {
		os.Exit(runMeasured(flag.Args()))
	}
	if name := os.Getenv(generateEnv); name != "" {
		if err := generate(o.cache, name); err != nil {
			fmt.Fprintf(os.Stderr, "benchscale: %v\n", err)
			os.Exit(1)
		}
		return
	}
	o.parts = strings.Split(*parts, ",")
	o.rates = strings.Split(*rates, ",")
	for _, s := range strings.Split(*flows, ",") {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "benchscale: -flows: %q is not a positive number\n", s)
			os.Exit(2)
		}
		o.flows = append(o.flows, n)
	}
	lab.RunMain("benchscale", " (network namespaces, packet capture)", func(ctx context.Context) error { return run(ctx, &o) })
}

func run(ctx context.Context, o *options) error {
	if err := os.MkdirAll(o.cache, 0o755); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "benchscale")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if len(o.gometro) == 0 {
		bin := filepath.Join(dir, "go-metro")
		fmt.Println("building ./cmd/go-metro")
		if out, err := exec.Command("go", "build", "-o", bin, "./cmd/go-metro").CombinedOutput(); err != nil {
			return fmt.Errorf("go build: %v: %s", err, out)
		}
		o.gometro = benchrun.List{{Label: "go-metro", Bin: bin}}
	}
	fmt.Printf("machine: %s; other load on the machine shows in the spread\n", procstat.Machine())
	for _, part := range o.parts {
		switch part {
		case "rates":
			err = rates(ctx, o, dir)
		case "flows":
			err = flows(ctx, o)
		case "check":
			err = checkRuns(ctx, o, dir)
		default:
			err = fmt.Errorf("-parts: %q: want rates, flows or check", part)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// The captures are generated in a child process of this command
// (generateEnv), not in it: the kernel records a process's peak RSS at
// exec as at least that of the memory it was forked from (Go forks with
// the parent's address space), so a replay started after this process had
// held a generated capture would report this process's peak as its own.

// generateEnv, set to a capture's name, makes the command write that
// capture into -cache and exit.
const generateEnv = "GOMETRO_BENCHSCALE_GENERATE"

// captureGen returns the generator of the capture called name: "mixed",
// the rates part's (synth.Realistic with bulk transfers of 150 MiB instead
// of 500, about 1.25 million frames), or "concurrent-N", the flows part's
// of N connections.
func captureGen(name string) (func() *synth.Capture, error) {
	if name == "mixed" {
		cfg := synth.Realistic()
		cfg.BulkBytes = 150 << 20
		return func() *synth.Capture { return synth.Generate(cfg) }, nil
	}
	if s, ok := strings.CutPrefix(name, "concurrent-"); ok {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			return func() *synth.Capture { return synth.Concurrent(synth.ConcurrentConfig{Flows: n}) }, nil
		}
	}
	return nil, fmt.Errorf("no capture called %q", name)
}

// generate writes the capture called name to cache/name.pcap and its frame
// count beside it (name.pcap.frames); the child process's work.
func generate(cache, name string) error {
	gen, err := captureGen(name)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return err
	}
	path := filepath.Join(cache, name+".pcap")
	c := gen()
	if err := c.WriteFile(path); err != nil {
		return err
	}
	return os.WriteFile(path+".frames", []byte(strconv.Itoa(len(c.Frames))), 0o644)
}

// cached returns the path of the capture called name in cache and its
// frame count, generating it in a child process unless a previous run did.
func cached(cache, name string) (string, int, error) {
	path := filepath.Join(cache, name+".pcap")
	read := func() (int, bool) {
		b, err := os.ReadFile(path + ".frames")
		if err != nil {
			return 0, false
		}
		n, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if _, serr := os.Stat(path); err != nil || serr != nil {
			return 0, false
		}
		return n, true
	}
	if n, ok := read(); ok {
		return path, n, nil
	}
	fmt.Printf("generating %s\n", path)
	self, err := os.Executable()
	if err != nil {
		return "", 0, err
	}
	cmd := exec.Command(self, "-cache", cache)
	cmd.Env = append(os.Environ(), generateEnv+"="+name)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", 0, fmt.Errorf("generating %s: %v: %s", path, err, out)
	}
	n, ok := read()
	if !ok {
		return "", 0, fmt.Errorf("generating %s: no frame count written", path)
	}
	return path, n, nil
}

// ---- rates ----

// rateResult is one capturer's run at one rate.
type rateResult struct {
	label    string
	sent     int64         // frames tcpreplay sent
	rx       int64         // frames the capture interface received (a frame the kernel drops before it cannot be seen)
	pps      float64       // the rate tcpreplay achieved
	cpu      time.Duration // the capturer's, from the first frame to 0.5 s after the last
	machine  time.Duration // the whole machine's busy time over the same window
	seen     int64         // frames the capturer processed; -1 if unknown
	drops    int64         // kernel ring drops; -1 if unknown
	idleRSS  int64         // KiB, before the traffic
	peakRSS  int64         // KiB, the process's peak
	ring     int64         // go-metro's ring at the end, bytes (all workers'); -1 for tcpdump
	failures int64         // frames tcpreplay failed to send
}

func (r *rateResult) nsPerFrame() float64 {
	if r.sent == 0 {
		return 0
	}
	return float64(r.cpu) / float64(r.sent)
}

func rates(ctx context.Context, o *options, dir string) (err error) {
	for _, tool := range []string{"tcpreplay", "tcpdump", "taskset"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (apt-get install tcpreplay tcpdump util-linux): %w", tool, err)
		}
	}
	pcap, frames, err := cached(o.cache, "mixed")
	if err != nil {
		return err
	}
	l, err := lab.Start(lab.Config{KernelBridge: true})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := l.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	stopLoad, err := startLoad(o.load, dir)
	if err != nil {
		return err
	}
	defer stopLoad()
	fmt.Printf("rates: %s (%d frames) sent %d times per run by tcpreplay into %s's veth; capture on its peer; load: %s; %s\n",
		filepath.Base(pcap), frames, o.loops, l.M.Name, o.load, map[bool]string{true: "pinned: tcpreplay on CPU 0, the capturer on CPU 1", false: "not pinned"}[o.pin])
	for _, rate := range o.rates {
		var all []rateResult
		for i := 0; i < o.pairs; i++ {
			for j := 0; j <= len(o.gometro); j++ {
				var v *benchrun.Variant // the last of each round is tcpdump
				if j < len(o.gometro) {
					v = &o.gometro[j]
				}
				r, err := measureRate(ctx, o, l, dir, pcap, rate, v)
				if err != nil {
					return fmt.Errorf("%s at %s, run %d: %w", r.label, rate, i+1, err)
				}
				printRate(rate, &r)
				all = append(all, r)
			}
		}
		summarizeRates(rate, all)
	}
	return nil
}

// startLoad starts the competing work and returns what stops it.
func startLoad(load, dir string) (stop func(), err error) {
	var cmds []*exec.Cmd
	switch load {
	case "none":
	case "spin":
		for range 2 {
			cmds = append(cmds, exec.Command("sh", "-c", "while :; do :; done"))
		}
	case "build":
		// -a rebuilds every package each time; GOFLAGS and GOCACHE keep
		// the build away from the caller's settings and cache.
		c := exec.Command("sh", "-c", "while :; do go build -a -p 2 std >/dev/null 2>&1; done")
		c.Env = append(os.Environ(), "GOCACHE="+filepath.Join(dir, "gocache"), "GOFLAGS=")
		cmds = append(cmds, c)
	default:
		return nil, fmt.Errorf("-load %q: want none, spin or build", load)
	}
	stop = func() {
		for _, c := range cmds {
			syscall.Kill(-c.Process.Pid, syscall.SIGKILL) // the loop and what it started
			c.Wait()
		}
	}
	for i, c := range cmds {
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := c.Start(); err != nil {
			cmds = cmds[:i]
			stop()
			return nil, err
		}
	}
	if len(cmds) > 0 {
		time.Sleep(2 * time.Second) // let it get going
	}
	return stop, nil
}

func (o *options) taskset(cpu, name string, args ...string) *exec.Cmd {
	if !o.pin {
		return exec.Command(name, args...)
	}
	return exec.Command("taskset", append([]string{"-c", cpu, name}, args...)...)
}

// writeConfig writes v's configuration: one instance on A's veth, every
// remote host, the capture's local addresses.
func writeConfig(path, iface string, v *benchrun.Variant) error {
	var b strings.Builder
	fmt.Fprintf(&b, "init_config:\n")
	for _, s := range v.Init {
		fmt.Fprintf(&b, "  %s\n", s)
	}
	fmt.Fprintf(&b, "instances:\n  - interface: %s\n    all_remote_hosts: true\n    local_ips: [%q, %q]\n    reverse_dns: false\n",
		iface, synth.LocalIPv4, synth.LocalIPv6)
	for _, s := range v.Inst {
		fmt.Fprintf(&b, "    %s\n", s)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// measureRate runs one capturer through one run: start, idle, send, drain,
// stop. A nil v runs tcpdump.
func measureRate(ctx context.Context, o *options, l *lab.Lab, dir, pcap, rate string, v *benchrun.Variant) (rateResult, error) {
	r := rateResult{seen: -1, drops: -1, ring: -1}
	var cmd *exec.Cmd
	if v != nil {
		r.label = v.Label
		cfg := filepath.Join(dir, v.Label+".yaml")
		if err := writeConfig(cfg, l.AIf, v); err != nil {
			return r, err
		}
		cmd = o.taskset("1", v.Bin, "check", "--config", cfg, "--duration", "24h", "--json")
	} else {
		r.label = fmt.Sprintf("tcpdump -s %d", o.tdSnap)
		cmd = o.taskset("1", "tcpdump", "-i", l.AIf, "-n", "-s", strconv.Itoa(o.tdSnap), "-w", "/dev/null", "tcp")
	}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	capturer, err := benchrun.StartCapturer(l.A.Start, cmd, 30*time.Second)
	if err != nil {
		return r, err
	}
	defer capturer.Stop()
	pid := capturer.Pid()
	if !benchrun.Sleep(ctx, 2*time.Second) {
		return r, ctx.Err()
	}
	if capturer.Exited() {
		return r, fmt.Errorf("exited early: %s", stderr.String())
	}
	r.idleRSS, _ = procstat.RSS(pid)

	args := []string{"-i", l.MAIf, "-K", "--loop", strconv.Itoa(o.loops)}
	if rate == "top" {
		args = append(args, "--topspeed")
	} else {
		args = append(args, "--pps", rate)
	}
	replay := o.taskset("0", "tcpreplay", append(args, pcap)...)
	var rout strings.Builder
	replay.Stdout, replay.Stderr = &rout, &rout
	// The window starts with tcpreplay, which first loads the capture
	// into memory (-K, so that the disk never sets the rate): the capturer
	// idles meanwhile.
	cpu0, m0 := procstat.CPU(pid), procstat.MachineBusy()
	rx0, _ := procstat.DevPackets(pid, l.AIf)
	if err := l.M.Start(replay); err != nil {
		return r, err
	}
	if err := replay.Wait(); err != nil {
		return r, fmt.Errorf("tcpreplay: %v: %s", err, rout.String())
	}
	if !benchrun.Sleep(ctx, 500*time.Millisecond) {
		return r, ctx.Err()
	}
	cpu1, m1 := procstat.CPU(pid), procstat.MachineBusy()
	rx1, _ := procstat.DevPackets(pid, l.AIf)
	r.cpu, r.machine, r.rx = cpu1-cpu0, m1-m0, rx1-rx0
	_, r.peakRSS = procstat.RSS(pid)
	if r.sent, r.pps, r.failures, err = tcpreplayCounts(rout.String()); err != nil {
		return r, err
	}
	if err := capturer.Stop(); err != nil {
		return r, fmt.Errorf("%v: %s", err, stderr.String())
	}
	if v != nil {
		r.seen, r.drops, r.ring, err = checkCounts(stdout.String())
		if err != nil {
			return r, fmt.Errorf("%v: %s", err, stderr.String())
		}
	} else {
		td := benchrun.ParseTcpdumpSummary(stderr.String())
		r.seen, r.drops = td.Captured, td.Dropped
	}
	return r, nil
}

var (
	actualRe = regexp.MustCompile(`Actual: (\d+) packets`)
	ratedRe  = regexp.MustCompile(`Rated: [\d.]+ Bps, [\d.]+ Mbps, ([\d.]+) pps`)
	failedRe = regexp.MustCompile(`Failed packets:\s+(\d+)`)
)

// tcpreplayCounts reads tcpreplay's summary.
func tcpreplayCounts(out string) (sent int64, pps float64, failed int64, err error) {
	m := actualRe.FindStringSubmatch(out)
	p := ratedRe.FindStringSubmatch(out)
	if m == nil || p == nil {
		return 0, 0, 0, fmt.Errorf("no summary in tcpreplay's output: %s", out)
	}
	sent, _ = strconv.ParseInt(m[1], 10, 64)
	pps, _ = strconv.ParseFloat(p[1], 64)
	if f := failedRe.FindStringSubmatch(out); f != nil {
		failed, _ = strconv.ParseInt(f[1], 10, 64)
	}
	return sent, pps, failed, nil
}

// checkCounts reads go_metro.packets, go_metro.kernel.drops and
// go_metro.capture.ring_size from the JSON of `go-metro check --json`.
func checkCounts(out string) (seen, drops, ring int64, err error) {
	var recs []struct {
		Metrics []struct {
			Metric string  `json:"metric"`
			Value  float64 `json:"value"`
		} `json:"metrics"`
	}
	if err := json.Unmarshal([]byte(out), &recs); err != nil {
		return -1, -1, -1, fmt.Errorf("go-metro check's output: %w", err)
	}
	for _, rec := range recs {
		for _, m := range rec.Metrics {
			switch m.Metric {
			case "go_metro.packets":
				seen += int64(m.Value)
			case "go_metro.kernel.drops":
				drops += int64(m.Value)
			case "go_metro.capture.ring_size":
				ring += int64(m.Value)
			}
		}
	}
	return seen, drops, ring, nil
}

func count(n int64) string {
	if n < 0 {
		return "?"
	}
	return strconv.FormatInt(n, 10)
}

func printRate(rate string, r *rateResult) {
	ring := ""
	if r.ring >= 0 {
		ring = fmt.Sprintf("  ring %d MiB", r.ring>>20)
	}
	fmt.Printf("  %-8s %-16s %8.0f frames/s  cpu %5d ms (%5.1f ns/frame)  machine %6d ms  seen %s of %d received (%d sent)  drops %s  rss idle %6d KiB  peak %6d KiB%s\n",
		rate, r.label, r.pps, r.cpu.Milliseconds(), r.nsPerFrame(), r.machine.Milliseconds(), count(r.seen), r.rx, r.sent, count(r.drops), r.idleRSS, r.peakRSS, ring)
}

func median(xs []float64) float64 {
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

func summarizeRates(rate string, all []rateResult) {
	var labels []string
	for _, r := range all {
		if !slices.Contains(labels, r.label) {
			labels = append(labels, r.label)
		}
	}
	type row struct {
		pps, ns, lo, hi, idle, peak float64
		drops, runsDropping, missed int64
		runs                        int
	}
	rows := map[string]row{}
	for _, lb := range labels {
		var pps, ns, idle, peak []float64
		var x row
		for _, r := range all {
			if r.label != lb {
				continue
			}
			x.runs++
			pps = append(pps, r.pps)
			ns = append(ns, r.nsPerFrame())
			idle = append(idle, float64(r.idleRSS))
			peak = append(peak, float64(r.peakRSS))
			if r.drops > 0 {
				x.drops += r.drops
				x.runsDropping++
			}
			if r.seen >= 0 && r.seen < r.rx {
				x.missed += r.rx - r.seen
			}
		}
		x.lo, x.hi = slices.Min(ns), slices.Max(ns)
		x.pps, x.ns, x.idle, x.peak = median(pps), median(ns), median(idle), median(peak)
		rows[lb] = x
	}
	ref := rows[labels[len(labels)-1]].ns // tcpdump is last
	fmt.Printf("\nrate %s: medians of %d runs each; CPU per frame sent, from the first frame to 0.5 s after the last\n", rate, rows[labels[0]].runs)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "capturer\tframes/s\tns/frame\t(range)\tvs tcpdump\tkernel drops (runs)\tframes received, not seen\tidle RSS MiB\tpeak RSS MiB")
	for _, lb := range labels {
		x := rows[lb]
		fmt.Fprintf(tw, "%s\t%.0f\t%.1f\t%.1f-%.1f\t%.2fx\t%d (%d of %d)\t%d\t%.1f\t%.1f\n",
			lb, x.pps, x.ns, x.lo, x.hi, x.ns/ref, x.drops, x.runsDropping, x.runs, x.missed, x.idle/1024, x.peak/1024)
	}
	tw.Flush()
	fmt.Println()
}

// ---- flows ----

// flowResult is one replay of a concurrent-connections capture.
type flowResult struct {
	label   string
	flows   int
	packets int
	peakRSS int64 // KiB
	cpu     time.Duration
	wall    time.Duration
	timed   int // flows with RTT samples
	listed  int // flows listed
}

func flows(ctx context.Context, o *options) error {
	fmt.Printf("flows: go-metro replay --local-ip %s --max-flows N' of captures of N open request/response connections\n", synth.LocalIPv4)
	var all []flowResult
	for _, n := range o.flows {
		pcap, frames, err := cached(o.cache, fmt.Sprintf("concurrent-%d", n))
		if err != nil {
			return err
		}
		for j := range o.gometro {
			r, err := replayFlows(ctx, &o.gometro[j], pcap, n, frames)
			if err != nil {
				return fmt.Errorf("%s, %d flows: %w", o.gometro[j].Label, n, err)
			}
			fmt.Printf("  %-16s %8d flows  %9d packets  peak RSS %8d KiB  cpu %6d ms (%6.1f ns/packet)  wall %6d ms  timed %d of %d listed\n",
				r.label, r.flows, r.packets, r.peakRSS, r.cpu.Milliseconds(), float64(r.cpu)/float64(r.packets), r.wall.Milliseconds(), r.timed, r.listed)
			all = append(all, r)
		}
	}
	fmt.Println("\nflows: peak RSS and CPU of the whole replay (reading the file and printing the table included); per flow: above the smallest N's")
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "go-metro\tflows\tpackets\tpeak RSS MiB\tbytes/flow\tns/packet\twall s\tflows timed")
	base := map[string]flowResult{}
	for _, r := range all {
		b, ok := base[r.label]
		if !ok || r.flows < b.flows {
			base[r.label] = r
		}
	}
	slices.SortStableFunc(all, func(a, b flowResult) int { return cmp.Compare(a.label, b.label) })
	for _, r := range all {
		per := "-"
		if b := base[r.label]; r.flows > b.flows {
			per = fmt.Sprintf("%.0f", float64(r.peakRSS-b.peakRSS)*1024/float64(r.flows-b.flows))
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f\t%s\t%.1f\t%.2f\t%d of %d\n", r.label, r.flows, r.packets, float64(r.peakRSS)/1024, per,
			float64(r.cpu)/float64(r.packets), r.wall.Seconds(), r.timed, r.flows)
	}
	tw.Flush()
	fmt.Println()
	return nil
}

// replayFlows replays pcap (n connections, frames packets) with v and
// counts the flows its table lists with samples.
func replayFlows(ctx context.Context, v *benchrun.Variant, pcap string, n, frames int) (flowResult, error) {
	r := flowResult{label: v.Label, flows: n, packets: frames}
	maxFlows := 1 << bits.Len(uint(n-1))
	start := time.Now()
	m, err := startMeasured(ctx, 0, v.Bin, "replay", "--local-ip", synth.LocalIPv4.String(), "--max-flows", strconv.Itoa(maxFlows), pcap)
	if err != nil {
		return r, err
	}
	r.timed, r.listed, err = countTimed(m.stdout)
	peak, cpu, werr := m.wait()
	if werr != nil {
		return r, werr
	}
	if err != nil {
		return r, err
	}
	r.wall, r.peakRSS, r.cpu = time.Since(start), peak, cpu
	return r, nil
}

// measured is a command started through a runner (runMeasured).
type measured struct {
	cmd    *exec.Cmd
	stdout io.ReadCloser
	stderr strings.Builder
	usage  *os.File // the runner's fd 3, read end
}

// startMeasured starts args through a runner, which sends the command
// SIGINT after stopAfter (0: never). The caller reads stdout to its end,
// then calls wait.
func startMeasured(ctx context.Context, stopAfter time.Duration, args ...string) (*measured, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	// Through a runner: see runEnv.
	m := &measured{cmd: exec.CommandContext(ctx, self, append([]string{"--"}, args...)...)}
	m.cmd.Env = append(os.Environ(), runEnv+"=1", fmt.Sprintf("%s=%d", stopAfterEnv, stopAfter))
	usageR, usageW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	m.usage = usageR
	m.cmd.ExtraFiles = []*os.File{usageW} // the runner's fd 3
	if m.stdout, err = m.cmd.StdoutPipe(); err != nil {
		usageR.Close()
		usageW.Close()
		return nil, err
	}
	m.cmd.Stderr = &m.stderr
	err = m.cmd.Start()
	usageW.Close()
	if err != nil {
		usageR.Close()
		return nil, err
	}
	return m, nil
}

// wait waits for the command and returns its peak RSS (KiB) and CPU time.
func (m *measured) wait() (peakRSS int64, cpu time.Duration, err error) {
	defer m.usage.Close()
	usage, _ := io.ReadAll(m.usage)
	if err := m.cmd.Wait(); err != nil {
		return 0, 0, fmt.Errorf("%v: %s", err, m.stderr.String())
	}
	var ns int64
	if _, err := fmt.Sscan(string(usage), &peakRSS, &ns); err != nil {
		return 0, 0, fmt.Errorf("reading the runner's resource usage %q: %v", usage, err)
	}
	return peakRSS, time.Duration(ns), nil
}

// runEnv makes the command a runner: it runs its arguments as a command,
// passing its standard streams through, and writes the command's peak RSS
// (KiB) and CPU time (ns) to fd 3 (runMeasured). Linux records at exec, as
// a process's peak RSS, at least that of the memory it was forked from,
// and Go forks with the parent's address space: a replay started by this
// command directly would report this command's peak (39 MiB after the
// rates part) whenever its own is smaller. Started from a runner that
// has only just started, it reports its own.
const runEnv = "GOMETRO_BENCHSCALE_RUN"

// stopAfterEnv is how long the runner lets its command run before it
// sends it SIGINT, in nanoseconds; 0: until it exits.
const stopAfterEnv = "GOMETRO_BENCHSCALE_STOP_AFTER"

// runMeasured is the runner's work; it returns the exit code.
func runMeasured(args []string) int {
	usage := os.NewFile(3, "usage")
	if len(args) == 0 || usage == nil {
		fmt.Fprintln(os.Stderr, "benchscale: runner: no command, or no fd 3")
		return 2
	}
	stopAfter, _ := strconv.ParseInt(os.Getenv(stopAfterEnv), 10, 64)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // cancelled with the runner
	err := cmd.Start()
	if err == nil {
		if stopAfter > 0 {
			stop := time.AfterFunc(time.Duration(stopAfter), func() { _ = cmd.Process.Signal(os.Interrupt) })
			defer stop.Stop()
		}
		err = cmd.Wait()
	}
	if cmd.ProcessState == nil {
		fmt.Fprintf(os.Stderr, "benchscale: runner: %v\n", err)
		return 2
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	fmt.Fprintf(usage, "%d %d\n", ru.Maxrss, syscall.TimevalToNsec(ru.Utime)+syscall.TimevalToNsec(ru.Stime))
	return cmd.ProcessState.ExitCode()
}

// countTimed reads replay's table: rows whose SAMPLES column is not 0.
func countTimed(out io.Reader) (timed, listed int, err error) {
	sc := bufio.NewScanner(out)
	header := true
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if header {
			header = false
			continue
		}
		if len(f) < 3 || !strings.Contains(f[0], ":") {
			continue // the summary line
		}
		listed++
		if f[2] != "0" {
			timed++
		}
	}
	return timed, listed, sc.Err()
}
