// Package flow keeps per-connection TCP state and turns it into RTT samples.
//
// A flow is seen from the local side: "outgoing" packets are ours, "incoming"
// ones are the remote's. Two sampling methods feed two estimators:
//
//   - Sequence timing, as the Linux kernel does it (tcp_clean_rtx_queue): each
//     of our data segments (and SYN, SYN/ACK) is remembered with its capture
//     time; an incoming ACK that newly acknowledges data yields one sample,
//     timed from the earliest newly acknowledged segment. Karn's rule applies:
//     an ACK that covers any retransmitted segment yields no sample. An ACK
//     that only newly SACKs data is timed from the earliest newly SACKed
//     segment, as the kernel's sack_rtt is.
//   - Timestamp echo, pping's method, for flows that mostly receive: the first
//     time we send a TSval, its time is remembered; the first incoming TSecr
//     that echoes it yields a sample. A TSval seen again never makes a new
//     entry, and a TSecr is only used once.
//
// The reported estimate is the sequence one once the flow has timed its own
// data, which is what the kernel's srtt tracks; until then the echo one, if
// any; else the handshake sample.
//
// Per-flow memory is bounded: at most maxOutstanding entries of sent data
// and maxTSvals timestamps, in rings that start small and grow with what
// the flow holds (rings.go). When a flight of segments outgrows the
// entries, the flow decimates: adjacent entries merge and each new entry takes twice as
// many frames (the stride). An entry keeps the capture time of its first
// frame, its frame count and the time to its last frame, so the send time of
// the frame holding the earliest byte an ACK newly acknowledges is known
// exactly at an entry's start (or anywhere in a single-frame entry, as with
// a TSO super-frame acked in parts) and interpolated inside a multi-frame
// entry, which holds only frames that make the interpolation safe (see fits
// and evenlySpaced). Every ACK is therefore timed, as the kernel times every
// ACK: its srtt takes one step per ACK, so an estimator that timed fewer ACKs would
// lag it whenever the RTT moves inside a flight (queues that build and
// drain, ACKs that arrive in compressed bursts). An entry whose span does
// not fit (segNoSpan) falls back to timing its first frame only, and no
// sample is ever credited to a segment whose send time is unknown.
//
// An interpolated send time can be later than the real one, and the sample
// then shorter than the path allows. So every sample has two values: the
// kernel-style one, which moves the smoothed RTT, and a ceiling timed from
// the earliest frame the acknowledged byte can be in (the entry's first),
// which the sample's own figures (last, minimum, maximum, the reservoir
// readers build percentiles from) show: never below the truth, above it by
// at most the entry's span. Times are kept rounded down for the same
// reason. See sample.
package flow

import (
	"math"

	"github.com/gometro/go-metro/capture/packet"
	"github.com/gometro/go-metro/capture/rtt"
)

const (
	// maxOutstanding bounds the entries of sent-but-unacknowledged data
	// remembered per flow (see decimate): enough to time every ACK of a
	// typical flight, 16 bytes each, in a flow's full-size rings.
	maxOutstanding = 128
	// maxTSvals bounds the TSvals awaiting an echo per flow.
	maxTSvals = 8
	// maxWindow is the largest receive window TCP can advertise (65535
	// scaled by 2^14, RFC 7323 2.3): no sender has more than that in
	// flight, so no valid ACK is further ahead of what we sent.
	maxWindow = 65535 << 14
)

// Key identifies a flow from the local side. Addresses are IPv6 or
// IPv4-mapped IPv6, so the key has a fixed size and no pointers.
type Key struct {
	Local, Remote         [16]byte
	LocalPort, RemotePort uint16
	Tunnel                TunnelKey // zero when not tunnelled (see table.go)
}

// segment is one entry of our transmissions awaiting acknowledgement:
// sequence space [start, end), first frame captured atUS microseconds
// after the flow's segBase (the kernel, too, keeps transmit times in µs).
//
// A multi-frame entry (see decimate) also keeps how many frames it holds and
// the time from its first frame to its last (spanUnits of spanUnitUS), so
// the send time of any frame inside it can be interpolated: that is what
// lets every ACK be timed, as the kernel times every ACK, once a flight
// outgrows the entries. Both fit in what would be padding: 16 bytes.
type segment struct {
	start, end uint32
	atUS       uint32
	flags      uint8  // segXXX bits
	frames     uint8  // frames in the entry, at least 1 (exact unless segNoSpan); with more than one, atUS is the first one's
	spanUnits  uint16 // last frame's time minus the first's, in spanUnitUS
}

const (
	// spanUnitUS is the resolution of a multi-frame entry's span, the
	// same microsecond the entries' times have; 16 bits hold 65 ms. An
	// entry of a flight that outgrew the entries spans 1/64 of it or
	// less (see decimate), so spans overflow only for flights over about
	// 4 s; such an entry keeps only its first frame's time (segNoSpan).
	spanUnitUS = 1
	maxSpan    = math.MaxUint16
	maxFrames  = math.MaxUint8
)

