package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/gometro/go-metro/internal/synth"
	"github.com/gometro/go-metro/tests/internal/benchrun"
)

// checkResult is one check part run: `go-metro run` over a replayed
// concurrent-connections capture, reporting every second.
type checkResult struct {
	label   string
	flows   int
	peakRSS int64 // KiB
	cpu     time.Duration
	gauges  int64 // system.net.tcp.rtt.avg gauges DogStatsD received
}

// checkRuns is the check part: for each N of -flows, `go-metro run` of an
// instance that replays the concurrent-N capture (interface: file) with
// max_flows N' (as the flows part) and a collection every second, for
// -check-for, its metrics sent to a DogStatsD stand-in that counts the
// rtt.avg gauges. Its peak RSS and CPU are those of the table plus what
// each collection keeps and allocates over a full table: the cost of the
// check, where the flows part's replay lists the table once.
func checkRuns(ctx context.Context, o *options, dir string) error {
	fmt.Printf("check: go-metro run of a replayed capture of N open request/response connections (max_flows N'), a collection every second, for %s\n", o.checkFor)
	var all []checkResult
	for _, n := range o.flows {
		pcap, _, err := cached(o.cache, fmt.Sprintf("concurrent-%d", n))
		if err != nil {
			return err
		}
		for j := range o.gometro {
			r, err := runCheck(ctx, o, dir, &o.gometro[j], pcap, n)
			if err != nil {
				return fmt.Errorf("check part, %s, %d flows: %w", o.gometro[j].Label, n, err)
			}
			fmt.Printf("  %-16s %8d flows  peak RSS %8d KiB  cpu %6d ms  rtt.avg gauges %d\n", r.label, r.flows, r.peakRSS, r.cpu.Milliseconds(), r.gauges)
			all = append(all, r)
		}
	}
	fmt.Printf("\ncheck: peak RSS and CPU of go-metro run over %s (the replay included)\n", o.checkFor)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "go-metro\tflows\tpeak RSS MiB\tCPU s\trtt.avg gauges received")
	for _, r := range all {
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.2f\t%d\n", r.label, r.flows, float64(r.peakRSS)/1024, r.cpu.Seconds(), r.gauges)
	}
	tw.Flush()
	fmt.Println()
	return nil
}

// runCheck runs one variant's check over pcap (n connections).
func runCheck(ctx context.Context, o *options, dir string, v *benchrun.Variant, pcap string, n int) (checkResult, error) {
	r := checkResult{label: v.Label, flows: n}
	statsd, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return r, err
	}
	defer statsd.Close()
	var gauges atomic.Int64
	received := make(chan struct{})
	go func() {
		defer close(received)
		buf := make([]byte, 64<<10)
		for {
			k, _, err := statsd.ReadFrom(buf)
			if err != nil {
				return
			}
			gauges.Add(int64(bytes.Count(buf[:k], []byte("system.net.tcp.rtt.avg:"))))
		}
	}()
	conf := filepath.Join(dir, "check.yaml")
	var b strings.Builder
	fmt.Fprintf(&b, "init_config:\n  max_flows: %d\n  statsd_ip: 127.0.0.1\n  statsd_port: %d\n", 1<<bits.Len(uint(n-1)), statsd.LocalAddr().(*net.UDPAddr).Port)
	for _, s := range v.Init {
		fmt.Fprintf(&b, "  %s\n", s)
	}
	fmt.Fprintf(&b, "instances:\n  - interface: file\n    pcap: %s\n    local_ips: [%q, %q]\n    all_remote_hosts: true\n    reverse_dns: false\n    min_collection_interval: 1\n",
		pcap, synth.LocalIPv4, synth.LocalIPv6)
	for _, s := range v.Inst {
		fmt.Fprintf(&b, "    %s\n", s)
	}
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		return r, err
	}
	m, err := startMeasured(ctx, o.checkFor, v.Bin, "run", "--config", conf)
	if err != nil {
		return r, err
	}
	_, _ = io.Copy(io.Discard, m.stdout)
	peak, cpu, err := m.wait()
	// A stopped go-metro run exits 0; anything else is a failure.
	if err != nil && !errors.Is(err, context.Canceled) {
		return r, err
	}
	statsd.Close()
	<-received
	r.peakRSS, r.cpu, r.gauges = peak, cpu, gauges.Load()
	if r.gauges == 0 {
		return r, fmt.Errorf("no rtt.avg gauge received: %s", m.stderr.String())
	}
	return r, nil
}
