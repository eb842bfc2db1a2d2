// Package synth generates deterministic, realistic TCP captures for benchmarks and accuracy
// tests of the RTT engine.
//
// It does not draw packets at random: it runs a discrete-event simulation of TCP endpoints (a
// local client host talking to many remote servers, each path with its own RTT, jitter and
// bottleneck rate) and records every frame as a packet capture on the local host would see it:
// outgoing frames stamped when they leave the local NIC, incoming frames when they arrive. Loss
// is applied on the path, so an outgoing frame lost on the way is still in the capture, while a
// lost incoming frame never is. The simulated stacks implement what makes RTT measurement hard:
// delayed ACKs, TCP timestamps with the RFC 7323 echo rules, SACK blocks, fast retransmit and
// RTO with backoff (so Karn's rule matters), keepalive probes, window updates, sequence number
// wraparound, FIN and RST teardown, IPv4 and IPv6.
//
// The ground truth of every connection (path RTT, jitter, and the RTT samples a perfect monitor
// at the capture point would take) is returned with the frames, so tests can compare what the
// engine reports with what actually happened.
//
// To get the realistic capture as a file (for tshark or `go-metro replay`):
//
//	GOMETRO_SYNTH_OUT=/tmp/synth.pcap go test -run TestWriteCapture ./internal/synth/
//
// To get tshark's per-flow RTT for comparison, run tsharkcmp.Run on the file, then
// LocalSenderRTT on its result: it is keyed like FlowTruth.Key, so it lines up with the truth
// and with the engine's flows. tshark times
// every ACK against the segment it acknowledges and knows nothing of Karn's rule or of
// TSval/TSecr echoes: on loss-free flows its samples equal FlowTruth.SeqRTT exactly (a test
// checks this); on lossy flows and for receive-mostly flows it is not a reference.
package synth

import (
	"net/netip"
	"time"
)

// Config describes the traffic to simulate. The zero value of a field means "none" for counts;
// use Realistic or Small as a base and adjust.
type Config struct {
	// Seed makes the capture deterministic: the same Config gives the same bytes.
	Seed int64
	// Start is the wall-clock instant of the first event.
	Start time.Time

	// BulkSendFlows are connections where the local host uploads BulkBytes.
	BulkSendFlows int
	// BulkRecvFlows are connections where the local host downloads BulkBytes and only ACKs,
	// so RTT can come only from the handshake and TSval/TSecr echoes.
	BulkRecvFlows int
	// BulkBytes is the payload size of each bulk transfer.
	BulkBytes int64
	// ReqRespFlows are request/response connections opened by the local host.
	ReqRespFlows int
	// AcceptFlows are request/response connections opened by a remote host: the local host
	// accepts, receives requests and sends responses.
	AcceptFlows int
	// IPv6Flows of the connections above (request/response first, then bulk) use IPv6.
	IPv6Flows int
	// WrapFlows of the bulk connections (at least one when there is any; uploads and downloads
	// alternately) start with an ISN just below 2^32 on the sending side, so their sequence
	// numbers wrap early.
	WrapFlows int

	// Servers is the number of distinct remote hosts per address family; connections are spread
	// over them, so several connections share a host pair.
	Servers int
	// MinRTT and MaxRTT bound the base path RTT of each remote host (log-uniform).
	MinRTT, MaxRTT time.Duration
	// JitterFrac is the per-packet one-way jitter as a fraction of the path RTT (uniform in
	// [0, JitterFrac*RTT) per direction); MinJitter is its floor.
	JitterFrac float64
	MinJitter  time.Duration
	// MinRateMbps and MaxRateMbps bound the bottleneck rate of each path (log-uniform).
	MinRateMbps, MaxRateMbps float64

	// AckCompression, when positive, makes the path toward the local host deliver in bursts:
	// a frame that would reach the local NIC at t is held until the next multiple of
	// AckCompression after the epoch and released then, back to back with the others held
	// (what a busy receive path, a Wi-Fi aggregate or a DOCSIS upstream does to ACKs). The
	// frames of one burst answer segments sent over a whole interval, so the RTT samples of one
	// burst spread over that interval: the RTT moves inside a flight.
	AckCompression time.Duration

	// LossRate is the probability that a segment is lost on the path, in either direction.
	LossRate float64
	// NoTimestampsFrac of connections do not negotiate the TCP timestamps option.
	NoTimestampsFrac float64
	// NoSACKFrac of connections do not negotiate SACK.
	NoSACKFrac float64
	// RSTFrac of request/response connections end with a RST instead of a FIN exchange.
	RSTFrac float64

	// Duration is the window over which request/response connections start.
	Duration time.Duration
	// MinExchanges and MaxExchanges bound the request/response exchanges per connection.
	MinExchanges, MaxExchanges int
	// MaxThink is the longest pause between exchanges (log-uniform from 1 ms).
	MaxThink time.Duration
	// KeepaliveFrac of request/response connections have long idle periods with keepalive
	// probes (sent every KeepaliveInterval while idle).
	KeepaliveFrac     float64
	KeepaliveInterval time.Duration
}

// Realistic is the default profile: a few bulk flows each way, several hundred request/response
// connections (some of them accepted, some IPv6), light random loss; about 3.5 million frames.
func Realistic() Config {
	return Config{
		Seed:              1,
		Start:             time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		BulkSendFlows:     3,
		BulkRecvFlows:     3,
		BulkBytes:         500 << 20,
		ReqRespFlows:      560,
		AcceptFlows:       40,
		IPv6Flows:         80,
		WrapFlows:         2,
		Servers:           120,
		MinRTT:            time.Millisecond,
		MaxRTT:            150 * time.Millisecond,
		JitterFrac:        0.05,
		MinJitter:         20 * time.Microsecond,
		MinRateMbps:       50,
		MaxRateMbps:       1000,
		LossRate:          0.0005,
		NoTimestampsFrac:  0.15,
		NoSACKFrac:        0.05,
		RSTFrac:           0.1,
		Duration:          60 * time.Second,
		MinExchanges:      5,
		MaxExchanges:      60,
		MaxThink:          2 * time.Second,
		KeepaliveFrac:     0.1,
		KeepaliveInterval: time.Second,
	}
}

// Small is a quick profile for unit tests: every feature of Realistic on a few dozen
// connections, with enough loss to exercise retransmissions; a few tens of thousands of frames.
func Small() Config {
	c := Realistic()
	c.BulkSendFlows = 2
	c.BulkRecvFlows = 2
	c.BulkBytes = 4 << 20
	c.ReqRespFlows = 30
	c.AcceptFlows = 4
	c.IPv6Flows = 8
	c.Servers = 10
	c.LossRate = 0.01
	c.RSTFrac = 0.2
	c.Duration = 5 * time.Second
	c.MinExchanges = 2
	c.MaxExchanges = 10
	c.MaxThink = 3 * time.Second
	c.KeepaliveFrac = 0.3
	return c
}

// Local addresses of the simulated capture host.
var (
	LocalIPv4 = netip.MustParseAddr("10.1.0.1")
	LocalIPv6 = netip.MustParseAddr("fd00:1::1")
)
