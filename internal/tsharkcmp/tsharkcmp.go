// Package tsharkcmp compares go-metro's per-flow RTT with tshark's, the
// independent reference: it runs tshark for tcp.analysis.ack_rtt, parses the
// samples per stream and direction, keys them by connection from the local
// side, and classifies each flow against the engine's summary. The corpus
// test (tests/corpus), the simulator's self-check (internal/synth) and the
// engine's comparison on a simulated capture (capture) all use it.
//
// tshark's ack_rtt is not go-metro's sample: tshark times an ACK from the
// LAST segment it covers, times retransmitted segments (no Karn) and the ACKs
// of keepalive probes. go-metro, like the kernel's tcp_clean_rtx_queue, times
// from the EARLIEST newly acked segment, so for the same ACK its sample is >=
// tshark's: go-metro's per-flow minimum may exceed tshark's, never sit below
// it (Check's tolerance covers timestamp rounding).
package tsharkcmp

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gometro/go-metro/capture/flow"
)

// Fields are the fields Args asks tshark for and Parse reads, in this order.
var Fields = []string{
	"tcp.stream", "tcp.analysis.ack_rtt",
	"ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "tcp.srcport", "tcp.dstport",
}

// Args are the tshark arguments that print one line per ACK RTT sample of
// the capture at path, as Parse reads them:
//
//	tshark -r PATH -n -o tcp.calculate_timestamps:TRUE -o tcp.desegment_tcp_streams:FALSE \
//	  -T fields -E separator=/t -Y tcp.analysis.ack_rtt -e tcp.stream -e tcp.analysis.ack_rtt \
//	  -e ip.src -e ip.dst -e ipv6.src -e ipv6.dst -e tcp.srcport -e tcp.dstport
//
// Stream reassembly only feeds the application-layer dissectors; ack_rtt is
// computed per segment without it. Turning it off printed byte-identical
// output on the 172 corpus files of tests/corpus with 3.4 times less CPU
// (tshark 4.0.17: 37 s instead of 2 min 5 s).
func Args(path string) []string {
	args := []string{"-r", path, "-n", "-o", "tcp.calculate_timestamps:TRUE", "-o", "tcp.desegment_tcp_streams:FALSE",
		"-T", "fields", "-E", "separator=/t", "-Y", "tcp.analysis.ack_rtt"}
	for _, f := range Fields {
		args = append(args, "-e", f)
	}
	return args
}

// Direction holds tshark's ack_rtt samples of one direction of one TCP stream.
type Direction struct {
	Stream int
	// Acker sent the ACKs that carry the samples; Sender sent the data (or
	// SYN) they time.
	Acker, Sender netip.AddrPort
	Samples       []time.Duration // in capture order
}

// Require skips the test when tshark is not on PATH, or fails it under CI,
// where a missing reference must not pass as a skip. The tests that compare
// with tshark share it so that they all judge its absence alike.
func Require(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("tshark"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("tshark is required in CI (make deps installs it)")
		}
		t.Skip("tshark not installed")
	}
}

// Run runs tshark (found on PATH) on the capture at path and parses its
// output. tshark exits non-zero on a file cut short but still prints what it
// read before the cut: Run then returns those directions AND the error, for
// the caller to judge.
func Run(ctx context.Context, path string) ([]Direction, error) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		return nil, fmt.Errorf("tsharkcmp: %w", err)
	}
	cmd := exec.CommandContext(ctx, tshark, Args(path)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, runErr := cmd.Output()
	ds, err := Parse(bytes.NewReader(out))
	if err != nil {
		return nil, fmt.Errorf("tsharkcmp: %s: %w", path, err)
	}
	if runErr != nil {
		msg := strings.Join(strings.Fields(stderr.String()), " ")
		return ds, fmt.Errorf("tsharkcmp: tshark %s: %w: %s", path, runErr, msg)
	}
	return ds, nil
}

// Parse reads the output of tshark run with Args and groups the samples by
// stream and direction, in stream order. Negative samples are dropped.
func Parse(r io.Reader) ([]Direction, error) {
	type key struct {
		stream int
		acker  netip.AddrPort
	}
	groups := map[key]*Direction{}
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if text == "" {
			continue
		}
		f := strings.Split(text, "\t")
		if len(f) != len(Fields) {
			return nil, fmt.Errorf("tshark line %d: %d fields, want %d", line, len(f), len(Fields))
		}
		// A field repeats when a packet holds several headers of a kind: a
		// tunnel (outer, then inner IP) or an ICMP error quoting a TCP
		// header. The last value belongs to the header nearest the TCP one.
		for k := range f {
			if i := strings.LastIndexByte(f[k], ','); i >= 0 {
				f[k] = f[k][i+1:]
			}
		}
		stream, err := strconv.Atoi(f[0])
		if err != nil {
			return nil, fmt.Errorf("tshark line %d: stream %q: %w", line, f[0], err)
		}
		secs, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			return nil, fmt.Errorf("tshark line %d: ack_rtt %q: %w", line, f[1], err)
		}
		srcIP, dstIP := f[2], f[3]
		if srcIP == "" {
			srcIP, dstIP = f[4], f[5]
		}
		if secs < 0 {
			// The capture's clock stepped back between the segment and
			// its ACK (merged files, a clock adjustment): no RTT.
			continue
		}
		src, err := parseAddrPort(srcIP, f[6])
		if err != nil {
			return nil, fmt.Errorf("tshark line %d: source: %w", line, err)
		}
		dst, err := parseAddrPort(dstIP, f[7])
		if err != nil {
			return nil, fmt.Errorf("tshark line %d: destination: %w", line, err)
		}
		k := key{stream, src}
		g := groups[k]
		if g == nil {
			g = &Direction{Stream: stream, Acker: src, Sender: dst}
			groups[k] = g
		}
		g.Samples = append(g.Samples, time.Duration(secs*float64(time.Second)+0.5))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read tshark output: %w", err)
	}
	out := make([]Direction, 0, len(groups))
	for _, g := range groups {
		out = append(out, *g)
	}
	slices.SortFunc(out, func(a, b Direction) int {
		return cmp.Or(cmp.Compare(a.Stream, b.Stream), a.Acker.Compare(b.Acker))
	})
	return out, nil
}

