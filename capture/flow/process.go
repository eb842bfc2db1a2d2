package flow

import (
	"math"

	"github.com/gometro/go-metro/capture/packet"
)

// The per-packet path through this package. Every segment takes the same
// calls, in this order, and this file holds each step's entry point:
//
//	Table.Process        which flow(s) the segment belongs to, and in which
//	                     direction; the last flow's ends are tried first
//	Table.lookup         find the flow by key, or create it (table.go)
//	Table.applyTo        the flow's own counters, then by direction:
//	Flow.healthOut/In    the capture-health layer: drop capture duplicates
//	                     (duplicateOut, repeatIn: health.go), note the
//	                     connection's health, keep RTT samples for summaries
//	Flow.rttOut/In       the RTT-timing layer: remember what we sent
//	                     (push, rememberTSval) and time the peer's ACKs and
//	                     echoes (ack, matchEcho), as flow.go describes
//
// Nothing on this path allocates or locks; the table's owner calls it from
// one goroutine.

// Process applies one decoded TCP segment captured at ts (ns).
// A packet is "ours" for the flow keyed by its source if the source is
// local, and "theirs" for the flow keyed by its destination if that is
// local; both apply to traffic between two local addresses (loopback).
func (t *Table) Process(p *packet.Packet, ts int64) {
	// Most packets belong to the flow of the packet before (a transfer's
	// data and its ACKs alternate on one key): one with that flow's
	// endpoints, either way round, is that flow's, ours if it comes from
	// the flow's local end. Which ends are local depends only on the two
	// addresses, so Sides would answer as it did for the flow; skipping it
	// and the key was an eighth of the per-packet time on a bulk flow.
	if t.lastOneSided && p.Tunnel.Encaps == 0 {
		f := &t.flows[t.lastIdx]
		k := &f.key
		switch {
		case k.Tunnel.Encaps != 0:
		case k.ends(&p.Src, &p.Dst, p.SrcPort, p.DstPort):
			t.applyTo(f, p, ts, true)
			return
		case k.ends(&p.Dst, &p.Src, p.DstPort, p.SrcPort):
			t.applyTo(f, p, ts, false)
			return
		}
	}
	srcLocal, dstLocal := t.local.Sides(&p.Src, &p.Dst)
	if !srcLocal && !dstLocal {
		t.counters.NotLocal++
		return
	}
	// The key is built in place, its tunnel part only for tunnelled
	// packets (and cleared once after one): building an 80-byte key afresh
	// for each packet was a sixth of the per-packet time.
	k := &t.key
	if p.Tunnel.Encaps != 0 {
		k.Tunnel = tunnelKey(&p.Tunnel)
	} else if k.Tunnel.Encaps != 0 {
		k.Tunnel = TunnelKey{}
	}
	if srcLocal {
		k.Local, k.Remote, k.LocalPort, k.RemotePort = p.Src, p.Dst, p.SrcPort, p.DstPort
		t.apply(p, ts, k, true, !dstLocal)
	}
	if dstLocal {
		k.Local, k.Remote, k.LocalPort, k.RemotePort = p.Dst, p.Src, p.DstPort, p.SrcPort
		t.apply(p, ts, k, false, !srcLocal)
	}
}

// apply hands p to the flow keyed k, as ours (outgoing) or the peer's;
// oneSided says k's Remote is not local.
func (t *Table) apply(p *packet.Packet, ts int64, k *Key, outgoing, oneSided bool) {
	f := t.lookup(k, p, ts, outgoing)
	if f == nil {
		return
	}
	t.lastOneSided = oneSided // lookup made f the last flow
	if outgoing {
		f.state |= sawOut
	} else {
		f.state |= sawIn
		if k.Tunnel.IDOf != 0 && f.state&sawOut == 0 {
			f.notePeer(p) // while the flow may still join (Table.join)
		}
	}
	t.applyTo(f, p, ts, outgoing)
}

// applyTo counts p in flow f and hands it to f's capture-health layer,
// as ours (outgoing) or the peer's.
func (t *Table) applyTo(f *Flow, p *packet.Packet, ts int64, outgoing bool) {
	f.lastSeen = ts
	f.packets++
	if outgoing {
		f.healthOut(p, ts, &t.sc, &t.counters)
	} else {
		f.healthIn(p, ts, &t.sc, &t.counters)
	}
}

// healthOut is the capture-health layer for a segment we sent: a capture
// duplicate stops here; otherwise it notes the connection's health and
// hands the segment to the RTT layer (rttOut).
func (f *Flow) healthOut(p *packet.Packet, ts int64, c *sampleCounters, tc *Counters) {
	if f.duplicateOut(p, ts, c) {
		f.h.duplicates++
		tc.Duplicates++
		return
	}
	h := &f.h
	switch {
	case p.RST():
		f.noteRST(hSYNIn, tc) // we refuse the peer's SYN, or reset
	case p.SYN() && p.ACK():
		h.bits |= hSYNACK
	case p.SYN():
		h.bits |= hSYNOut
	}
	if p.FIN() {
		h.bits |= hFIN
	}
	if !p.SYN() && !p.RST() {
		h.zeroLocal += zeroEpisode(&h.bits, hZeroLocal, p.Window)
	}
	if p.PayloadLen > 0 && !p.SYN() && !f.isProbe(p, p.Seq) {
		h.lastOutData = ts
		h.bits |= hRequest
	}
	f.rttOut(p, ts, c)
}

