package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
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
		"flows kept at most (memory bound: %d bytes each, %d MiB at the default); past it, idle ones are evicted",
		flow.FlowBytes, replayMaxFlows*flow.FlowBytes>>20))
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

type replayOut struct {
	Packets      uint64 `json:"packets"`
	TCPPackets   uint64 `json:"tcp_packets"`
	DecodeErrors uint64 `json:"decode_errors"`
	Truncated    bool   `json:"truncated,omitempty"` // the file ends inside a record
	// Records skipped for an impossible time (capture/clock.go).
	TimeBackwards uint64       `json:"time_backwards,omitempty"`
	TimeForward   uint64       `json:"time_forward,omitempty"`
	Flows         []replayFlow `json:"flows"`
}

// A replay lists every flow of the file, however long ago it ended, so
// nothing expires on a timer; only --max-flows bounds memory.
const (
	replayMaxFlows = 1 << 18
	replayNoExpiry = 100 * 365 * 24 * time.Hour
)

// replay runs the engine over o.path and prints every flow it found.
func replay(ctx context.Context, o *replayOptions) error {
	snap, truncated, err := replaySnapshot(ctx, o)
	if err != nil {
		return err
	}
	printLocals(o.stderr, snap)
	printTimeSkips(o.stderr, &snap.Stats)
	out := replayResult(snap, truncated)
	if o.asJSON {
		return json.NewEncoder(o.stdout).Encode(out)
	}
	printTable(o.stdout, &out)
	return nil
}

// replaySnapshot replays the file to its end and returns the engine's
// snapshot, and whether the file ends inside a record.
func replaySnapshot(ctx context.Context, o *replayOptions) (_ *capture.Snapshot, truncated bool, _ error) {
	// Check the file first: the engine's error for a missing file would
	// mention internals.
	st, err := os.Stat(o.path)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", o.path, unwrapPathErr(err))
	}
	if st.IsDir() {
		return nil, false, fmt.Errorf("%s: is a directory, not a capture file", o.path)
	}
	eng, err := capture.New(capture.Config{File: o.path, LocalIPs: o.localIPs, Tunnels: o.tunnels,
		MaxFlows: o.maxFlows, IdleTTL: replayNoExpiry, ExpTTL: replayNoExpiry})
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", o.path, err)
	}
	// A file cut inside a record (tcpdump killed, disk full) still holds
	// good packets: report them, as tshark does, and say where it ends.
	err = eng.Run(ctx)
	truncated = errors.Is(err, source.ErrTruncated)
	if truncated {
		fmt.Fprintf(o.stderr, "go-metro: warning: %v; showing the packets before the cut\n", err)
	} else if err != nil {
		return nil, false, fmt.Errorf("%s: %w", o.path, err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	snap, err := eng.Snapshot(sctx)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", o.path, err)
	}
	return snap, truncated, nil
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

// replayResult is the output for snap: its counters and its flows, sorted
// by local end, remote end, start and tunnel.
func replayResult(snap *capture.Snapshot, truncated bool) replayOut {
	out := replayOut{
		Packets:       snap.Stats.Packets,
		TCPPackets:    snap.Stats.TCPPackets,
		DecodeErrors:  snap.Stats.Malformed(),
		Truncated:     truncated,
		TimeBackwards: snap.Stats.TimeBackwards,
		TimeForward:   snap.Stats.TimeForward,
		Flows:         make([]replayFlow, 0, len(snap.Flows)),
	}
	flows := append([]flow.Summary(nil), snap.Flows...)
	sort.Slice(flows, func(i, j int) bool {
		if c := flows[i].Local.Compare(flows[j].Local); c != 0 {
			return c < 0
		}
		if c := flows[i].Remote.Compare(flows[j].Remote); c != 0 {
			return c < 0
		}
		if flows[i].FirstSeen != flows[j].FirstSeen {
			return flows[i].FirstSeen < flows[j].FirstSeen
		}
		return flows[i].Tunnel.String() < flows[j].Tunnel.String()
	})
	for _, f := range flows {
		out.Flows = append(out.Flows, replayFlow{
			Src: f.Local.Addr().Unmap(), SrcPort: f.Local.Port(),
			Dst: f.Remote.Addr().Unmap(), DstPort: f.Remote.Port(),
			Samples: f.RTT.Samples,
			RTT:     ms(f.RTT.Last), RTTAvg: ms(f.RTT.SRTT), RTTJitter: ms(f.RTT.RTTVAR),
			RTTMin: ms(f.RTT.Min), RTTMax: ms(f.RTT.Max),
			Tunnel: f.Tunnel.String(),
		})
	}
	return out
}

// printTable prints out as a table, one row per flow, and a summary line.
func printTable(stdout io.Writer, out *replayOut) {
	// The TUNNEL column appears only when a flow was tunnelled, so the
	// common bare capture keeps its table.
	tunnelled := slices.ContainsFunc(out.Flows, func(f replayFlow) bool { return f.Tunnel != "" })
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', tabwriter.AlignRight)
	header := "LOCAL\tREMOTE\tSAMPLES\tRTT_MS\tAVG_MS\tJITTER_MS\tMIN_MS\tMAX_MS\t"
	if tunnelled {
		header += "TUNNEL\t"
	}
	fmt.Fprintln(tw, header)
	for _, f := range out.Flows {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t",
			netip.AddrPortFrom(f.Src, f.SrcPort), netip.AddrPortFrom(f.Dst, f.DstPort),
			f.Samples, f.RTT, f.RTTAvg, f.RTTJitter, f.RTTMin, f.RTTMax)
		if tunnelled {
			fmt.Fprintf(tw, "%s\t", f.Tunnel)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "%d packets, %d TCP, %d malformed, %d flows\n", out.Packets, out.TCPPackets, out.DecodeErrors, len(out.Flows))
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