func parseAddrPort(ip, port string) (netip.AddrPort, error) {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("address %q: %w", ip, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("port %q: %w", port, err)
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(p)), nil
}

// Key names a connection from the local side, as go-metro reports it.
type Key struct{ Local, Remote netip.AddrPort }

func (k Key) String() string { return k.Local.String() + " -> " + k.Remote.String() }

// LocalSender keeps the samples that time data (or SYNs) sent by a local
// address, what go-metro measures, and keys them by connection. Streams that
// reuse a 4-tuple are merged, in stream order.
func LocalSender(ds []Direction, local func(netip.Addr) bool) map[Key][]time.Duration {
	out := map[Key][]time.Duration{}
	for _, d := range ds {
		if !local(d.Sender.Addr()) {
			continue
		}
		k := Key{Local: d.Sender, Remote: d.Acker}
		out[k] = append(out[k], d.Samples...)
	}
	return out
}

// Flow is what the engine reports for a connection (flows of one Key merged).
type Flow struct {
	Samples uint64
	Min     time.Duration // meaningless when Samples is 0
}

// Verdict classifies a flow that tshark times.
type Verdict int

// Verdicts, best first.
const (
	OK        Verdict = iota // go-metro has samples and its minimum is not below tshark's
	NoSamples                // tshark times it at least MinTimed times, go-metro not once
	MinBelow                 // go-metro's minimum is below tshark's by more than the tolerance
	Few                      // tshark times it fewer than MinTimed times: not judged
)

func (v Verdict) String() string {
	return [...]string{"ok", "no go-metro samples", "minimum below tshark's", "timed too rarely to judge"}[v]
}

// MinTimed is how many tshark samples make a flow one go-metro must time.
const MinTimed = 3

// Tolerance is how far below tshark's minimum go-metro's may sit: max(5 %,
// 0.05 ms), timestamp rounding and the odd capture-order quirk.
func Tolerance(tsharkMin time.Duration) time.Duration {
	return max(tsharkMin/20, 50*time.Microsecond)
}

// Result is one flow's comparison.
type Result struct {
	Key       Key
	TsharkN   int
	TsharkMin time.Duration
	Ours      Flow
	Verdict   Verdict
}

func (r Result) String() string {
	s := fmt.Sprintf("%v: %v (tshark %d samples, min %v; go-metro %d samples", r.Key, r.Verdict, r.TsharkN, r.TsharkMin, r.Ours.Samples)
	if r.Ours.Samples > 0 {
		s += fmt.Sprintf(", min %v", r.Ours.Min)
	}
	return s + ")"
}

// Compare judges every flow tshark times from the local side against the
// engine's flows, in Key order.
func Compare(ref map[Key][]time.Duration, ours map[Key]Flow) []Result {
	out := make([]Result, 0, len(ref))
	for k, samples := range ref {
		r := Result{Key: k, TsharkN: len(samples), TsharkMin: slices.Min(samples), Ours: ours[k]}
		switch {
		case r.TsharkN < MinTimed:
			r.Verdict = Few
		case r.Ours.Samples == 0:
			r.Verdict = NoSamples
		case r.Ours.Min < r.TsharkMin-Tolerance(r.TsharkMin):
			r.Verdict = MinBelow
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Result) int {
		return cmp.Or(a.Key.Local.Compare(b.Key.Local), a.Key.Remote.Compare(b.Key.Remote))
	})
	return out
}

// EngineFlows keys the engine's flow summaries like LocalSender keys
// tshark's samples, merging flows that reuse a 4-tuple.
func EngineFlows(fs []flow.Summary) map[Key]Flow {
	out := map[Key]Flow{}
	for _, f := range fs {
		k := Key{
			Local:  netip.AddrPortFrom(f.Local.Addr().Unmap(), f.Local.Port()),
			Remote: netip.AddrPortFrom(f.Remote.Addr().Unmap(), f.Remote.Port()),
		}
		o := out[k]
		if f.RTT.Samples > 0 && (o.Samples == 0 || time.Duration(f.RTT.Min) < o.Min) {
			o.Min = time.Duration(f.RTT.Min)
		}
		o.Samples += f.RTT.Samples
		out[k] = o
	}
	return out
}
