package flow

import (
	"net/netip"

	"github.com/gometro/go-metro/capture/rtt"
)

// Summary is a flow as readers see it in a snapshot: a copy, detached from
// the table, safe to keep and share. Taking it hands over the flow's RTT
// sample reservoir (Health.RTTSampled), so one reader should take them.
type Summary struct {
	Local, Remote netip.AddrPort
	RTT           rtt.Estimator // samples from our segments ACKed by the remote
	FirstSeen     int64         // capture time of the first packet, ns since epoch
	LastSeen      int64         // capture time of the latest packet, ns since epoch
	Packets       uint64        // packets seen in either direction
	Retransmits   uint64        // our segments that re-sent already-sent sequence space
	Closed        bool          // FIN or RST seen
	Tunnel        TunnelKey     // the tunnel the flow was seen in; zero when not tunnelled
	Health        Health
	// Slot is the flow's place in its table (the engine offsets it by
	// its worker's): a reader that keeps something of each flow between
	// listings keeps it by slot, in an array as large as max_flows
	// instead of a map keyed by the flow (rttcheck). A slot holds one
	// flow at a time; a flow that took over a slot has another key or
	// FirstSeen than the one before it.
	Slot int32
}

// Role is which side opened a connection, when its SYN was seen.
type Role uint8

// Roles.
const (
	RoleUnknown Role = iota // the capture began after the handshake
	RoleClient              // we sent the SYN
	RoleServer              // the peer sent the SYN
)

func (r Role) String() string {
	switch r {
	case RoleClient:
		return "client"
	case RoleServer:
		return "server"
	}
	return "unknown"
}

// Health is a flow's connection-health record: what happened to the
// connection as a whole (each event once per flow) and its handshake and
// server response times. See health.go for the exact rules.
type Health struct {
	Role    Role
	Opened  bool // a SYN/ACK was seen: the handshake was answered
	Refused bool // a SYN was answered by RST (by the peer, or by us as server)
	Reset   bool // an RST was seen that was not a refusal
	FIN     bool // a FIN was seen, from either side
	// SYNUnanswered: we sent a SYN and the peer has sent nothing at all.
	// Whether that is a timeout is the reader's call (it needs a clock).
	SYNUnanswered bool
	// Duplicates are capture copies of our segments (mirror port, "any",
	// merged files): counted, never taken for retransmissions.
	Duplicates uint64
	// Zero-window episodes: the peer (Remote) or we (Local) advertised a
	// zero window after an open one.
	ZeroWindowsRemote, ZeroWindowsLocal uint64
	// Handshake is the handshake's RTT sample, ns (0: not timed): SYN to
	// SYN/ACK or RST/ACK when we connect, SYN/ACK to ACK when we accept.
	Handshake int64
	// Responses server response times were taken (client role only), and
	// ResponseSum is their sum, ns: each from our latest data frame to the
	// first data frame of the peer that follows it.
	ResponseSum int64
	Responses   uint64
	// RTTSeen samples were taken since the previous summary of this flow;
	// RTTSampled[:min(RTTSeen, ReservoirSize)] are a uniform random subset
	// of them, µs (the sequence samples, or the echo ones for a flow that
	// never timed its own data). Taking a summary starts a new interval.
	RTTSampled [ReservoirSize]uint32
	RTTSeen    uint64
}

// Counters are the table's cumulative counters.
type Counters struct {
	Flows           int    // flows tracked now
	Created         uint64 // flows ever created
	Expired         uint64 // flows removed by the idle_ttl / exp_ttl sweep
	EvictedHalfOpen uint64 // evicted to make room: never completed a handshake nor carried data
	EvictedClosed   uint64 // evicted to make room: FIN/RST seen
	EvictedActive   uint64 // evicted to make room: established flows (the table is too small)
	Samples         uint64 // RTT samples taken
	KarnSkipped     uint64 // ACKs that would have timed a retransmitted segment
	Retransmits     uint64 // retransmitted segments seen
	NotLocal        uint64 // TCP packets with neither address local
	Filtered        uint64 // TCP packets whose remote address or port is not monitored
	Decimations     uint64 // times a flow's flight outgrew its entries and halved their resolution
	Duplicates      uint64 // capture copies of our segments (not retransmissions)
	Refused         uint64 // SYNs answered by RST
	FlightsInUse    int    // flows holding a full-size flight block now (rings.go)
	RecentsInUse    int    // flows holding a full-size recent-frames block now
	RingsDenied     uint64 // times a flow needed a full-size block and its pool had none
}

// Plus is the counters of c and of another table's (another worker's):
// every count summed.
func (c Counters) Plus(o Counters) Counters {
	return Counters{
		Flows:           c.Flows + o.Flows,
		Created:         c.Created + o.Created,
		Expired:         c.Expired + o.Expired,
		EvictedHalfOpen: c.EvictedHalfOpen + o.EvictedHalfOpen,
		EvictedClosed:   c.EvictedClosed + o.EvictedClosed,
		EvictedActive:   c.EvictedActive + o.EvictedActive,
		Samples:         c.Samples + o.Samples,
		KarnSkipped:     c.KarnSkipped + o.KarnSkipped,
		Retransmits:     c.Retransmits + o.Retransmits,
		NotLocal:        c.NotLocal + o.NotLocal,
		Filtered:        c.Filtered + o.Filtered,
		Decimations:     c.Decimations + o.Decimations,
		Duplicates:      c.Duplicates + o.Duplicates,
		Refused:         c.Refused + o.Refused,
		FlightsInUse:    c.FlightsInUse + o.FlightsInUse,
		RecentsInUse:    c.RecentsInUse + o.RecentsInUse,
		RingsDenied:     c.RingsDenied + o.RingsDenied,
	}
}