// segment flags.
const (
	segRetrans uint8 = 1 << iota // retransmitted: Karn forbids timing it
	segSacked                    // SACKed by the peer
	segSYN                       // a SYN or SYN/ACK: a handshake sample
	segNoTime                    // its earliest unacknowledged frame's time is unknown
	segNoSpan                    // its span overflowed: only its first frame's time is known
)

type tsEntry struct {
	tsval uint32
	at    int64
}

// Flow state bits.
const (
	haveUna     uint16 = 1 << iota // sndUna holds the peer's cumulative ACK
	haveNxt                        // sndNxt holds the end of our highest segment
	haveTSval                      // lastTSval is valid
	haveEcho                       // lastEcho is valid
	closed                         // FIN or RST seen
	sawPlainOut                    // we sent a segment that is neither SYN nor RST
	sawPlainIn                     // the peer did
	inUse                          // the slot holds a live flow
	tsNotMS                        // our TSvals do not tick once a millisecond (see noteTick)
	sawOut                         // a segment of ours came through Table.apply (tunnelled ones all do)
	sawIn                          // one of the peer's did
	havePeerNxt                    // peerNxt is valid
	mssInferred                    // mssOut is inferred from our segments, not a SYN's option
)

// Flow is the state of one TCP connection. It has no pointers, so a table of
// them is one allocation the garbage collector never scans.
type Flow struct {
	_         noCopy // first: a zero-size field last would be padded
	key       Key
	firstSeen int64
	lastSeen  int64
	packets   uint64
	retrans   uint32 // segments, as the kernel counts them (countRetransmitted); saturates
	// mssOut and mssIn are the MSS options of our SYN and the peer's, 0
	// if unseen; without either, mssOut is inferred (mssInferred).
	mssOut, mssIn uint16

	seq         rtt.Estimator // sequence (kernel-style) samples
	echo        rtt.Estimator // TSval/TSecr echo samples
	dataSamples uint64        // seq samples that timed data, not a handshake

	sndUna, sndNxt uint32
	lastTSval      uint32 // newest TSval we sent (serial arithmetic)
	lastEcho       uint32 // newest TSecr already used for a sample
	state          uint16
	// tsHead and tsCount index the TSval ring; here, where they fill what
	// would be padding.
	tsHead, tsCount uint8
	// headShiftUS is how far the oldest entry's time has moved past its
	// first frame's (see advanceTo): that frame's time, the earliest any
	// frame of the entry can have been sent, is sentAt minus it.
	headShiftUS uint32

	segBase           int64 // ns; entries hold their time as µs after it
	segHead, segCount uint8
	stride            uint16 // frames per new entry (a power of two); 0 means 1
	tailFrames        uint16 // frames in the newest entry

	// tsTickUS is the capture time (µs, modulo 2^32) by which the tick of
	// lastTSval had begun, at the latest (see noteTick).
	tsTickUS uint32
	// peerNxt is the end of the peer's furthest segment, kept while a
	// tunnelled flow has seen none of ours (see answers).
	peerNxt uint32

	h health // capture duplicates and connection health (health.go)

	// The rings (rings.go): the small ones, or, for each group whose
	// offset is not 0, the full-size block that many 8-byte words from
	// this Flow.
	flightOff, recentOff int32
	small                smallRings
}

// seg is entry k of the ring of sent segments, counting from the oldest
// (k < segCount; seg(segCount) is the slot a new entry takes): the one
// place that knows how the ring is indexed. The uint8 sum wraps at 256, a
// multiple of every ring size, so the index stays in step.
func (f *Flow) seg(k uint8) *segment {
	r := f.segRing()
	return &r[(f.segHead+k)&uint8(len(r)-1)]
}

// answers reports whether segment p (ours if outgoing) belongs to this
// flow, which has seen only the other direction, by what p says of it: the
// peer's segment acknowledges sequence space we sent and that is not
// acknowledged yet, or echoes our newest TSval; our segment acknowledges
// exactly the end of the peer's furthest segment, or starts exactly where
// the peer's ACKs left us. Table.join uses it to join the two directions of
// a connection whose tunnel has an identifier per direction (TunnelKey).
func (f *Flow) answers(p *packet.Packet, outgoing bool) bool {
	if outgoing {
		return f.state&(sawOut|sawIn) == sawIn &&
			(p.ACK() && f.state&havePeerNxt != 0 && p.Ack == f.peerNxt ||
				f.state&haveUna != 0 && p.Seq == f.sndUna)
	}
	return f.state&(sawOut|sawIn) == sawOut && p.ACK() &&
		(f.state&haveNxt != 0 && seqLT(f.sndUna, p.Ack) && seqLEQ(p.Ack, f.sndNxt) ||
			p.HasTimestamps && f.state&haveTSval != 0 && p.TSecr == f.lastTSval)
}

// notePeer keeps the end of the peer's furthest segment (answers).
func (f *Flow) notePeer(p *packet.Packet) {
	end := p.Seq + p.SeqLen()
	if f.state&havePeerNxt == 0 || seqGT(end, f.peerNxt) {
		f.state |= havePeerNxt
		f.peerNxt = end
	}
}

