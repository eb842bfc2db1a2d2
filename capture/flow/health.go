package flow

import (
	"math"
	"math/bits"
	"time"

	"github.com/gometro/go-metro/capture/packet"
)

// Capture duplicates and connection health.
//
// A capture duplicate is one transmission captured twice: a mirror port that
// copies both directions of a link, interface "any" seeing a frame on a
// veth and again on the bridge, two capture files merged. To the RTT rules a
// copy looks like a retransmission (old sequence space), and Karn's rule
// would then discard the sample of every ACK that covers it: a flow whose
// every frame is doubled is never timed. A real retransmission is a new
// transmission and differs from the original in what the sender stamps on
// each one: the IPv4 identification (Linux and Windows number every
// segment of a connection) or the TCP timestamp (TSval).
//
// Identities also grow. TSvals are monotonic (RFC 7323 5.4), and Linux and
// Windows number IPv4 datagrams with a counter, so a new transmission,
// retransmissions included, carries a TSval no older and an IP ID newer
// than every frame sent before it. A segment of old sequence space whose
// TSval is older than our newest one, or whose IP ID is not newer than the
// newest (while this flow's new data has only ever shown growing IDs: a
// stack with random IDs turns the rule off), is a copy however many frames
// lie between the two: a bulk flow's copies on "any" across a forwarding
// hop come a whole batch of frames apart.
//
// Otherwise each of our segments that occupies sequence space is fingerprinted
// (sequence range, flags, ACK, window, IP ID, TSval, TSecr, SACK blocks; a
// copy is byte-identical in all of them) and compared with the last dupRing ones:
//
//   - IPv4 with a non-zero IP ID: the same fingerprint within dupIdentWindow
//     is a copy. A retransmission carries a new IP ID; the 16-bit ID of one
//     connection repeats only after 65536 segments.
//   - Otherwise (IPv6 has no IP ID; some IPv4 stacks send 0, RFC 6864) with
//     timestamps: the same fingerprint within dupIdentWindow is a copy,
//     unless the two are less than one TSval tick apart (dupTSTick, Linux's
//     1 ms clock) and the peer sent a packet in between: a fast
//     retransmission on a sub-millisecond path can carry the original's
//     TSval, but only after the peer's duplicate ACKs or SACKs.
//   - Neither: only an exact copy within dupExactWindow with no packet from
//     the peer in between. A retransmission is triggered either by the
//     peer's packets (fast retransmit, RACK: excluded by the silence) or by
//     a timer, and no stack's retransmission timer fires within 1 ms (Linux:
//     RTO >= 200 ms, TLP >= 2 jiffies; RFC 6298: RTO >= 1 s), while copies
//     from a mirror port or "any" are microseconds apart. Copies from two
//     capture points farther apart than that cannot be told from
//     retransmissions without an identity and are counted as such.
//
// Without an IP ID, the interface a frame was captured on tells too, where
// the capture knows it (packet.Packet.IfIndex: live "any", pcapng, Linux
// cooked v2): a retransmission leaves the way our new data does, so it is
// first seen on the interface our newest new data was, while a copy is the
// same frame seen further along its path (a bridge and its port, a bond
// and its slave, the two sides of a forwarding hop, a second merged file).
// A segment of old sequence space seen on another interface than our
// newest new data is a copy, however many frames and SACKs lie between.
//
// Without an IP ID, a segment of old sequence space whose TSval (if any)
// equals our newest, in an entry first sent at most 1 ms ago and never
// retransmitted, with no duplicate ACK or SACK from the peer since, is a
// copy too, wherever the ring is (sentUnsignalled). What stays ambiguous,
// where the capture interface is unknown (a classic pcap file, libpcap
// live): IPv6 copies of a bulk flow that follow one of the peer's SACKs
// within one TSval tick and lie beyond the ring; they count as
// retransmissions (never fewer than the real ones), and Karn skips their
// ACKs.
//
// The ring holds the last dupRing segments, so copies more than dupRing of
// our segments apart (merged files of a fast bulk flow) are recognised only
// by the identity and timing rules above.
//
// The peer's frames are checked too, in a ring of their own, and a frame
// identical to one of the last dupInRing within dupIdentWindow is skipped
// (not counted: without an identity it may be a genuine repeat, such as a
// dupack with neither timestamps nor SACK). Skipping is safe whatever it
// is, because an identical frame can only re-apply what the first did; and
// needed, because applying it again after the first changed the state is
// not idempotent: an ACK that advances the cumulative ACK is timed from it
// and its SACK blocks are not, so its copy would then time them (a sample
// the kernel never takes), and a copy of the answer's first data frame
// after our next request would make a bogus response time.
const (
	dupRing        = 8
	dupInRing      = 4
	dupIdentWindow = int64(time.Second)
	dupExactWindow = int64(time.Millisecond)
	dupTSTick      = int64(time.Millisecond)
	// dupTimeShift turns ns into the ring's ~1 µs units (uint32: wraps
	// every 73 minutes, far beyond any window).
	dupTimeShift = 10
)

