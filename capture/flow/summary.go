package flow

import (
	"net/netip"

	"github.com/gometro/go-metro/capture/rtt"
)

// Summary is a flow as readers see it in a snapshot: a copy, detached from
// the table, safe to keep and share.
type Summary struct {
	Local, Remote netip.AddrPort
	RTT           rtt.Estimator // samples from our segments ACKed by the remote
	FirstSeen     int64         // capture time of the first packet, ns since epoch
	LastSeen      int64         // capture time of the latest packet, ns since epoch
	Packets       uint64        // packets seen in either direction
	Retransmits   uint64        // our segments that re-sent already-sent sequence space
	Closed        bool          // FIN or RST seen
	Tunnel        TunnelKey     // the tunnel the flow was seen in; zero when not tunnelled
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
}