// Serial-number arithmetic (RFC 1982) for 32-bit sequence numbers and TSvals.
func seqLT(a, b uint32) bool  { return int32(a-b) < 0 }
func seqLEQ(a, b uint32) bool { return int32(a-b) <= 0 }
func seqGT(a, b uint32) bool  { return int32(a-b) > 0 }

// sampleCounters is what the flow code needs of its table: the counters it
// updates, and the pool its rings grow into (rings.go).
type sampleCounters struct {
	samples, karnSkipped, retransmits, decimations uint64
	ringsDenied                                    uint64 // grows a pool had no block for
	flights                                        *pool[flightRings]
	recents                                        *pool[recentRings]
}

func (f *Flow) reset(k Key, ts int64) {
	*f = Flow{key: k, firstSeen: ts, lastSeen: ts, state: inUse}
}

// Estimate is the estimator readers should see (see the package comment).
func (f *Flow) Estimate() rtt.Estimator {
	switch {
	case f.dataSamples > 0:
		return f.seq
	case f.echo.Samples > 0:
		return f.echo
	default:
		return f.seq
	}
}

// halfOpen reports a flow that never carried anything but SYNs and RSTs in
// one of its directions and was never timed: the first to go when the table
// is full, which is what keeps SYN floods and port scans from pushing out
// real connections.
func (f *Flow) halfOpen() bool {
	return f.state&(sawPlainOut|sawPlainIn) != sawPlainOut|sawPlainIn &&
		f.seq.Samples == 0 && f.echo.Samples == 0
}

// summary is the flow's Summary, taking its RTT samples.
func (f *Flow) summary() Summary { return f.summarize(true) }

// summarize is the flow's Summary; takeSamples: see healthSummary.
func (f *Flow) summarize(takeSamples bool) Summary {
	return Summary{
		Local:       addrPort(f.key.Local, f.key.LocalPort),
		Remote:      addrPort(f.key.Remote, f.key.RemotePort),
		RTT:         f.Estimate(),
		FirstSeen:   f.firstSeen,
		LastSeen:    f.lastSeen,
		Packets:     f.packets,
		Retransmits: uint64(f.retrans),
		Closed:      f.state&closed != 0,
		Tunnel:      f.key.Tunnel,
		Health:      f.healthSummary(takeSamples),
	}
}

// noteFlags records what a segment's flags say about the connection's
// state (plain is sawPlainOut or sawPlainIn, by direction) and reports a
// RST, after which nothing in the segment is worth timing.
func (f *Flow) noteFlags(p *packet.Packet, plain uint16) (reset bool) {
	if p.RST() {
		f.state |= closed
		return true
	}
	if p.FIN() {
		f.state |= closed
	}
	if !p.SYN() {
		f.state |= plain
	}
	return false
}

// countRetransmitted counts a retransmission of n bytes of sequence space
// as the kernel counts tcpi_total_retrans: in segments (tcp_skb_pcount),
// so that a TSO super-frame sent again counts each MSS it holds
// (DIV_ROUND_UP(len, mss_now), tcp_set_skb_tso_segs). The kernel's mss_now
// is the smaller of the two SYNs' MSS options less the options every
// segment carries (12 bytes of timestamps); without the handshake, the
// smallest full frame we sent (inferMSS). Unknown, a frame is a segment.
func (f *Flow) countRetransmitted(n uint32, timestamps bool, c *sampleCounters) {
	segs := uint32(1)
	if mss := uint32(f.sendMSS(timestamps)); mss > 0 && n > mss {
		segs = (n + mss - 1) / mss
	}
	f.retrans = uint32(min(uint64(f.retrans)+uint64(segs), math.MaxUint32))
	c.retransmits += uint64(segs)
}

// sendMSS is the payload of a full segment of ours (see
// countRetransmitted), 0 if unknown.
func (f *Flow) sendMSS(timestamps bool) uint16 {
	if f.state&mssInferred != 0 {
		return f.mssOut
	}
	mss := f.mssOut
	if mss == 0 || f.mssIn != 0 && f.mssIn < mss {
		mss = f.mssIn
	}
	if timestamps && mss > tsOptionBytes {
		mss -= tsOptionBytes
	}
	return mss
}

// tsOptionBytes is what the timestamps option takes of every segment's
// MSS (10 bytes, padded to 12: TCPOLEN_TSTAMP_ALIGNED).
const tsOptionBytes = 12

// inferMSS takes new data frame p as a hint of our MSS when neither SYN's
// option was seen: a frame without PSH is not the end of a write, so it
// holds whole segments, and the smallest such frame is one segment (a
// TSO super-frame holds several; single segments come whenever the window
// allows one, as in every recovery and in slow start).
func (f *Flow) inferMSS(p *packet.Packet) {
	if p.Flags&(packet.FlagPSH|packet.FlagSYN|packet.FlagFIN) != 0 || p.PayloadLen == 0 || p.PayloadLen > math.MaxUint16 {
		return
	}
	if f.state&mssInferred == 0 || uint16(p.PayloadLen) < f.mssOut {
		f.state |= mssInferred
		f.mssOut = uint16(p.PayloadLen)
	}
}