type dupEntry struct {
	fp uint32 // fingerprint; 0: unused
	at uint32 // capture time >> dupTimeShift
}

// health bits.
const (
	hSYNOut     uint16 = 1 << iota // we sent a SYN (no ACK): we are the client
	hSYNIn                         // the peer sent a SYN (no ACK): we are the server
	hSYNACK                        // a SYN/ACK was seen: the handshake was answered
	hRefused                       // a SYN was answered by RST
	hReset                         // an RST ended the connection after (or without) a handshake
	hFIN                           // a FIN was seen, from either side
	hPeerSpoke                     // the peer sent at least one packet
	hZeroRemote                    // the peer's window is zero now
	hZeroLocal                     // our window is zero now
	hRequest                       // we sent data since the peer's last data
	hIDSeen                        // maxID holds the newest IPv4 ID of our segments
	hIDNotMono                     // our new data showed an IP ID not newer than maxID
)

// health is the per-flow state of duplicates, connection health and the
// RTT sample reservoir, fixed and without pointers; its rings (the
// fingerprints of our recent segments and of the peer's, and the
// reservoir's values) are the flow's (rings.go).
type health struct {
	dupNext uint8 // the slot of the dup ring the next fingerprint takes
	dupPeer uint8 // bit i: the peer sent a packet after the dup ring's entry i was recorded
	bits    uint16
	inNext  uint8
	resCap  uint8  // the reservoir's size for this interval (see add)
	maxID   uint16 // newest IPv4 ID of our segments (serial arithmetic)
	resN    uint32 // samples offered to the reservoir since the last summary

	duplicates            uint32
	zeroRemote, zeroLocal uint32 // zero-window episodes
	respCount             uint32
	handshakeUS           uint32 // the handshake sample, µs; 0 if none
	dataIf                uint32 // the interface our newest new data was captured on (packet.Packet.IfIndex); 0 if unknown
	lastOutData           int64  // ns: capture time of our latest data frame
	respSum               int64  // ns: sum of response times
	lossAt                int64  // ns: the peer's latest duplicate ACK or SACK
}

// ReservoirSize is how many RTT samples a flow keeps between two summaries:
// a uniform random subset of all it took (reservoir sampling, Vitter's
// algorithm R), so a reader can build honest percentiles at a fixed cost
// whatever the sample rate. 16 values of 4 bytes: a request/response
// connection keeps every sample; a bulk flow timing thousands of ACKs per
// interval is represented without bias. A flow keeps its first smallRes
// in its small rings and moves to full-size ones for more (rings.go).
const ReservoirSize = 16

// addSample offers one sample (ns) taken at ts to the reservoir, as
// Vitter's algorithm R does over the interval's size (resCap): the size
// of the rings in use when the interval began, or the full size once the
// flow moved to full-size rings before its small reservoir was ever full.
// The replacement draw is a splitmix64 hash of ts and the count: no
// generator state per flow, and deterministic in tests.
func (f *Flow) addSample(d, ts int64, c *sampleCounters) {
	h := &f.h
	if h.resCap == 0 {
		h.resCap = uint8(len(f.resRing()))
	}
	if h.resN == uint32(h.resCap) && h.resCap < ReservoirSize && f.growRecent(c) {
		h.resCap = ReservoirSize
	}
	vals := f.resRing()[:h.resCap]
	// Rounded up to the µs: a sample kept is never below the one taken.
	v := uint32(min(max((d+999)/1000, 1), math.MaxUint32))
	if h.resN < uint32(len(vals)) {
		vals[h.resN] = v
	} else {
		x := splitmix(uint64(ts) + uint64(h.resN)*0x9e3779b97f4a7c15)
		// Lemire's multiply-shift: uniform in [0, n] without a division.
		if j := (x >> 32) * (uint64(h.resN) + 1) >> 32; j < uint64(len(vals)) {
			vals[j] = v
		}
	}
	if h.resN < math.MaxUint32 {
		h.resN++
	}
}