// healthIn is the capture-health layer for a segment from the peer: a
// repeated frame stops here; otherwise it notes the connection's health,
// hands the segment to the RTT layer (rttIn), and keeps the sample that
// layer took for summaries (one not of data is the handshake's).
func (f *Flow) healthIn(p *packet.Packet, ts int64, c *sampleCounters, tc *Counters) {
	h := &f.h
	// An ACK that moves snd.una forward cannot repeat a frame the ring
	// holds: that frame moved snd.una to its own ACK, so a copy of it moves
	// nothing. Such ACKs, a bulk sender's every ACK, skip the scan; the
	// frame is still recorded.
	advances := p.ACK() && !p.RST() && f.movesUna(p.Ack)
	if f.repeatIn(p, ts, !advances, c) {
		return
	}
	h.dupPeer = 1<<dupRing - 1
	h.bits |= hPeerSpoke
	samples, data, echoes := f.seq.Samples, f.dataSamples, f.echo.Samples
	if p.NumSACK > 0 || p.ACK() && p.PayloadLen == 0 && f.segCount > 0 && f.state&haveUna != 0 && !seqGT(p.Ack, f.sndUna) {
		h.lossAt = ts // what fast retransmit and RACK act on
	}
	switch {
	case p.RST():
		// SYN -> RST/ACK: the peer's stack answered our SYN at once, which
		// times the path as well as a SYN/ACK (tshark times it too). The
		// RST must acknowledge exactly our SYN (RFC 9293 3.10.7.3);
		// Karn's rule still applies to a retransmitted SYN.
		if h.bits&(hSYNOut|hSYNACK|hRefused|hReset) == hSYNOut && p.ACK() &&
			f.state&haveNxt != 0 && p.Ack == f.sndNxt {
			f.ack(p, ts, c)
		}
		f.noteRST(hSYNOut, tc)
	case p.SYN() && p.ACK():
		h.bits |= hSYNACK
	case p.SYN():
		h.bits |= hSYNIn
	}
	if p.FIN() {
		h.bits |= hFIN
	}
	if !p.SYN() && !p.RST() {
		h.zeroRemote += zeroEpisode(&h.bits, hZeroRemote, p.Window)
	}
	// Server response time, for connections we opened: from our latest
	// data frame to the first data frame of the answer.
	if p.PayloadLen > 0 && !p.SYN() && !p.RST() && h.bits&(hRequest|hSYNOut) == hRequest|hSYNOut {
		h.bits &^= hRequest
		if d := ts - h.lastOutData; d > 0 {
			h.respSum += d
			h.respCount++
		}
	}
	f.rttIn(p, ts, c)
	if f.seq.Samples > samples {
		if f.dataSamples == data && h.handshakeUS == 0 {
			h.handshakeUS = uint32(min(max(f.seq.Last/1000, 1), math.MaxUint32))
		}
		f.addSample(f.seq.Last, ts, c)
	} else if f.echo.Samples > echoes && f.dataSamples == 0 {
		// Echo samples stand in only for flows that never timed their
		// own data, as in Estimate: on a sending flow the peer's pacing
		// inflates them.
		f.addSample(f.echo.Last, ts, c)
	}
}

// rttOut is the RTT-timing layer for a segment we sent: it remembers the
// segment's sequence range and TSval with their capture time, and marks
// retransmitted ranges (Karn).
func (f *Flow) rttOut(p *packet.Packet, ts int64, c *sampleCounters) {
	if f.noteFlags(p, sawPlainOut) {
		return
	}
	if p.HasTimestamps {
		f.rememberTSval(p.TSval, ts, c)
	}
	if p.SYN() && p.MSS != 0 {
		f.mssOut = p.MSS
		f.state &^= mssInferred
	}
	n := p.SeqLen()
	if n == 0 {
		return // pure ACK or window update: nothing to time
	}
	start, end := p.Seq, p.Seq+n
	if f.state&haveNxt == 0 {
		f.state |= haveNxt
		f.sndNxt = start
		if f.state&haveUna == 0 {
			f.state |= haveUna
			f.sndUna = start
		}
	}
	if f.isProbe(p, start) {
		return
	}
	switch {
	case seqLEQ(end, f.sndNxt):
		// Entirely old sequence space: a retransmission.
		f.markRetransmitted(start, end)
		f.countRetransmitted(n, p.HasTimestamps, c)
	case seqLT(start, f.sndNxt):
		// Old and new data in one segment (repacketized retransmission):
		// the ACK cannot tell which transmission it answers.
		f.markRetransmitted(start, f.sndNxt)
		f.countRetransmitted(f.sndNxt-start, p.HasTimestamps, c)
		f.push(f.sndNxt, end, ts, true, p.SYN(), c)
		f.sndNxt = end
	default:
		// New data. A gap before it (segments the capture missed) stays
		// unrecorded, so ACKs of that range are never timed.
		if f.mssIn == 0 && (f.mssOut == 0 || f.state&mssInferred != 0) {
			f.inferMSS(p)
		}
		f.push(start, end, ts, false, p.SYN(), c)
		f.sndNxt = end
	}
}

// rttIn is the RTT-timing layer for a segment from the peer: it times the
// ACK (ack) and the TSecr (matchEcho) against what rttOut remembered.
func (f *Flow) rttIn(p *packet.Packet, ts int64, c *sampleCounters) {
	if p.SYN() && p.MSS != 0 {
		f.mssIn = p.MSS
	}
	if f.noteFlags(p, sawPlainIn) {
		return
	}
	if !p.ACK() {
		return
	}
	if p.HasTimestamps && p.TSecr != 0 {
		f.matchEcho(p.TSecr, ts, c)
	}
	f.ack(p, ts, c)
}
