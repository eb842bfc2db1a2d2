package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gometro/go-metro/capture"
	"github.com/gometro/go-metro/capture/flow"
	"github.com/gometro/go-metro/capture/packet"
	"github.com/gometro/go-metro/capture/source"
	"github.com/gometro/go-metro/rttcheck"
	"github.com/spf13/cobra"
)

func newReplayCmd(stdout, stderr io.Writer) *cobra.Command {
	var localIPs []string
	var asJSON bool
	var maxFlows int
	var tunnels string
	cmd := &cobra.Command{
		Use:   "replay [--local-ip IP]... [--json] FILE",
		Short: "Replay a pcap/pcapng file and print each flow's RTT",
		Long: "Replay runs the capture engine over a pcap or pcapng file and prints one row per TCP flow,\n" +
			"local side first, RTT in milliseconds. Without --local-ip the local addresses are inferred\n" +
			"from the traffic (the side that opens connections and sends data).",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("replay takes exactly one capture file, got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			o := replayOptions{path: args[0], asJSON: asJSON, maxFlows: maxFlows, stdout: stdout, stderr: stderr}
			if maxFlows < 1 {
				return fmt.Errorf("--max-flows %d: must be at least 1", maxFlows)
			}
			var err error
			if o.tunnels, err = packet.ParseEncaps(strings.FieldsFunc(tunnels, func(r rune) bool { return r == ',' || r == ' ' })); err != nil {
				return fmt.Errorf("--tunnels: %w", err)
			}
			for _, s := range localIPs {
				p, err := rttcheck.ParsePrefix(s)
				if err != nil {
					return fmt.Errorf("--local-ip %q is not an IP address or CIDR", s)
				}
				o.localIPs = append(o.localIPs, p)
			}
			return replay(cmd.Context(), &o)
		},
	}
	cmd.Flags().StringArrayVar(&localIPs, "local-ip", nil, "address or CIDR of the local side (repeatable)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object instead of a table")
	cmd.Flags().StringVar(&tunnels, "tunnels", "all", "encapsulations whose inner TCP is timed, comma-separated ("+strings.Join(packet.EncapNames(), ", ")+"), or all")
	cmd.Flags().IntVar(&maxFlows, "max-flows", replayMaxFlows, fmt.Sprintf(
		"flows kept at most (memory: %d bytes each with a handshake or a request/response exchange, more for large flights; at most %d MiB at the default); past it, idle ones are evicted",
		flow.FlowBytes, flow.ReservedBytes(replayMaxFlows)>>20))
	return cmd
}

// replayOptions are the replay command's flags, checked.
type replayOptions struct {
	path           string
	localIPs       []netip.Prefix
	asJSON         bool
	maxFlows       int
	tunnels        packet.Encap
	stdout, stderr io.Writer
}

// replayFlow is one row of the output. Addresses stay netip.Addr: JSON
// writes them as text, the table as address:port.
type replayFlow struct {
	Src       netip.Addr `json:"src"`
	SrcPort   uint16     `json:"src_port"`
	Dst       netip.Addr `json:"dst"`
	DstPort   uint16     `json:"dst_port"`
	Samples   uint64     `json:"samples"`
	RTT       float64    `json:"rtt_ms"`
	RTTAvg    float64    `json:"rtt_avg_ms"`
	RTTJitter float64    `json:"rtt_jitter_ms"`
	RTTMin    float64    `json:"rtt_min_ms"`
	RTTMax    float64    `json:"rtt_max_ms"`
	// Tunnel describes the encapsulation the flow was seen in, as in
	// "vxlan vni=42 outer=10.0.0.1,10.0.0.2"; absent for bare traffic.
	Tunnel string `json:"tunnel,omitempty"`
}

// replayOut is the output: the counters, then the flows.
type replayOut struct {
	replayHead
	Flows []replayFlow `json:"flows"`
}

// replayHead is the output's counters.
type replayHead struct {
	Packets      uint64 `json:"packets"`
	TCPPackets   uint64 `json:"tcp_packets"`
	DecodeErrors uint64 `json:"decode_errors"`
	Truncated    bool   `json:"truncated,omitempty"` // the file ends inside a record
	// Records skipped for an impossible time (capture/clock.go).
	TimeBackwards uint64 `json:"time_backwards,omitempty"`
	TimeForward   uint64 `json:"time_forward,omitempty"`
}