func splitmix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// noteRST classifies the first RST of a flow: an answer to a SYN (syn is
// the bit of the side that sent it) before any SYN/ACK is a refusal;
// anything else is a reset.
func (f *Flow) noteRST(syn uint16, tc *Counters) {
	h := &f.h
	switch {
	case h.bits&(hRefused|hReset) != 0:
	case h.bits&(syn|hSYNACK) == syn:
		h.bits |= hRefused
		tc.Refused++
	default:
		h.bits |= hReset
	}
}

// zeroEpisode returns 1 when a window goes from open to zero: the start of
// one zero-window episode (the receiver's buffer is full), however many
// zero-window ACKs and probes it lasts.
func zeroEpisode(b *uint16, bit, window uint16) uint32 {
	if window != 0 {
		*b &^= bit
		return 0
	}
	if *b&bit != 0 {
		return 0
	}
	*b |= bit
	return 1
}

// duplicateOut reports whether p, a segment we sent, is a capture copy of
// one of the last dupRing (see the rules above), and remembers it if not.
func (f *Flow) duplicateOut(p *packet.Packet, ts int64, c *sampleCounters) bool {
	n := p.SeqLen()
	if n == 0 {
		return false // occupies no sequence space: never a retransmission
	}
	h := &f.h
	ipid := !p.IPv6 && p.IPID != 0
	old := f.state&haveNxt != 0 && seqLT(p.Seq, f.sndNxt)
	if old {
		if p.HasTimestamps && f.state&haveTSval != 0 && seqLT(p.TSval, f.lastTSval) {
			return true
		}
		if ipid && h.bits&(hIDSeen|hIDNotMono) == hIDSeen && int16(p.IPID-h.maxID) <= 0 {
			return true
		}
	}
	switch {
	case ipid:
		h.noteID(p.IPID, !old)
	case !old:
		if p.IfIndex != 0 {
			h.dataIf = p.IfIndex
		}
	case p.IfIndex != 0 && h.dataIf != 0 && p.IfIndex != h.dataIf:
		return true
	case (!p.HasTimestamps || p.TSval == f.lastTSval) && f.sentUnsignalled(p.Seq, ts):
		return true
	}
	fp := fingerprint(p, n)
	now := uint32(ts >> dupTimeShift)
	// New data (at or past snd.nxt) cannot be a copy of a segment in the
	// ring: rttOut moved snd.nxt past each one recorded (only a RST
	// leaves it behind), so a copy of one is old. A sender's every new
	// data segment skips the scan; the entry is still recorded below.
	dups := f.dupsOut()
	if old || f.state&haveNxt == 0 || p.RST() {
		for i := range dups {
			e := &dups[i]
			if e.fp != fp {
				continue
			}
			gap := int64(now-e.at) << dupTimeShift
			peer := h.dupPeer&(1<<i) != 0
			switch {
			case ipid:
				if gap <= dupIdentWindow {
					return true
				}
			case p.HasTimestamps:
				if gap <= dupIdentWindow && (!peer || gap > dupTSTick) {
					return true
				}
			default:
				if gap <= dupExactWindow && !peer {
					return true
				}
			}
		}
	}
	// A small ring whose oldest entry could still match moves to a
	// full-size one rather than forget it (rings.go).
	if len(dups) < dupRing && live(&dups[h.dupNext%uint8(len(dups))], now) && f.growRecent(c) {
		dups = f.dupsOut()
	}
	i := h.dupNext % uint8(len(dups))
	dups[i] = dupEntry{fp: fp, at: now}
	h.dupPeer &^= 1 << i
	h.dupNext = (i + 1) % uint8(len(dups))
	return false
}

// live reports whether fingerprint e could still match a frame captured
// at now (in the rings' time units): it is in use and within
// dupIdentWindow, the longest any rule looks back.
func live(e *dupEntry, now uint32) bool {
	return e.fp != 0 && int64(now-e.at)<<dupTimeShift <= dupIdentWindow
}