// isProbe reports keepalives and zero-window probes: at most one byte at
// snd.una-1, which the peer answers with a duplicate ACK, not an RTT sample.
func (f *Flow) isProbe(p *packet.Packet, start uint32) bool {
	return !p.SYN() && !p.FIN() && p.PayloadLen <= 1 &&
		f.state&haveUna != 0 && start == f.sndUna-1
}

func (f *Flow) push(start, end uint32, ts int64, retransmitted, syn bool, c *sampleCounters) {
	if f.segCount > 0 && !retransmitted && !syn && f.tailFrames < max(f.stride, 1) {
		t := f.seg(f.segCount - 1)
		if t.end == start && t.flags&(segRetrans|segSYN|segSacked) == 0 && f.fits(t, end-start, ts) {
			// Join the newest entry: it keeps its first frame's time.
			t.end = end
			f.tailFrames++
			f.extend(t, ts)
			return
		}
	}
	if int(f.segCount) == len(f.segRing()) && !f.growFlight(c) {
		f.decimate(c)
	}
	var flags uint8
	if retransmitted {
		flags |= segRetrans
	}
	if syn {
		flags |= segSYN
	}
	if f.segCount == 0 {
		f.segBase = ts
		f.headShiftUS = 0
	}
	// Rounded down, as every time an entry keeps: a send time is never
	// later than the capture's, so a sample is never shorter (see sample).
	off := (ts - f.segBase) / 1000
	if off < 0 || off > math.MaxUint32 {
		// The capture clock stepped back, or this flow kept data
		// unacknowledged for over an hour: the old entries' times can no
		// longer be told apart, so none of them is timed.
		for k := uint8(0); k < f.segCount; k++ {
			f.seg(k).flags |= segNoTime
		}
		f.segBase, off = ts, 0
	}
	*f.seg(f.segCount) = segment{start: start, end: end, atUS: uint32(off), flags: flags, frames: 1}
	f.segCount++
	f.tailFrames = 1
}

// sentAt is the capture time (ns) of a segment's first frame.
func (f *Flow) sentAt(s *segment) int64 { return f.segBase + int64(s.atUS)*1000 }

// extend counts one more frame, captured at ts, in entry s.
func (f *Flow) extend(s *segment, ts int64) {
	s.frames++ // fits keeps it below maxFrames
	s.setSpan((ts - f.sentAt(s) + spanUnitUS*500) / (spanUnitUS * 1000))
}

// setSpan stores a span in spanUnitUS; one too long to store leaves only
// the entry's first frame timed (segNoSpan), as before interpolation.
func (s *segment) setSpan(units int64) {
	switch {
	case units < 0:
		units = 0 // the capture clock stepped back
	case units > maxSpan:
		s.flags |= segNoSpan
		units = maxSpan
	}
	s.spanUnits = uint16(units)
}

// frameAt estimates which frame of entry s holds sequence number seq, and
// that frame's send time as µs after segBase, taking the entry's frames as
// equal in size and its span as evenly spread over them. Exact for the
// first frame, for any frame of a single-frame entry, and for frames of one
// size sent at a steady pace; otherwise off by at most the entry's span,
// which fits and evenlySpaced keep within 1/32 of the smoothed RTT unless
// the frames are of one size and evenly spaced.
func (s *segment) frameAt(seq uint32) (idx, atUS int64) {
	n := int64(s.frames)
	if n == 1 || s.end == s.start {
		return 0, int64(s.atUS)
	}
	// n*offset/bytes is the frame's index for frames of one size; frames
	// within 1/16 of each other (see similar) put a frame boundary within
	// 1/16 of a frame of it, on either side, so 1/8 is added before
	// rounding down. (An ACK in the last 1/8 of a frame, which only a
	// TSO super-frame acked in parts makes, is credited to the next one.)
	off, size := int64(seq-s.start), int64(s.end-s.start)
	idx = min((8*n*off+size)/(8*size), n-1)
	return idx, int64(s.atUS) + int64(s.spanUnits)*spanUnitUS*idx/(n-1)
}

// paceSlackUS absorbs capture timestamp noise when frames are compared for
// even spacing: a burst at line rate has gaps of a few µs.
const paceSlackUS = 20

// fits reports whether a frame of n bytes captured at ts may join entry s
// without breaking what frameAt assumes: the entry's span stays within
// spanBudgetUS, or else its frames are of one size (within 1/16) and evenly
// spaced. A second frame of the same size always may (two frames
// interpolate exactly); a later one only if its gap from the last frame is
// within half of the entry's mean spacing. A sender that writes in bursts
// (an application pacing its writes, TSQ, the cwnd opening once per burst
// of ACKs) thus starts a new entry after each pause rather than hiding the
// pause inside an entry, where it would shift the interpolated time of
// every frame after it; a short frame (the end of a write) or a TSO
// super-frame of another size starts one too.
func (f *Flow) fits(s *segment, n uint32, ts int64) bool {
	if s.flags&segNoSpan != 0 || s.frames >= maxFrames {
		return false
	}
	if (ts-f.sentAt(s))/1000 <= f.spanBudgetUS() {
		return true
	}
	if !similar(s.frameBytes(), n) {
		return false
	}
	if s.frames < 2 {
		return true
	}
	return f.paced(s, ts)
}

