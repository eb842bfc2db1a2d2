// Command demo shows go-metro measuring real TCP round-trip times: it builds
// the test lab (client namespace A, a delay line adding 25 ms each way with
// a little jitter, server namespace B), runs a bulk transfer and
// request/response connections for about ten seconds while go-metro's real
// check logic captures on A's interface (in a process inside A), and prints
// the check's per-host-pair metrics beside the kernel's own srtt/rttvar
// (TCP_INFO) for the same connections. Everything is torn down at the end,
// also on Ctrl-C. It needs root (network namespaces, raw sockets):
//
//	sudo go run ./tests/cmd/demo [-delay 25ms] [-jitter 2ms] [-duration 10s]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/gometro/go-metro/rttcheck"
	"github.com/gometro/go-metro/tests/internal/delayline"
	"github.com/gometro/go-metro/tests/internal/probe"
	"github.com/gometro/go-metro/tests/lab"
)

func main() {
	if os.Getenv(probe.RoleEnv) != "" {
		os.Exit(probe.Main()) // this binary re-executed as the check inside A
	}
	delay := flag.Duration("delay", 25*time.Millisecond, "one-way delay added in each direction")
	jitter := flag.Duration("jitter", 2*time.Millisecond, "jitter added to each delay")
	duration := flag.Duration("duration", 10*time.Second, "how long the workloads run")
	flag.Parse()
	lab.RunMain("demo", ": it creates network namespaces and captures packets (try: sudo go run ./tests/cmd/demo)", func(ctx context.Context) error {
		return run(ctx, os.Stdout, *delay, *jitter, *duration)
	})
}

func run(ctx context.Context, w io.Writer, delay, jitter, duration time.Duration) (err error) {
	dir := delayline.Dir{Delay: delay, Jitter: jitter}
	fmt.Fprintf(w, "Setting up namespaces: A (client) -- delay line %v ± %v each way -- B (server)\n", delay, jitter)
	l, err := lab.Start(lab.Config{Line: delayline.Config{AtoB: dir, BtoA: dir}})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(w, "Tearing down the lab.")
		if cerr := l.Close(); cerr != nil && ctx.Err() == nil {
			err = errors.Join(err, fmt.Errorf("teardown: %w", cerr))
		}
	}()
	var servers []*lab.Server
	defer func() {
		for _, s := range servers {
			s.Close() // resets from connections cut short are not news here
		}
	}()
	for _, a := range []netip.Addr{lab.AddrB4, lab.AddrB6} {
		s, err := l.B.Serve(netip.AddrPortFrom(a, 0))
		if err != nil {
			return err
		}
		servers = append(servers, s)
	}

	instance := fmt.Sprintf("interface: %s\nips: [%q, %q]\nreverse_dns: false\n", l.AIf, lab.AddrB4, lab.AddrB6)
	p, err := probe.Start(l.A, probe.Options{Role: "check", Env: []string{probe.InstanceEnv + "=" + instance}})
	if err != nil {
		return err
	}
	defer p.Kill()
	if p.Ready.Err != "" {
		return fmt.Errorf("check: %s", p.Ready.Err)
	}
	fmt.Fprintf(w, "go-metro check capturing on %s inside namespace %s (pid %d).\n", l.AIf, l.A.Name, p.PID())
	fmt.Fprintf(w, "Running a bulk upload and request/response connections for %v (Ctrl-C stops early)...\n", duration)

	wctx, cancel := context.WithTimeout(ctx, duration)
	defer cancel()
	c := &lab.Client{Host: l.A}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var werrs []error
	do := func(f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil && wctx.Err() == nil {
				mu.Lock()
				werrs = append(werrs, err)
				mu.Unlock()
			}
		}()
	}
	rtt := 2 * delay
	// A 20 kB answer takes two round trips (initial window of 10
	// segments); leave a margin so every connection ends before the
	// deadline and has its final kernel reading.
	period := 2*rtt + 200*time.Millisecond
	reqs := max(int(0.8*float64(duration)/float64(period)), 1)
	ignore := func(_ any, err error) error { return err }
	v4, v6 := servers[0].Addr, servers[1].Addr
	// Paced well below what the delay line forwards: a queue would add
	// its own delay and the demo is about the path's RTT.
	do(func() error { return ignore(c.BulkSend(wctx, v4, int64(duration.Seconds()*0.8*(512<<10)), 512<<10)) })
	do(func() error { return ignore(c.RequestResponse(wctx, v4, reqs, 300, 20000, 200*time.Millisecond)) })
	do(func() error { return ignore(c.RequestResponse(wctx, v6, reqs, 300, 20000, 200*time.Millisecond)) })
	do(func() error { return ignore(c.ShortConns(wctx, v4, reqs/2, 2, 200, 4000)) })
	wg.Wait()
	if ctx.Err() != nil {
		return errors.New("interrupted")
	}
	for _, err := range werrs {
		fmt.Fprintf(w, "workload error: %v\n", err)
	}

	r, err := p.Do("run")
	if err != nil {
		return err
	}
	if r.Err != "" {
		return fmt.Errorf("check Run: %s", r.Err)
	}
	if _, err := p.Stop(); err != nil {
		fmt.Fprintf(w, "stopping the check: %v\n", err)
	}
	printCheck(w, r)
	printKernel(w, c.Records())
	fmt.Fprintf(w, "\nThe path's RTT is %v (2 x %v) plus up to 2 x %v of jitter. go-metro's avg is the\n"+
		"RFC 6298 smoothed RTT over every connection of a host pair; the kernel's srtt is per connection.\n", rtt, delay, jitter)
	return nil
}

