// Command benchlive measures what a live go-metro costs next to tcpdump at
// the same traffic: it builds the namespace lab (A -- kernel bridge in M --
// B, veths with offloads off), runs iperf3 from A to B, and captures on A's
// veth, alternately, with `go-metro run` (one instance, `ips:` B's address)
// and with `tcpdump -s 128 -w /dev/null host B` (the same kernel filter,
// nothing done per packet). For each capturer it reads, from /proc, the CPU
// time of all its threads over the measurement window (normalised to 10 s),
// its RSS before the traffic starts (idle) and at the end, the packet rate
// on A's veth and the kernel's drop count of its ring (tcpdump's summary;
// go-metro's go_metro.kernel.drops, received over DogStatsD). It prints each
// run and the medians per capturer.
//
// Two traffic rates: "shaped", a tbf qdisc on A's egress limiting the
// upload to about 100k packets/s in total (data plus ACKs), and "max",
// unshaped, the most iperf3 makes on this machine. Runs alternate (go-metro,
// tcpdump, go-metro, ...) so that load from elsewhere on a shared machine
// falls on both; CPU time, not wall time, is what is compared.
//
// CPU time here is what the kernel bills to the capturer, and without IRQ
// time accounting that includes the receive softirqs of any traffic that
// it ran in the capturer's context (see cpus): -pin keeps them off the
// capturer's CPU, -softirq measures their share with perf instead, and
// -trace measures it exactly from the kernel's trace events and names what
// started it (see trace.go).
//
// It needs root, iperf3 and tcpdump (apt-get install iperf3 tcpdump; and
// linux-perf for -softirq):
//
//	sudo go run ./tests/cmd/benchlive                   # or: make bench-live
//	sudo go run ./tests/cmd/benchlive -pairs 5 -rates shaped
//	sudo go run ./tests/cmd/benchlive -pin              # make bench-live BENCH_LIVE_FLAGS=-pin
//	sudo go run ./tests/cmd/benchlive -softirq -rates shaped
//	sudo go run ./tests/cmd/benchlive -trace -rates shaped
//	sudo go run ./tests/cmd/benchlive -gometro old=/tmp/go-metro.old \
//	    -gometro new=/tmp/go-metro -gometro new-128=/tmp/go-metro,snaplen=128
//
// -gometro takes LABEL=BINARY[,KEY=VALUE...]: KEY=VALUE pairs are added to
// the configuration (snaplen and max_flows to init_config, anything else to
// the instance). Without -gometro it builds ./cmd/go-metro and runs it with
// its defaults.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/gometro/go-metro/tests/internal/benchrun"
	"github.com/gometro/go-metro/tests/internal/procstat"
	"github.com/gometro/go-metro/tests/lab"
)

// result is one capturer's run.
type result struct {
	label    string
	cpu      time.Duration // all threads, over the window, scaled to 10 s
	machine  time.Duration // whole machine busy time over the window, scaled to 10 s
	pps      float64       // frames/s on A's veth (both directions)
	idleCPU  time.Duration // all threads, before traffic, scaled to 10 s
	idleRSS  int64         // KiB, before traffic
	loadRSS  int64         // KiB, at the end of the traffic
	softirq  float64       // share of cpu that was softirq work (-softirq, -trace); -1 if not measured
	trace    softirqTrace  // -trace's findings
	drops    int64         // kernel ring drops; -1 if unknown
	received int64         // frames the capturer's socket received; -1 if unknown
}

func main() {
	var vs benchrun.List
	pairs := flag.Int("pairs", 3, "runs of each capturer per rate (alternating)")
	window := flag.Duration("window", 10*time.Second, "measurement window per run")
	rates := flag.String("rates", "shaped,max", "traffic rates to measure: shaped (tbf, about 100k packets/s) and/or max")
	shape := flag.String("shape", "660mbit", "tbf rate of A's egress for the shaped runs")
	tdSnap := flag.Int("tcpdump-snaplen", 128, "tcpdump -s")
	softirq := flag.Bool("softirq", false, "sample each capturer with perf over the window and report the share of its CPU that was softirq work (apt-get install linux-perf)")
	trace := flag.Bool("trace", false, "trace each capturer's window with the kernel's trace events (tracefs) and report the share of its CPU that was softirq work, by what started it")
	pin := flag.Bool("pin", false, "run iperf3 on CPU 0 and the capturer on CPU 1 (taskset), so that no capturer is charged for the traffic's softirq work")
	flag.Var(&vs, "gometro", "LABEL=BINARY[,KEY=VALUE...] go-metro binary and extra settings (repeatable)")
	flag.Parse()
	lab.RunMain("benchlive", " (network namespaces, packet capture)", func(ctx context.Context) error {
		if *softirq && *trace {
			return errors.New("-softirq and -trace both measure the softirq share: choose one")
		}
		return run(ctx, vs, *pairs, *window, strings.Split(*rates, ","), *shape, *tdSnap, cpus{pinned: *pin, softirq: *softirq, trace: *trace})
	})
}