// spanBudgetUS is the span (µs) up to which an entry interpolates whatever
// the sizes and spacing of its frames: an interpolated time always lies
// between the entry's first and last frame, so its error is at most the
// span, and 1/32 of the smoothed RTT keeps it (and the srtt's, an average
// of such errors) well inside the design's 2 %. This is what lets the
// uneven sending of slow start (two frames per ACK, back to back, then a
// pause) stay timed. Without an RTT yet, 0: only the strict rules apply.
func (f *Flow) spanBudgetUS() int64 {
	if f.seq.Samples == 0 {
		return 0
	}
	return f.seq.SRTT / 32 / 1000
}

// frameBytes is the mean frame size of entry s.
func (s *segment) frameBytes() uint32 { return (s.end - s.start) / uint32(s.frames) }

// similar reports frame sizes within 1/16 of each other.
func similar(a, b uint32) bool {
	return int64(max(a, b))-int64(min(a, b)) <= int64(max(a, b))/16
}

// paced reports whether a frame captured at ts keeps the even spacing of
// multi-frame entry s.
func (f *Flow) paced(s *segment, ts int64) bool {
	n := int64(s.frames) - 1
	lastUS := int64(s.atUS) + int64(s.spanUnits)*spanUnitUS
	gap := (ts-f.segBase+500)/1000 - lastUS
	mean := int64(s.spanUnits) * spanUnitUS / n
	return gap >= mean/2-paceSlackUS && gap <= mean+mean/2+paceSlackUS
}

// evenlySpaced reports whether merging entry b into entry e (its
// predecessor) keeps what frameAt assumes: a frame count that fits, and a
// span within spanBudgetUS or else frames of similar size with the gap
// between the two and each part's own mean spacing within half of the
// merged entry's mean spacing. A merge that fails it loses interpolation
// (segNoSpan): the merged entry's first frame stays exactly timed, the
// ACKs inside it are not timed, as before interpolation existed.
func (f *Flow) evenlySpaced(e, b *segment) bool {
	spanE, spanB := int64(e.spanUnits)*spanUnitUS, int64(b.spanUnits)*spanUnitUS
	if int(e.frames)+int(b.frames) > maxFrames {
		return false
	}
	if (f.sentAt(b)-f.sentAt(e))/1000+spanB <= f.spanBudgetUS() {
		return true
	}
	if !similar(e.frameBytes(), b.frameBytes()) {
		return false
	}
	gap := (f.sentAt(b)-f.sentAt(e))/1000 - spanE
	n := int64(e.frames) + int64(b.frames) - 1
	mean := (spanE + gap + spanB) / n
	near := func(d int64) bool { return d >= mean/2-paceSlackUS && d <= mean+mean/2+paceSlackUS }
	return near(gap) &&
		(e.frames < 2 || near(spanE/(int64(e.frames)-1))) &&
		(b.frames < 2 || near(spanB/(int64(b.frames)-1)))
}

// interpolates reports whether the send time of any frame of entry s can be
// estimated, not only its first frame's.
func (s *segment) interpolates() bool {
	return s.flags&(segNoSpan|segNoTime) == 0 && s.frames > 1
}

// advanceTo drops the frames of multi-frame entry s that lie wholly before
// seq (acknowledged): the entry then starts with the frame holding seq, with
// that frame's interpolated time. The kernel likewise keeps a partially
// acknowledged skb with its own transmit time.
func (s *segment) advanceTo(seq uint32) {
	if !s.interpolates() {
		s.flags |= segNoTime
		s.start = seq
		return
	}
	idx, at := s.frameAt(seq)
	used := (at - int64(s.atUS)) / spanUnitUS // of the span, to the frame holding seq
	s.atUS += uint32(used * spanUnitUS)
	s.spanUnits -= uint16(used)
	s.frames -= uint8(idx)
	s.start = seq
}

// decimate halves the entries in use by merging each pair of neighbours,
// and doubles the stride so that new entries take twice as many frames.
// Merged entries keep the earlier one's time; their flags combine so that
// Karn's rule and SACK state stay conservative. It works on the ring in
// use: the full-size one, or the small one when the pool had none to give.
func (f *Flow) decimate(c *sampleCounters) {
	c.decimations++
	var out [maxOutstanding]segment
	n := uint8(0)
	for k := uint8(0); k < f.segCount; k += 2 {
		e := *f.seg(k)
		if k+1 < f.segCount {
			b := *f.seg(k + 1)
			even := f.evenlySpaced(&e, &b)
			e.end = b.end
			e.frames = uint8(min(int(e.frames)+int(b.frames), maxFrames))
			e.setSpan((f.sentAt(&b)-f.sentAt(&e)+spanUnitUS*500)/(spanUnitUS*1000) + int64(b.spanUnits))
			e.flags |= b.flags & segNoSpan
			if !even {
				e.flags |= segNoSpan
			}
			// The pair counts as SACKed only if both halves were; one
			// SACKed half makes the earliest unSACKed frame unknown.
			if (e.flags^b.flags)&segSacked != 0 {
				e.flags |= segNoTime
			}
			sacked := e.flags & b.flags & segSacked
			e.flags = (e.flags|b.flags&(segRetrans|segNoTime))&^segSacked | sacked
		}
		out[n] = e
		n++
	}
	copy(f.segRing(), out[:n])
	f.segHead, f.segCount = 0, n
	f.stride = max(f.stride, 1) * 2
	f.tailFrames = f.stride // the merged tail is full: start a new entry
}