// printCheck prints the check's per-host-pair RTT metrics and health.
func printCheck(w io.Writer, r probe.Report) {
	type pair struct{ src, dst string }
	vals := map[pair]map[string]float64{}
	var pairs []pair
	for _, m := range r.Metrics {
		if !strings.HasPrefix(m.Name, "system.net.tcp.rtt") {
			continue
		}
		var p pair
		for _, t := range m.Tags {
			if v, ok := strings.CutPrefix(t, "src:"); ok {
				p.src = v
			} else if v, ok := strings.CutPrefix(t, "dst:"); ok {
				p.dst = v
			}
		}
		if vals[p] == nil {
			vals[p] = map[string]float64{}
			pairs = append(pairs, p)
		}
		vals[p][m.Name] = m.Value
	}
	sort.Slice(pairs, func(i, j int) bool { return pairs[i].src+pairs[i].dst < pairs[j].src+pairs[j].dst })
	sc := r.Service()
	fmt.Fprintf(w, "\ngo-metro check (one Run after the workloads): %s %s %s\n", sc.Name, sc.Status, sc.Message)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "src\tdst\trtt (last) ms\tavg ms\tjitter ms\tmin ms\tmax ms\tsamples\t")
	f := func(v map[string]float64, name string) string {
		x, ok := v[name]
		if !ok {
			return "-"
		}
		return fmt.Sprintf("%.2f", x)
	}
	for _, p := range pairs {
		v := vals[p]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f\t\n", p.src, p.dst,
			f(v, rttcheck.MetricRTT), f(v, rttcheck.MetricRTTAvg), f(v, rttcheck.MetricRTTJitter),
			f(v, rttcheck.MetricRTTMin), f(v, rttcheck.MetricRTTMax), v[rttcheck.MetricRTTSamples])
	}
	tw.Flush()
	if len(pairs) == 0 {
		fmt.Fprintln(w, "(no RTT metrics: the capture saw no timed segment)")
	}
	pk, _ := r.Value(rttcheck.MetricPackets)
	dr, _ := r.Value(rttcheck.MetricKernelDrops)
	fmt.Fprintf(w, "capture: %.0f packets, %.0f kernel drops\n", pk, dr)
	for _, wr := range r.Warnings {
		fmt.Fprintf(w, "warning: %s\n", wr)
	}
}

// printKernel prints the kernel's RTT estimate for each connection, read
// when the connection was quiet just before it closed.
func printKernel(w io.Writer, recs []*lab.ConnRecord) {
	fmt.Fprintln(w, "\nLinux kernel, same connections (TCP_INFO just before close):")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tlocal -> remote\tsrtt ms\trttvar ms\tmin_rtt ms\tsegs out\t")
	shorts := 0
	var shortRTT time.Duration
	for _, r := range recs {
		k := r.Final
		if k.At.IsZero() {
			continue // cut short: no quiet reading
		}
		if r.Kind == "short" {
			shorts++
			shortRTT += k.RTT
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.2f\t%.2f\t%d\t\n", r.Kind, r.Local.String()+" -> "+r.Remote.String(),
			msf(k.RTT), msf(k.RTTVar), msf(k.MinRTT), k.SegsOut)
	}
	if shorts > 0 {
		fmt.Fprintf(tw, "short (x%d)\tone request each\t%.2f (mean)\t\t\t\t\n", shorts, msf(shortRTT/time.Duration(shorts)))
	}
	tw.Flush()
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