// cpus pins the traffic and the capturer to different CPUs when pinned.
// Unpinned, the kernel runs the traffic's receive softirqs in whichever
// task is on the CPU when they are due (at an interrupt's exit, or when a
// task re-enables them, as packet_poll does each time a capturer waits),
// and, with no IRQ time accounting, charges them to that task: in
// profiles, 5-9 % of tcpdump's CPU and 10-34 % of go-metro's was iperf3's
// receive path, which makes most of the run-to-run spread.
//
// softirq measures that share instead (see softirqShare), trace measures it
// exactly and by cause (see traceWindow).
type cpus struct{ pinned, softirq, trace bool }

func (c cpus) command(cpu, name string, args ...string) *exec.Cmd {
	if !c.pinned {
		return exec.Command(name, args...)
	}
	return exec.Command("taskset", append([]string{"-c", cpu, name}, args...)...)
}

func (c cpus) traffic(name string, args ...string) *exec.Cmd  { return c.command("0", name, args...) }
func (c cpus) capturer(name string, args ...string) *exec.Cmd { return c.command("1", name, args...) }

func run(ctx context.Context, vs benchrun.List, pairs int, window time.Duration, rates []string, shape string, tdSnap int, pin cpus) (err error) {
	for _, tool := range []string{"iperf3", "tcpdump", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (apt-get install iperf3 tcpdump iproute2): %w", tool, err)
		}
	}
	dir, err := os.MkdirTemp("", "benchlive")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if len(vs) == 0 {
		bin := filepath.Join(dir, "go-metro")
		fmt.Println("building ./cmd/go-metro")
		if out, err := exec.Command("go", "build", "-o", bin, "./cmd/go-metro").CombinedOutput(); err != nil {
			return fmt.Errorf("go build: %v: %s", err, out)
		}
		vs = benchrun.List{{Label: "go-metro", Bin: bin}}
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
	srv := pin.traffic("iperf3", "-s", "-B", lab.AddrB4.String())
	if err := l.B.Start(srv); err != nil {
		return err
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	time.Sleep(300 * time.Millisecond)

	fmt.Printf("machine: %s; other load on the machine shows in the spread\n", procstat.Machine())
	if pin.pinned {
		fmt.Println("pinned: iperf3 (both ends) on CPU 0, the capturer on CPU 1")
	}
	for _, rate := range rates {
		switch rate {
		case "shaped":
			// burst: at least one timer tick of traffic at the rate, so tbf
			// does not cap below it.
			if _, err := l.A.Run("tc", "qdisc", "replace", "dev", l.AIf, "root", "tbf", "rate", shape, "burst", "256kb", "latency", "20ms"); err != nil {
				return err
			}
		case "max":
			if _, err := l.A.Run("tc", "qdisc", "replace", "dev", l.AIf, "root", "pfifo_fast"); err != nil {
				return err
			}
		default:
			return fmt.Errorf("rate %q: want shaped or max", rate)
		}
		var all []result
		for i := 0; i < pairs; i++ {
			for j := 0; j <= len(vs); j++ {
				var v *benchrun.Variant // the last of each round is tcpdump
				if j < len(vs) {
					v = &vs[j]
				}
				r, err := measure(ctx, l, dir, window, v, tdSnap, pin)
				if err != nil {
					return fmt.Errorf("%s run %d: %w", r.label, i+1, err)
				}
				print1(rate, r)
				all = append(all, r)
			}
		}
		summary(rate, all, window)
	}
	return nil
}

// writeConfig writes v's configuration: one instance on A's veth timing B,
// metrics to the DogStatsD listener on port, reported every 2 s so that the
// drop counter arrives before the run ends.
func writeConfig(path string, l *lab.Lab, port int, init, inst []string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "init_config:\n  statsd_port: %d\n", port)
	for _, s := range init {
		fmt.Fprintf(&b, "  %s\n", s)
	}
	fmt.Fprintf(&b, "instances:\n  - interface: %s\n    ips: [%q]\n    reverse_dns: false\n    min_collection_interval: 2\n", l.AIf, lab.AddrB4)
	for _, s := range inst {
		fmt.Fprintf(&b, "    %s\n", s)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// statsd listens for DogStatsD packets in A and sums go_metro.kernel.drops
// and go_metro.packets.
type statsd struct {
	conn  net.PacketConn
	mu    sync.Mutex
	drops int64
	pkts  int64
	seen  int // reports with a drop counter
	done  chan struct{}
}

func listenStatsd(l *lab.Lab) (*statsd, error) {
	s := &statsd{done: make(chan struct{})}
	err := l.A.Do(func() (err error) {
		s.conn, err = net.ListenPacket("udp", "127.0.0.1:0")
		return err
	})
	if err != nil {
		return nil, err
	}
	go func() {
		defer close(s.done)
		buf := make([]byte, 65536)
		for {
			n, _, err := s.conn.ReadFrom(buf)
			if err != nil {
				return
			}
			for _, line := range strings.Split(string(buf[:n]), "\n") {
				name, rest, ok := strings.Cut(line, ":")
				if !ok {
					continue
				}
				val, _, _ := strings.Cut(rest, "|")
				f, err := strconv.ParseFloat(val, 64)
				if err != nil {
					continue
				}
				s.mu.Lock()
				switch name {
				case "go_metro.kernel.drops":
					s.drops += int64(f)
					s.seen++
				case "go_metro.packets":
					s.pkts += int64(f)
				}
				s.mu.Unlock()
			}
		}
	}()
	return s, nil
}

func (s *statsd) reports() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen
}

func (s *statsd) close() { s.conn.Close(); <-s.done }

// measure runs one capturer through: start, idle reading, traffic, window,
// stop.
// A nil v runs tcpdump with snaplen tdSnap.
func measure(ctx context.Context, l *lab.Lab, dir string, window time.Duration, v *benchrun.Variant, tdSnap int, pin cpus) (result, error) {
	r := result{drops: -1, received: -1, softirq: -1}
	var sd *statsd
	var cmd *exec.Cmd
	gometro := v != nil
	if gometro {
		var err error
		if sd, err = listenStatsd(l); err != nil {
			return r, err
		}
		defer sd.close()
		r.label = v.Label
		cfg := filepath.Join(dir, v.Label+".yaml")
		port := sd.conn.LocalAddr().(*net.UDPAddr).Port
		if err := writeConfig(cfg, l, port, v.Init, v.Inst); err != nil {
			return r, err
		}
		cmd = pin.capturer(v.Bin, "run", "--config", cfg)
	} else {
		r.label = fmt.Sprintf("tcpdump -s %d", tdSnap)
		cmd = pin.capturer("tcpdump", "-i", l.AIf, "-n", "-s", strconv.Itoa(tdSnap), "-w", "/dev/null", "host", lab.AddrB4.String())
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.Stdout = &stderr
	capturer, err := benchrun.StartCapturer(l.A.Start, cmd, 5*time.Second)
	if err != nil {
		return r, err
	}
	defer capturer.Stop()
	pid := capturer.Pid()
	// Let it open its socket and settle, then read the idle CPU and RSS.
	if !benchrun.Sleep(ctx, time.Second) {
		return r, ctx.Err()
	}
	idle0 := procstat.CPU(pid)
	if !benchrun.Sleep(ctx, 2*time.Second) {
		return r, ctx.Err()
	}
	if capturer.Exited() {
		return r, fmt.Errorf("exited early: %s", stderr.String())
	}
	r.idleCPU = (procstat.CPU(pid) - idle0) * 5
	r.idleRSS, _ = procstat.RSS(pid)

	const warm = time.Second
	client := pin.traffic("iperf3", "-c", lab.AddrB4.String(), "-t", strconv.Itoa(int((warm+window).Seconds())+2), "-i", "0")
	var cout strings.Builder
	client.Stdout, client.Stderr = &cout, &cout
	if err := l.A.Start(client); err != nil {
		return r, err
	}
	cdone := make(chan error, 1)
	go func() { cdone <- client.Wait() }()
	if !benchrun.Sleep(ctx, warm) {
		client.Process.Kill()
		return r, ctx.Err()
	}
	var share chan float64
	if pin.softirq {
		share = softirqShare(pid, window, dir)
	}
	type traced struct {
		t   softirqTrace
		err error
	}
	var tr chan traced
	if pin.trace {
		tr = make(chan traced, 1)
		go func() {
			t, err := traceWindow(pid, window)
			tr <- traced{t, err}
		}()
	}
	cpu0, pk0, m0 := procstat.CPU(pid), devPackets(pid, l.AIf), procstat.MachineBusy()
	t0 := time.Now()
	if !benchrun.Sleep(ctx, window) {
		client.Process.Kill()
		return r, ctx.Err()
	}
	cpu1, pk1, m1 := procstat.CPU(pid), devPackets(pid, l.AIf), procstat.MachineBusy()
	if share != nil {
		r.softirq = <-share
	}
	if tr != nil {
		res := <-tr
		if res.err != nil {
			client.Process.Kill()
			return r, res.err
		}
		r.trace, r.softirq = res.t, res.t.share()
	}
	el := time.Since(t0)
	r.loadRSS, _ = procstat.RSS(pid)
	if err := <-cdone; err != nil {
		return r, fmt.Errorf("iperf3: %v: %s", err, cout.String())
	}
	scale := float64(10*time.Second) / float64(el)
	r.cpu = time.Duration(float64(cpu1-cpu0) * scale)
	r.machine = time.Duration(float64(m1-m0) * scale)
	r.pps = float64(pk1-pk0) / el.Seconds()
	if gometro {
		// Wait for one more report so the drop counter covers the traffic.
		n := sd.reports()
		for deadline := time.Now().Add(5 * time.Second); sd.reports() == n && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if err := capturer.Stop(); err != nil {
		return r, fmt.Errorf("%v: %s", err, stderr.String())
	}
	if gometro {
		sd.mu.Lock()
		if sd.seen > 0 {
			r.drops, r.received = sd.drops, sd.pkts
		}
		sd.mu.Unlock()
	} else {
		td := benchrun.ParseTcpdumpSummary(stderr.String())
		r.received, r.drops = td.Received, td.Dropped
	}
	return r, nil
}

// softirqShare samples pid's threads with perf for window and sends the
// share of the samples whose stack holds handle_softirqs (__do_softirq
// before Linux 6.8): receive work of any traffic that the kernel ran in
// the capturer's context and billed to it. -1 if perf failed.
func softirqShare(pid int, window time.Duration, dir string) chan float64 {
	out := make(chan float64, 1)
	data := filepath.Join(dir, "perf.data")
	rec := exec.Command("perf", "record", "-F", "999", "-g", "-q", "-o", data, "-p", strconv.Itoa(pid), "--", "sleep", strconv.FormatFloat(window.Seconds(), 'f', 1, 64))
	if err := rec.Start(); err != nil {
		out <- -1
		return out
	}
	go func() {
		if rec.Wait() != nil {
			out <- -1
			return
		}
		b, err := exec.Command("perf", "script", "-i", data).Output()
		if err != nil {
			out <- -1
			return
		}
		var samples, soft int
		inSoft := false
		for _, line := range strings.Split(string(b), "\n") {
			switch {
			case line == "":
			case line[0] != ' ' && line[0] != '\t': // a sample's header
				samples++
				if inSoft {
					soft++
				}
				inSoft = false
			case strings.Contains(line, "handle_softirqs") || strings.Contains(line, "__do_softirq"):
				inSoft = true
			}
		}
		if inSoft {
			soft++
		}
		if samples == 0 {
			out <- -1
			return
		}
		out <- float64(soft) / float64(samples)
	}()
	return out
}

func print1(rate string, r result) {
	soft := ""
	if r.softirq >= 0 {
		soft = fmt.Sprintf("  softirq %.0f %%", 100*r.softirq)
	}
	if r.trace.softirq > 0 {
		soft += " (" + r.trace.topCauses(3) + ")"
	}
	fmt.Printf("  %-6s %-22s cpu %4d ms/10s (%4.0f ns/pkt)  %6.0f pkt/s  machine %5d ms/10s  idle cpu %3d ms/10s  rss idle %6d KiB  end %6d KiB  kernel drops %s of %s%s\n",
		rate, r.label, r.cpu.Milliseconds(), nsPerPacket(r), r.pps, r.machine.Milliseconds(), r.idleCPU.Milliseconds(), r.idleRSS, r.loadRSS, count(r.drops), count(r.received), soft)
}

// nsPerPacket is CPU per frame on the veth: at the unshaped rate each
// capturer gets a different rate (its own CPU competes with iperf3's), so
// this is the figure to compare there.
func nsPerPacket(r result) float64 {
	if r.pps == 0 {
		return 0
	}
	return float64(r.cpu) / (r.pps * 10)
}

func count(n int64) string {
	if n < 0 {
		return "?"
	}
	return strconv.FormatInt(n, 10)
}

func summary(rate string, all []result, window time.Duration) {
	var labels []string
	for _, r := range all {
		if !slices.Contains(labels, r.label) {
			labels = append(labels, r.label)
		}
	}
	median := func(xs []float64) float64 {
		slices.Sort(xs)
		n := len(xs)
		if n%2 == 1 {
			return xs[n/2]
		}
		return (xs[n/2-1] + xs[n/2]) / 2
	}
	type row struct {
		cpu, lo, hi, ns, pps, mach, icpu, idle, load float64
		own                                          float64 // cpu without softirq; -1 if not measured
		drops                                        int64
		trace                                        softirqTrace // -trace's, over all runs
	}
	rows := map[string]row{}
	for _, lb := range labels {
		var cpu, ns, pps, mach, icpu, idle, load, own []float64
		var drops int64
		trace := softirqTrace{causes: map[string]time.Duration{}}
		for _, r := range all {
			if r.label != lb {
				continue
			}
			trace.add(r.trace)
			cpu = append(cpu, float64(r.cpu.Milliseconds()))
			if r.softirq >= 0 {
				own = append(own, float64(r.cpu.Milliseconds())*(1-r.softirq))
			}
			pps = append(pps, r.pps)
			ns = append(ns, nsPerPacket(r))
			mach = append(mach, float64(r.machine.Milliseconds()))
			icpu = append(icpu, float64(r.idleCPU.Milliseconds()))
			idle = append(idle, float64(r.idleRSS))
			load = append(load, float64(r.loadRSS))
			if r.drops > 0 {
				drops += r.drops
			}
		}
		lo, hi := slices.Min(cpu), slices.Max(cpu)
		x := row{median(cpu), lo, hi, median(ns), median(pps), median(mach), median(icpu), median(idle), median(load), -1, drops, trace}
		if len(own) == len(cpu) {
			x.own = median(own)
		}
		rows[lb] = x
	}
	ref := rows[labels[len(labels)-1]].cpu // tcpdump is last
	fmt.Printf("\n%s: medians of %d runs each, CPU of all the capturer's threads per 10 s of traffic (window %v)\n", rate, len(all)/len(labels), window)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	soft := rows[labels[0]].own >= 0
	head := "capturer\tcpu ms/10s\t(range)\tvs tcpdump\tns/packet\tpackets/s\tmachine busy ms/10s\tidle cpu ms/10s\tidle RSS MiB\tRSS under load MiB\tkernel drops"
	if soft {
		head += "\twithout softirq ms/10s\tvs tcpdump"
	}
	fmt.Fprintln(tw, head)
	refOwn := rows[labels[len(labels)-1]].own
	for _, lb := range labels {
		x := rows[lb]
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f-%.0f\t%.2fx\t%.0f\t%.0f\t%.0f\t%.0f\t%.1f\t%.1f\t%d", lb, x.cpu, x.lo, x.hi, x.cpu/ref, x.ns, x.pps, x.mach, x.icpu, x.idle/1024, x.load/1024, x.drops)
		if soft {
			fmt.Fprintf(tw, "\t%.0f\t%.2fx", x.own, x.own/refOwn)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	for _, lb := range labels {
		if sum := rows[lb].trace; sum.onCPU > 0 {
			fmt.Printf("%s, traced: %.0f%% of its CPU was softirq work, started by: %s\n", lb, 100*sum.share(), sum.topCauses(4))
		}
	}
	fmt.Println()
}

// devPackets is rx+tx frames of dev in pid's network namespace.
func devPackets(pid int, dev string) int64 {
	rx, tx := procstat.DevPackets(pid, dev)
	return rx + tx
}
