// Package capture turns packets into per-flow RTT state: it reads frames from
// a live interface or a capture file, decodes them, finds their flow and
// updates the flow's RTT estimate. It knows nothing of metrics or agents;
// readers take consistent snapshots of the flow table.
package capture

import (
	"net/netip"
	"time"

	"github.com/gometro/go-metro/capture/flow"
	"github.com/gometro/go-metro/capture/packet"
)

// Config configures an Engine. Zero values take the documented defaults.
type Config struct {
	Interface string // live interface name, or "any"; ignored when File is set
	File      string // pcap/pcapng file to replay instead of capturing live
	Backend   string // live capture backend: "afpacket" (default) or "pcap" (build tag pcap)
	Snaplen   int    // bytes kept per frame; default 512

	// LocalIPs are addresses that count as "us" in addition to the
	// interface's own (mirrored ports, replays). For a file with no
	// LocalIPs the engine infers them (see Snapshot.InferredLocal).
	LocalIPs []netip.Prefix
	// Remotes restricts monitoring to these remote addresses (kernel filter
	// on live sources, user-space check everywhere). Empty: every remote.
	Remotes []netip.Prefix
	// Ports restricts monitoring to these remote ports. Empty: every port.
	Ports []uint16

	MaxFlows int           // hard cap on tracked flows; default 16384
	IdleTTL  time.Duration // drop flows idle this long; default 300s
	ExpTTL   time.Duration // drop closed (FIN/RST) flows this long after their last packet; default 60s

	PollTimeout time.Duration // live read timeout, bounds Cancel and snapshot latency; default 100ms
}

// Stats are the engine's cumulative counters.
type Stats struct {
	Packets      uint64 // frames read from the source
	TCPPackets   uint64 // frames that decoded as TCP
	DecodeErrors [packet.NumErrorKinds]uint64
	Kernel       struct{ Received, Dropped uint64 } // from the live source, since it was opened
	Flow         flow.Counters
	SourceOpens  uint64 // times a source was opened (re-opens after interface loss count)
}

// Malformed is the number of frames that failed to decode for a reason other
// than being valid non-TCP traffic.
func (s *Stats) Malformed() uint64 {
	var n uint64
	for k, v := range s.DecodeErrors {
		if packet.Error(k) != packet.ErrNone && packet.Error(k) != packet.ErrNotTCP {
			n += v
		}
	}
	return n
}

// Snapshot is a consistent copy of the engine's state at one instant.
type Snapshot struct {
	Taken         time.Time // wall clock when the snapshot was made
	CaptureTime   int64     // capture timestamp of the latest packet, ns since epoch
	Stats         Stats
	Flows         []flow.Summary
	LocalIPs      []netip.Addr // addresses treated as local
	InferredLocal bool         // LocalIPs were inferred from the traffic (replay without LocalIPs)
}