// sentUnsignalled reports a segment of old sequence space that lies in an
// entry never retransmitted, first sent at most dupExactWindow ago, with no
// loss signal from the peer (a duplicate ACK, a SACK) since: a
// retransmission needs one of those or a timer, and no stack's timer fires
// within 1 ms, so without an identity this is a copy, however many frames
// came in between.
func (f *Flow) sentUnsignalled(seq uint32, ts int64) bool {
	for k := uint8(0); k < f.segCount; k++ {
		s := f.seg(k)
		if seqLEQ(s.start, seq) && seqLT(seq, s.end) {
			t0 := f.sentAt(s)
			return s.flags&(segRetrans|segNoTime) == 0 && ts-t0 <= dupExactWindow && f.h.lossAt < t0
		}
	}
	return false
}

// noteID keeps the newest IPv4 ID of our segments, and notes a flow whose
// new data does not show growing IDs.
func (h *health) noteID(id uint16, newData bool) {
	switch {
	case h.bits&hIDSeen == 0:
		h.bits |= hIDSeen
		h.maxID = id
	case int16(id-h.maxID) > 0:
		h.maxID = id
	case newData:
		h.bits |= hIDNotMono
	}
}

// repeatIn reports whether p, a frame from the peer, is identical to one
// of its last dupInRing within dupIdentWindow (looked for only with scan),
// and remembers it if not.
func (f *Flow) repeatIn(p *packet.Packet, ts int64, scan bool, c *sampleCounters) bool {
	h := &f.h
	fp := fingerprint(p, p.SeqLen())
	now := uint32(ts >> dupTimeShift)
	in := f.dupsIn()
	for i := 0; scan && i < len(in); i++ {
		if e := &in[i]; e.fp == fp && int64(now-e.at)<<dupTimeShift <= dupIdentWindow {
			return true
		}
	}
	if len(in) < dupInRing && live(&in[h.inNext%uint8(len(in))], now) && f.growRecent(c) {
		in = f.dupsIn()
	}
	i := h.inNext % uint8(len(in))
	in[i] = dupEntry{fp: fp, at: now}
	h.inNext = (i + 1) % uint8(len(in))
	return false
}

// fingerprint hashes what a capture copy repeats exactly and a new
// transmission changes or may change; never 0 (0 marks an unused entry).
func fingerprint(p *packet.Packet, n uint32) uint32 {
	a := uint64(p.Seq)<<32 | uint64(n)
	b := uint64(p.Ack)<<32 | uint64(p.Window)<<16 | uint64(p.IPID)
	c := uint64(p.TSval)<<32 | uint64(p.TSecr)
	x := mum(a^0xa0761d6478bd642f, b^0xe7037ed1a0b428db)
	x = mum(x^c, 0x8ebc6af09c88c6e3^uint64(p.Flags)<<8^uint64(p.NumSACK))
	for i := 0; i < int(min(p.NumSACK, packet.MaxSACKBlocks)); i++ {
		x = mum(x^uint64(p.SACK[i].Left)<<32^uint64(p.SACK[i].Right), 0x589965cc75374cc3)
	}
	return uint32(x) | 1
}

func mum(x, y uint64) uint64 {
	hi, lo := bits.Mul64(x, y)
	return hi ^ lo
}

// healthSummary is the health part of a flow's Summary, with the RTT
// samples kept since the previous summary that took them. takeSamples
// hands them over and starts a new interval; without it they stay, for
// the reader that reports them.
func (f *Flow) healthSummary(takeSamples bool) Health {
	h := &f.h
	s := Health{
		RTTSeen:           uint64(h.resN),
		Opened:            h.bits&hSYNACK != 0,
		Refused:           h.bits&hRefused != 0,
		Reset:             h.bits&hReset != 0,
		FIN:               h.bits&hFIN != 0,
		SYNUnanswered:     h.bits&(hSYNOut|hPeerSpoke) == hSYNOut,
		Duplicates:        uint64(h.duplicates),
		ZeroWindowsRemote: uint64(h.zeroRemote),
		ZeroWindowsLocal:  uint64(h.zeroLocal),
		Handshake:         int64(h.handshakeUS) * 1000,
		ResponseSum:       h.respSum,
		Responses:         uint64(h.respCount),
	}
	copy(s.RTTSampled[:], f.resRing()[:min(h.resN, uint32(h.resCap))])
	if takeSamples {
		h.resN, h.resCap = 0, 0
	}
	switch {
	case h.bits&hSYNOut != 0:
		s.Role = RoleClient
	case h.bits&hSYNIn != 0:
		s.Role = RoleServer
	}
	return s
}
