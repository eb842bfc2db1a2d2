package synth

import (
	"fmt"
	"net/netip"
	"time"
)

// FlowKind says what a simulated connection does.
type FlowKind uint8

// Flow kinds.
const (
	BulkSend FlowKind = iota // local host uploads; remote only ACKs
	BulkRecv                 // local host downloads and only ACKs
	ReqResp                  // local host connects, sends requests, receives responses
	Accept                   // remote host connects, sends requests; local host responds
)

func (k FlowKind) String() string {
	switch k {
	case BulkSend:
		return "bulk-send"
	case BulkRecv:
		return "bulk-recv"
	case ReqResp:
		return "req-resp"
	case Accept:
		return "accept"
	}
	return fmt.Sprintf("FlowKind(%d)", uint8(k))
}

// RTTStats summarises RTT samples; SRTT and RTTVar follow RFC 6298 (alpha 1/8, beta 1/4, the
// first sample gives SRTT=R, RTTVAR=R/2), as the kernel and the engine compute them.
type RTTStats struct {
	N              int
	Min, Max, Mean time.Duration
	SRTT, RTTVar   time.Duration
	sum            int64
}

func (s *RTTStats) add(r int64) {
	d := time.Duration(r)
	if s.N == 0 {
		s.Min, s.Max = d, d
		s.SRTT, s.RTTVar = d, d/2
	} else {
		s.Min, s.Max = min(s.Min, d), max(s.Max, d)
		diff := s.SRTT - d
		if diff < 0 {
			diff = -diff
		}
		// RTTVAR uses the old SRTT, so it is updated first.
		s.RTTVar = (3*s.RTTVar + diff) / 4
		s.SRTT = (7*s.SRTT + d) / 8
	}
	s.N++
	s.sum += r
	s.Mean = time.Duration(s.sum / int64(s.N))
}

// FlowTruth is the ground truth of one simulated connection.
type FlowTruth struct {
	Kind          FlowKind
	Local, Remote netip.AddrPort
	// PathRTT is the base round-trip propagation delay of the path; Jitter the upper bound of
	// the extra per-packet one-way delay (uniform in [0, Jitter) in each direction). Queueing
	// at the bottleneck (RateMbps) comes on top for bursts.
	PathRTT, Jitter time.Duration
	RateMbps        float64
	Timestamps      bool // TCP timestamps option negotiated
	SACK            bool // SACK permitted
	Wraps           bool // the data sender's ISN was set just below 2^32
	Reset           bool // connection ended with a RST
	// ISN of the local and remote side.
	LocalISN, RemoteISN uint32
	// Retransmits counts segments the local host sent again (all are in the capture);
	// RemoteRetransmits those the remote sent again (lost ones never reach the capture).
	Retransmits, RemoteRetransmits int
	// KeepaliveProbes sent by the local host (each answered by a duplicate ACK that is not an
	// RTT sample of data, though tshark times it).
	KeepaliveProbes int
	// BytesSent and BytesReceived are unique payload bytes acknowledged by the peer and
	// delivered in order to the local host.
	BytesSent, BytesReceived int64
	// Frames captured for this connection; FirstTS and LastTS their capture instants.
	Frames          int
	FirstTS, LastTS int64
	// SeqRTT are the samples an ideal monitor takes at the capture point: a local data segment
	// (or SYN, or SYN/ACK) against the first ACK covering it, skipping any ACK that covers a
	// retransmitted segment (Karn). They include the peer's delayed-ACK time, as the kernel's.
	SeqRTT RTTStats
	// KernelRTT are the samples the Linux kernel's srtt takes (tcp_clean_rtx_queue): one per
	// ACK that newly acknowledges data, timed from the EARLIEST newly acknowledged segment;
	// if any of them was retransmitted, from the TSval the ACK echoes instead, in whole ticks
	// of the 1 ms TSval clock (tcp_ack_update_rtt's fallback, tcp_rtt_tsopt_us). Its SRTT is
	// what TCP_INFO's tcpi_rtt would say at the capture point; SeqRTT differs from it for ACKs
	// that cover several segments or a retransmitted one.
	KernelRTT RTTStats
	// TSRTT are TSval/TSecr echo samples: first sighting of a local TSval against the first
	// incoming segment echoing it (pping's method); they include the peer's ACK delay and send
	// pacing, and are the only samples of a receive-mostly flow after the handshake.
	TSRTT RTTStats
}