// relax lets the stride shrink again once the flight is small, so a flow
// that slows down gets fine-grained timing back.
func (f *Flow) relax() {
	if f.segCount == 0 {
		f.stride = 1
	} else if f.stride > 1 && int(f.segCount) < len(f.segRing())/4 {
		f.stride /= 2
	}
}

func (f *Flow) markRetransmitted(start, end uint32) {
	for k := uint8(0); k < f.segCount; k++ {
		s := f.seg(k)
		if seqLT(s.start, end) && seqGT(s.end, start) {
			s.flags |= segRetrans
		}
	}
}

// ack applies the kernel's rule: one sample per ACK that newly acknowledges
// data, timed from the earliest newly acknowledged segment; none if any
// newly acknowledged segment was retransmitted (Karn).
func (f *Flow) ack(p *packet.Packet, ts int64, c *sampleCounters) {
	ack := p.Ack
	if f.state&haveUna == 0 {
		f.state |= haveUna
		f.sndUna = ack
		f.dropAckedThrough(ack)
		return
	}
	if f.state&haveNxt != 0 && seqGT(ack, f.sndNxt) {
		// An ACK of data we cannot have sent is not one the capture
		// explains by missing our segments, but a stale or forged ACK
		// (an old connection's, which our RST answers): the kernel drops
		// it (tcp_ack: "ack includes data we haven't sent yet, discard";
		// RFC 793 3.9), and so do we, or every segment after it would
		// look retransmitted. Nothing is sent past an unacknowledged SYN
		// but the SYN's own data (RFC 793: in SYN-SENT and SYN-RECEIVED
		// only ISS+1 is acceptable), and no sender gets further ahead
		// than the largest window.
		synPending := f.segCount > 0 && f.seg(0).flags&segSYN != 0
		if synPending || ack-f.sndNxt > maxWindow {
			return
		}
		// Acknowledges data we never saw leave: the capture missed it.
		// Nothing recorded can be timed against this ACK honestly.
		f.sndNxt = ack
		f.sndUna = ack
		f.segCount, f.stride, f.headShiftUS = 0, 1, 0
		return
	}
	// SACK blocks are tagged first, as the kernel tags them
	// (tcp_sacktag_write_queue) before it cleans the retransmission queue:
	// a segment SACKed by a cumulative ACK is not timed again by a later
	// one, nor by a later SACK.
	var sk sackTiming
	if p.NumSACK > 0 {
		sk = f.tagSACK(p)
	}
	if seqGT(ack, f.sndUna) {
		fallback := f.cumulative(ack, ts, c)
		f.sndUna = ack
		// tcp_ack_update_rtt: without a sequence sample, the SACK
		// sample of the same ACK; without one either, the echoed TSval.
		switch {
		case !fallback:
		case sk.timed:
			f.sample(ts-sk.first, ts-sk.earliest, ts, sk.syn, c)
		case p.HasTimestamps && p.TSecr != 0:
			f.sampleTSecr(p.TSecr, ts, c)
		}
		return
	}
	// No cumulative progress: a duplicate ACK, window update, or an ACK
	// carrying SACK blocks for data past a hole, timed from the earliest
	// newly SACKed segment that was never retransmitted.
	if sk.timed {
		f.sample(ts-sk.first, ts-sk.earliest, ts, sk.syn, c)
	}
}

// movesUna reports an ack that ack takes as cumulative progress: past
// snd.una and not past snd.nxt (where ack drops it or starts over).
func (f *Flow) movesUna(ack uint32) bool {
	return f.state&haveUna != 0 && seqGT(ack, f.sndUna) && (f.state&haveNxt == 0 || !seqGT(ack, f.sndNxt))
}

