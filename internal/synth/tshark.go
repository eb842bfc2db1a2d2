package synth

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// TsharkFields are the fields ParseTsharkRTT reads, in this order.
var TsharkFields = []string{
	"tcp.stream", "tcp.analysis.ack_rtt",
	"ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "tcp.srcport", "tcp.dstport",
}

// TsharkArgs are the tshark arguments that print one line per ACK RTT sample of the capture at
// path, as ParseTsharkRTT reads them:
//
//	tshark -r PATH -n -o tcp.calculate_timestamps:TRUE -T fields -E separator=/t \
//	  -Y tcp.analysis.ack_rtt -e tcp.stream -e tcp.analysis.ack_rtt -e ip.src -e ip.dst \
//	  -e ipv6.src -e ipv6.dst -e tcp.srcport -e tcp.dstport
func TsharkArgs(path string) []string {
	args := []string{"-r", path, "-n", "-o", "tcp.calculate_timestamps:TRUE",
		"-T", "fields", "-E", "separator=/t", "-Y", "tcp.analysis.ack_rtt"}
	for _, f := range TsharkFields {
		args = append(args, "-e", f)
	}
	return args
}

// TsharkRTT are tshark's ack_rtt samples of one direction of one TCP stream.
type TsharkRTT struct {
	Stream int
	// Acker sent the ACKs that carry the samples; Sender sent the data (or SYN) they time.
	Acker, Sender netip.AddrPort
	RTT           RTTStats
}

// FlowKey names a connection from the capture host's point of view.
type FlowKey struct{ Local, Remote netip.AddrPort }

// Key is the flow's FlowKey.
func (f *FlowTruth) Key() FlowKey { return FlowKey{f.Local, f.Remote} }

// ParseTsharkRTT reads the output of tshark run with TsharkArgs and groups the samples by
// stream and direction, in stream order. tshark's ack_rtt times every ACK against the segment
// it acknowledges, without Karn's rule, so it is a reference for loss-free flows only.
func ParseTsharkRTT(r io.Reader) ([]TsharkRTT, error) {
	type key struct {
		stream int
		acker  netip.AddrPort
	}
	groups := map[key]*TsharkRTT{}
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if text == "" {
			continue
		}
		f := strings.Split(text, "\t")
		if len(f) != len(TsharkFields) {
			return nil, fmt.Errorf("synth: tshark line %d: %d fields, want %d", line, len(f), len(TsharkFields))
		}
		// A field can repeat (e.g. an ICMP error quoting a TCP header): keep the first value.
		for k := range f {
			f[k], _, _ = strings.Cut(f[k], ",")
		}
		stream, err := strconv.Atoi(f[0])
		if err != nil {
			return nil, fmt.Errorf("synth: tshark line %d: stream %q: %w", line, f[0], err)
		}
		secs, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			return nil, fmt.Errorf("synth: tshark line %d: ack_rtt %q: %w", line, f[1], err)
		}
		srcIP, dstIP := f[2], f[3]
		if srcIP == "" {
			srcIP, dstIP = f[4], f[5]
		}
		src, err := parseAddrPort(srcIP, f[6])
		if err != nil {
			return nil, fmt.Errorf("synth: tshark line %d: source: %w", line, err)
		}
		dst, err := parseAddrPort(dstIP, f[7])
		if err != nil {
			return nil, fmt.Errorf("synth: tshark line %d: destination: %w", line, err)
		}
		k := key{stream, src}
		g := groups[k]
		if g == nil {
			g = &TsharkRTT{Stream: stream, Acker: src, Sender: dst}
			groups[k] = g
		}
		g.RTT.add(int64(secs * float64(time.Second)))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("synth: read tshark output: %w", err)
	}
	out := make([]TsharkRTT, 0, len(groups))
	for _, g := range groups {
		out = append(out, *g)
	}
	slices.SortFunc(out, func(a, b TsharkRTT) int {
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
	return netip.AddrPortFrom(a, uint16(p)), nil
}

// LocalSenderRTT keeps the samples that time data sent by one of the local addresses (what
// go-metro measures) and keys them by connection. Streams that reuse a 4-tuple are merged.
func LocalSenderRTT(rs []TsharkRTT, local []netip.Addr) map[FlowKey]RTTStats {
	out := map[FlowKey]RTTStats{}
	for _, r := range rs {
		if !slices.Contains(local, r.Sender.Addr()) {
			continue
		}
		k := FlowKey{Local: r.Sender, Remote: r.Acker}
		if old, ok := out[k]; ok {
			out[k] = mergeStats(old, r.RTT)
			continue
		}
		out[k] = r.RTT
	}
	return out
}

// mergeStats combines counts, extremes and means; SRTT and RTTVar keep the later stream's.
func mergeStats(a, b RTTStats) RTTStats {
	m := b
	m.N = a.N + b.N
	m.sum = a.sum + b.sum
	m.Min, m.Max = min(a.Min, b.Min), max(a.Max, b.Max)
	if m.N > 0 {
		m.Mean = time.Duration(m.sum / int64(m.N))
	}
	return m
}