// A replay lists every flow of the file, however long ago it ended, so
// nothing expires on a timer; only --max-flows bounds memory.
const (
	replayMaxFlows = 1 << 18
	replayNoExpiry = 100 * 365 * 24 * time.Hour
)

// replay runs the engine over o.path and prints every flow it found. The
// flows are written as the engine hands them over, one at a time (the
// table takes two passes: the first measures the columns): a file of
// millions of connections costs its flow table and little more.
func replay(ctx context.Context, o *replayOptions) error {
	eng, snap, truncated, err := replayRun(ctx, o)
	if err != nil {
		return err
	}
	printLocals(o.stderr, snap)
	printTimeSkips(o.stderr, &snap.Stats)
	head := replayHead{
		Packets:       snap.Stats.Packets,
		TCPPackets:    snap.Stats.TCPPackets,
		DecodeErrors:  snap.Stats.Malformed(),
		Truncated:     truncated,
		TimeBackwards: snap.Stats.TimeBackwards,
		TimeForward:   snap.Stats.TimeForward,
	}
	flows := func(fn func(*replayFlow)) error {
		return eng.EachFlow(func(f *flow.Summary) {
			r := rowOf(f)
			fn(&r)
		})
	}
	if o.asJSON {
		return writeJSON(o.stdout, &head, flows)
	}
	return writeTable(o.stdout, &head, flows)
}