// cumulative applies an ACK that moves snd.una to ack: it forgets what ack
// covers and takes the sequence sample, if the kernel's rule allows one
// (tcp_clean_rtx_queue). It reports an ACK of data that the kernel times
// otherwise (fallback): Karn's rule forbade the sample, or every newly
// acknowledged segment had been SACKed already. Not an ACK whose earliest
// newly acknowledged bytes the capture cannot time: the kernel took a
// sequence sample there, which no other rule reproduces.
func (f *Flow) cumulative(ack uint32, ts int64, c *sampleCounters) (fallback bool) {
	var first, earliest int64
	timed, karn, unknown, syn, data := false, false, false, false, false
	if f.segCount > 0 && seqGT(f.seg(0).start, f.sndUna) {
		// The earliest newly acknowledged bytes were never recorded.
		unknown = true
	}
	for f.segCount > 0 {
		s := f.seg(0)
		if !seqLT(s.start, ack) {
			break
		}
		data = data || s.flags&segSYN == 0
		if s.flags&segRetrans != 0 {
			karn = true
		} else if s.flags&segSacked == 0 && !timed && !unknown {
			// Time from this entry only if its first unacked byte is
			// the frame whose time it holds: the entry's start, or any
			// byte of a single frame (a TSO frame acked in parts).
			if s.flags&segNoTime != 0 || s.frames > 1 && seqLT(s.start, f.sndUna) && !s.interpolates() {
				unknown = true
			} else {
				first, timed, syn = f.sentAtSeq(s, f.sndUna), true, s.flags&segSYN != 0
				earliest = f.sentAt(s) - int64(f.headShiftUS)*1000 // s is the oldest entry
			}
		}
		if seqLEQ(s.end, ack) {
			f.popHead()
			continue
		}
		// Partially acknowledged: keep the rest. A single frame keeps its
		// time, as the kernel keeps a partially acked TSO skb's; the rest
		// of a multi-frame entry starts with the frame holding ack, at its
		// interpolated time (or unknown if the entry cannot interpolate).
		if s.frames > 1 {
			at := s.atUS
			s.advanceTo(ack)
			f.headShiftUS += s.atUS - at
		} else {
			s.start = ack
		}
		break
	}
	f.relax()
	switch {
	case karn:
		c.karnSkipped++
	case timed:
		f.sample(ts-first, ts-earliest, ts, syn, c)
	}
	return data && (karn || !timed && !unknown)
}

// sentAtSeq is the capture time (ns) of the frame of entry s that holds
// seq: its first frame's unless seq lies further in a multi-frame entry.
func (f *Flow) sentAtSeq(s *segment, seq uint32) int64 {
	if s.frames <= 1 || !seqLT(s.start, seq) {
		return f.sentAt(s)
	}
	_, at := s.frameAt(seq)
	return f.segBase + at*1000
}

// sackTiming is what an ACK's SACK blocks can time: the send time of the
// earliest newly SACKed segment that was never retransmitted (first), and
// the earliest its frames can have been sent (earliest; see sample).
type sackTiming struct {
	first, earliest int64
	timed, syn      bool
}

// tagSACK marks the segments p's SACK blocks newly cover as SACKed and
// returns their timing, as the kernel's tcp_sacktag_one keeps first_sackt.
func (f *Flow) tagSACK(p *packet.Packet) (t sackTiming) {
	n := int(min(p.NumSACK, packet.MaxSACKBlocks))
	for k := uint8(0); k < f.segCount; k++ {
		s := f.seg(k)
		if s.flags&segSacked != 0 {
			continue
		}
		for b := 0; b < n; b++ {
			blk := p.SACK[b]
			if seqLEQ(blk.Left, s.start) && seqLEQ(s.end, blk.Right) {
				s.flags |= segSacked
				if at := f.sentAt(s); s.flags&(segRetrans|segNoTime) == 0 && (!t.timed || at < t.first) {
					t.first, t.timed, t.syn = at, true, s.flags&segSYN != 0
					t.earliest = at
					if k == 0 {
						t.earliest -= int64(f.headShiftUS) * 1000
					}
				}
				break
			}
			if seqLT(blk.Left, s.end) && seqGT(blk.Right, s.start) {
				// Partly SACKed: which of its frames remain is unknown.
				s.flags |= segNoTime
			}
		}
	}
	return t
}

// dropAckedThrough forgets segments entirely at or below ack.
func (f *Flow) dropAckedThrough(ack uint32) {
	for f.segCount > 0 && seqLEQ(f.seg(0).end, ack) {
		f.popHead()
	}
}

// popHead forgets the oldest entry. (The uint8 head wraps in step with
// every ring size: see seg.)
func (f *Flow) popHead() {
	f.segHead++
	f.segCount--
	f.headShiftUS = 0
}

// sample takes one sequence sample: d, the kernel's view of it (from the
// frame holding the earliest newly acknowledged byte, its send time
// interpolated inside a multi-frame entry), moves the smoothed RTT; ceil,
// timed from the earliest frame that byte can be in (the entry's first, or
// d itself where the send time is known), is what the sample's own
// figures show (rtt.Estimator.AddBounded). An interpolated send time can
// be late by up to the entry's span, and a sample taken from it early by as
// much: below the path's floor, which readers take rtt.min for. ceil is
// never below the truth, and above it by at most the entry's span. (A
// sample timed from an echoed TSval, sampleTSecr, is the kernel's whole
// ticks, which can be above its ceiling.)
func (f *Flow) sample(d, ceil, ts int64, handshake bool, c *sampleCounters) {
	if d <= 0 {
		return
	}
	f.seq.AddBounded(d, ceil, ts)
	c.samples++
	if !handshake {
		f.dataSamples++
	}
}

// rememberTSval records the first sighting of a TSval we sent.
// A TSval seen before makes no new entry: it would underestimate the RTT.
// (The check is apart from newTSval so that it inlines.)
func (f *Flow) rememberTSval(tsval uint32, ts int64, c *sampleCounters) {
	if f.state&haveTSval == 0 || int32(tsval-f.lastTSval) > 0 {
		f.newTSval(tsval, ts, c)
	}
}

// newTSval records a TSval we sent, seen for the first time at ts.
func (f *Flow) newTSval(tsval uint32, ts int64, c *sampleCounters) {
	if f.state&tsNotMS == 0 {
		f.noteTick(tsval, ts)
	}
	f.state |= haveTSval
	f.lastTSval = tsval
	r := f.tsRing()
	if int(f.tsCount) == len(r) {
		if f.growFlight(c) {
			r = f.tsRing()
		} else {
			// Drop the oldest: it is the least likely to be echoed first.
			f.tsHead++
			f.tsCount--
		}
	}
	r[(f.tsHead+f.tsCount)&uint8(len(r)-1)] = tsEntry{tsval: tsval, at: ts}
	f.tsCount++
}

// The TSval clock. Linux stamps TSval with a millisecond clock (TCP_TS_HZ,
// tcp_time_stamp_ts), and when an ACK leaves it no sequence or SACK sample
// it times the ACK from the TSval it echoes: (now - TSecr) ticks, 1 at
// least (tcp_ack_update_rtt, tcp_rtt_tsopt_us). To do the same, the flow
// maps capture time to our clock's ticks: the first sighting of each new
// TSval X at capture time t shows that tick X had begun by t, so tick X
// began by the earliest of t and the previous tick's bound plus the ticks
// between them (msTick, with tickDrift for a sending host's clock that
// runs a little fast against the capture's). That bound is tight once a
// frame leaves right after a tick begins, as a sending flow's do, and it
// is never later than any frame carrying X (the ceiling of sampleTSecr).
//
// A clock that does not tick once a millisecond (Linux's tcp_usec_ts, a
// stack with a coarser clock) shows as a tick that begins more than a
// tick after it was seen, or a bound that falls further and further behind
// the sightings: the flow then takes no such sample (tsNotMS).
const (
	msTick    = int64(1000)   // µs per tick
	tickDrift = 8192          // ticks per µs of allowed clock drift (122 ppm)
	tickLag   = 1000 * msTick // the most a frame can wait between its TSval and the capture (µs)
)

// noteTick updates the tick bound with a new TSval, seen first at ts.
func (f *Flow) noteTick(tsval uint32, ts int64) {
	now := ts / 1000
	if f.state&haveTSval == 0 {
		f.tsTickUS = uint32(now)
		return
	}
	ticks := int64(tsval - f.lastTSval) // > 0: a new TSval
	began := now - int64(uint32(now)-f.tsTickUS) + ticks*msTick + ticks*msTick/tickDrift
	switch {
	case began > now+msTick || now-min(began, now) > tickLag:
		f.state |= tsNotMS
	case began > now:
		began = now
	}
	f.tsTickUS = uint32(began)
}

// sampleTSecr times an ACK of our data from the TSval it echoes, as the
// kernel does when neither the sequence nor the SACK rule gives a sample
// (see noteTick): what moves the smoothed RTT is the kernel's whole
// ticks; the sample's own figures are timed from the earliest the echoed
// TSval's tick can have begun, never later than the frame the peer echoed
// it from, so never below that frame's RTT. A TSecr newer than any TSval
// we sent is the kernel's negative delta: no sample.
func (f *Flow) sampleTSecr(tsecr uint32, ts int64, c *sampleCounters) {
	if f.state&(haveTSval|tsNotMS) != haveTSval || seqGT(tsecr, f.lastTSval) {
		return
	}
	now := ts / 1000
	since := int64(uint32(now) - f.tsTickUS) // µs since lastTSval's tick began
	back := int64(f.lastTSval - tsecr)       // ticks from the echoed TSval to lastTSval
	ticks := max(back+since/msTick, 1)
	ceil := since + back*msTick + back*msTick/tickDrift
	f.sample(ticks*msTick*1000, ceil*1000+ts%1000, ts, false, c)
}

// matchEcho times the first echo of one of our TSvals.
func (f *Flow) matchEcho(tsecr uint32, ts int64, c *sampleCounters) {
	if f.state&haveEcho != 0 && !seqGT(tsecr, f.lastEcho) {
		return // already used, or older
	}
	r := f.tsRing()
	for f.tsCount > 0 {
		e := r[f.tsHead&uint8(len(r)-1)]
		if seqGT(e.tsval, tsecr) {
			return // echoes something we never recorded
		}
		f.tsHead++
		f.tsCount--
		if e.tsval == tsecr {
			f.state |= haveEcho
			f.lastEcho = tsecr
			if d := ts - e.at; d > 0 {
				f.echo.Add(d, ts)
				c.samples++
			}
			return
		}
	}
}