// replayRun replays the file to its end and returns the engine, its
// counters, and whether the file ends inside a record.
func replayRun(ctx context.Context, o *replayOptions) (_ *capture.Engine, _ *capture.Snapshot, truncated bool, _ error) {
	// Check the file first: the engine's error for a missing file would
	// mention internals.
	st, err := os.Stat(o.path)
	if err != nil {
		return nil, nil, false, fmt.Errorf("%s: %w", o.path, unwrapPathErr(err))
	}
	if st.IsDir() {
		return nil, nil, false, fmt.Errorf("%s: is a directory, not a capture file", o.path)
	}
	eng, err := capture.New(capture.Config{File: o.path, LocalIPs: o.localIPs, Tunnels: o.tunnels,
		MaxFlows: o.maxFlows, IdleTTL: replayNoExpiry, ExpTTL: replayNoExpiry})
	if err != nil {
		return nil, nil, false, fmt.Errorf("%s: %w", o.path, err)
	}
	// A file cut inside a record (tcpdump killed, disk full) still holds
	// good packets: report them, as tshark does, and say where it ends.
	err = eng.Run(ctx)
	truncated = errors.Is(err, source.ErrTruncated)
	if truncated {
		fmt.Fprintf(o.stderr, "go-metro: warning: %v; showing the packets before the cut\n", err)
	} else if err != nil {
		return nil, nil, false, fmt.Errorf("%s: %w", o.path, err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	snap, err := eng.Stats(sctx)
	if err != nil {
		return nil, nil, false, fmt.Errorf("%s: %w", o.path, err)
	}
	return eng, snap, truncated, nil
}

// printLocals tells which addresses the replay took as local, and how.
func printLocals(stderr io.Writer, snap *capture.Snapshot) {
	how := "given"
	if snap.InferredLocal {
		how = "inferred from the traffic"
	}
	if len(snap.LocalIPs) == 0 {
		fmt.Fprintf(stderr, "go-metro: no local addresses (%s): no flow can be timed; use --local-ip\n", how)
		return
	}
	addrs := make([]string, len(snap.LocalIPs))
	for i, a := range snap.LocalIPs {
		addrs[i] = a.String()
	}
	fmt.Fprintf(stderr, "go-metro: local addresses (%s): %s\n", how, strings.Join(addrs, ", "))
}

// printTimeSkips says, in one line, how many records were skipped for an
// impossible time.
func printTimeSkips(stderr io.Writer, st *capture.Stats) {
	if st.TimeBackwards+st.TimeForward == 0 {
		return
	}
	fmt.Fprintf(stderr, "go-metro: warning: %d record(s) skipped for an impossible time, no RTT sample taken from them: %d went back more than %s, %d jumped more than %s ahead\n",
		st.TimeBackwards+st.TimeForward, st.TimeBackwards, capture.MaxReorder, st.TimeForward, capture.MaxTimeJump)
}

// rowOf is the output row of flow f.
func rowOf(f *flow.Summary) replayFlow {
	return replayFlow{
		Src: f.Local.Addr().Unmap(), SrcPort: f.Local.Port(),
		Dst: f.Remote.Addr().Unmap(), DstPort: f.Remote.Port(),
		Samples: f.RTT.Samples,
		RTT:     ms(f.RTT.Last), RTTAvg: ms(f.RTT.SRTT), RTTJitter: ms(f.RTT.RTTVAR),
		RTTMin: ms(f.RTT.Min), RTTMax: ms(f.RTT.Max),
		Tunnel: f.Tunnel.String(),
	}
}

// writeJSON writes head and the rows flows hands over, one at a time, as
// json.Encoder writes a replayOut.
func writeJSON(w io.Writer, head *replayHead, flows func(func(*replayFlow)) error) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	h, err := json.Marshal(head)
	if err != nil {
		return err
	}
	bw.Write(h[:len(h)-1]) // without its closing brace
	bw.WriteString(`,"flows":[`)
	n := 0
	if err := flows(func(r *replayFlow) {
		if err == nil {
			var b []byte
			if b, err = json.Marshal(r); err == nil {
				if n > 0 {
					bw.WriteByte(',')
				}
				bw.Write(b)
				n++
			}
		}
	}); err != nil {
		return err
	}
	if err != nil {
		return err
	}
	bw.WriteString("]}\n")
	return bw.Flush()
}

// tableHeader and tableRow are the table's cells, each followed by a tab
// as a tabwriter cell is.
var tableHeader = [...]string{"LOCAL", "REMOTE", "SAMPLES", "RTT_MS", "AVG_MS", "JITTER_MS", "MIN_MS", "MAX_MS", "TUNNEL"}

func tableRow(r *replayFlow) [len(tableHeader)]string {
	f3 := func(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }
	return [...]string{netip.AddrPortFrom(r.Src, r.SrcPort).String(), netip.AddrPortFrom(r.Dst, r.DstPort).String(),
		strconv.FormatUint(r.Samples, 10), f3(r.RTT), f3(r.RTTAvg), f3(r.RTTJitter), f3(r.RTTMin), f3(r.RTTMax), r.Tunnel}
}

// writeTable writes head's counts and the rows flows hands over as a table
// with right-aligned columns, as a text/tabwriter (minimum width 2, padding
// 2, aligned right) would, without holding the rows: a first pass measures
// each column, a second writes. The TUNNEL column appears only when a flow
// was tunnelled, so the common bare capture keeps its table.
func writeTable(w io.Writer, head *replayHead, flows func(func(*replayFlow)) error) error {
	var width [len(tableHeader)]int
	for i, c := range tableHeader {
		width[i] = len(c)
	}
	rows, tunnelled := 0, false
	if err := flows(func(r *replayFlow) {
		for i, c := range tableRow(r) {
			width[i] = max(width[i], len(c))
		}
		rows++
		tunnelled = tunnelled || r.Tunnel != ""
	}); err != nil {
		return err
	}
	cols := len(tableHeader)
	if !tunnelled {
		cols--
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	line := func(cells []string) {
		for i, c := range cells[:cols] {
			for range max(2, width[i]+2) - len(c) {
				bw.WriteByte(' ')
			}
			bw.WriteString(c)
		}
		bw.WriteByte('\n')
	}
	line(tableHeader[:])
	if err := flows(func(r *replayFlow) {
		cells := tableRow(r)
		line(cells[:])
	}); err != nil {
		return err
	}
	fmt.Fprintf(bw, "%d packets, %d TCP, %d malformed, %d flows\n", head.Packets, head.TCPPackets, head.DecodeErrors, rows)
	return bw.Flush()
}

func ms(ns int64) float64 { return float64(ns) / 1e6 }

// unwrapPathErr drops the operation and path from an *os.PathError (the
// caller names the path already).
func unwrapPathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
