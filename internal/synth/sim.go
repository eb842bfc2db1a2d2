package synth

import (
	"math"
	"math/rand/v2"
	"net/netip"
	"time"
)

// TCP flags as on the wire.
const (
	flFIN = 0x01
	flSYN = 0x02
	flRST = 0x04
	flPSH = 0x08
	flACK = 0x10
)

// Event kinds of the simulation.
const (
	evConnect   = iota // opener sends its SYN
	evTxLocal          // a local frame leaves the NIC: captured, then goes onto the path
	evArrRemote        // a segment arrives at the remote endpoint
	evArrLocal         // a segment arrives at the local NIC: captured, then processed
	evRTO              // retransmission timer of endpoint ep
	evDelack           // delayed-ACK timer of endpoint ep
	evApp              // application step of endpoint ep (see conn.action)
	evKeepalive        // keepalive probe from the local endpoint
	evWinUpdate        // the local application reads late and the stack announces the window
)

// Application actions.
const (
	actNone = iota
	actRequest
	actRespond
	actClose
)

const (
	ms            = int64(time.Millisecond)
	delackTimeout = 40 * ms
	minRTO        = 200 * ms
	initRTO       = 1000 * ms
	maxRTO        = 60000 * ms
	maxBackoff    = 12
	wscale        = 7
	localNsPerB   = 8 // 1 Gbit/s local link
	synWindow     = 64240
	maxSACKBlocks = 4
)

// event is a scheduled step of the simulation; tie keeps equal times in scheduling order so
// the run is deterministic.
type event struct {
	t    int64
	tie  uint64
	conn int32
	seg  int32
	gen  uint32
	kind uint8
	ep   uint8
}

// segment is a TCP segment in flight, in sequence offsets of its sender (wire numbers are made
// only when a frame is captured).
type segment struct {
	off, ack     int64 // sequence offsets (SYN at -1, first data byte at 0)
	length       int32
	win          uint32 // advertised window in bytes
	tsval, tsecr uint32
	flags        uint8
	nsack        uint8
	probe        bool // keepalive probe: the receiver answers with an ACK
	sack         [maxSACKBlocks][2]int64
}

// sentRec is a sent and not yet acknowledged segment (SYN and FIN count as one byte).
type sentRec struct {
	off, end, t int64
	flags       uint8
	retx        bool
}

// tsRec is the first capture of a local TSval.
type tsRec struct {
	tsval uint32
	t     int64
}

// endpoint is one TCP stack's view of a connection: a Reno/NewReno sender with RFC 6298 RTO
// and go-back-N after a timeout, and a receiver with delayed ACKs, SACK and RFC 7323 TS.Recent.
type endpoint struct {
	iss    uint32
	mss    int64
	tsBase uint32

	// Sender.
	appEnd         int64
	finWanted      bool
	una, nxt, max  int64
	cwnd, ssthresh float64
	maxCwnd        float64
	dupacks        int
	inRecovery     bool
	recover        int64
	srtt, rttvar   int64
	rto            int64
	backoff        int
	rtoGen         uint32
	rtoArmed       bool
	sent           []sentRec
	head, cursor   int
	peerWin        int64
	lastPeerWin    uint32

	// Receiver.
	synRcvd      bool
	rcvNxt       int64
	ooo          [][2]int64
	lastOOO      int64
	tsRecent     uint32
	lastAckSent  int64
	unacked      int
	delackGen    uint32
	delackArmed  bool
	rcvBuf       int64
	unread       int64
	peerFin      int64 // offset of the peer's FIN, -1 while unknown
	finDelivered bool
	expect       int64 // rcvNxt at which the awaited message is complete, -1 if none

	// Ground truth for the local endpoint: TSvals sent, oldest first.
	tsSent []tsRec
	tsHead int
}

// server is a remote host and the path to it.
type server struct {
	addr   netip.Addr
	rtt    int64
	jitter int64
	nsPerB float64
	tsBase uint32
	ttl    uint8
}

// conn is a simulated connection: the local endpoint (ep[0]), the remote one (ep[1]) and the
// script of the applications on top.
type conn struct {
	id            int32
	kind          FlowKind
	v6            bool
	local, remote netip.AddrPort
	srv           *server
	ep            [2]endpoint
	opener        int // endpoint that connects: 0 local, 1 remote
	ts, sack      bool
	lastArr       [2]int64 // last arrival at the remote (0) and at the local NIC (1)
	lastRelease   int64    // last release of a compressed burst at the local NIC
	txFree        int64
	ipID          [2]uint16
	flowLabel     uint32
	exchanges     int
	action        [2]uint8
	useRST        bool
	rstBy         int
	keepalive     bool
	kaGen         uint32
	kaLen         int32
	winUpdates    bool
	done          bool
	truth         FlowTruth
}

// sim is the discrete-event simulation of all connections, with the capture it produces.
type sim struct {
	cfg    Config
	rng    *rand.Rand
	start  int64
	now    int64
	heap   []event
	tie    uint64
	segs   []segment
	free   []int32
	conns  []*conn
	buf    []byte
	frames []Frame
}

func (s *sim) push(t int64, kind uint8, c *conn, ep int, seg int32, gen uint32) {
	s.tie++
	s.heap = append(s.heap, event{t: t, tie: s.tie, conn: c.id, seg: seg, gen: gen, kind: kind, ep: uint8(ep)})
	h := s.heap
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !evLess(&h[i], &h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func evLess(a, b *event) bool {
	return a.t < b.t || (a.t == b.t && a.tie < b.tie)
}

func (s *sim) pop() event {
	h := s.heap
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && evLess(&h[r], &h[l]) {
			m = r
		}
		if !evLess(&h[m], &h[i]) {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	s.heap = h
	return top
}

func (s *sim) newSeg() int32 {
	if n := len(s.free); n > 0 {
		i := s.free[n-1]
		s.free = s.free[:n-1]
		s.segs[i] = segment{}
		return i
	}
	s.segs = append(s.segs, segment{})
	return int32(len(s.segs) - 1)
}

func (s *sim) freeSeg(i int32) { s.free = append(s.free, i) }

// logUniform draws from [lo, hi) with a log-uniform distribution.
func (s *sim) logUniform(lo, hi float64) float64 {
	if hi <= lo {
		return lo
	}
	return lo * math.Exp(s.rng.Float64()*math.Log(hi/lo))
}

func (s *sim) chance(p float64) bool { return p > 0 && s.rng.Float64() < p }

// tsClock is the TSval of a host whose 1 ms clock read base at the simulation start.
func (s *sim) tsClock(base uint32, now int64) uint32 {
	return base + uint32((now-s.start)/ms)
}

func (e *endpoint) armRTO(s *sim, c *conn, i int) {
	e.rtoGen++
	e.rtoArmed = true
	s.push(s.now+e.rto, evRTO, c, i, -1, e.rtoGen)
}

func (e *endpoint) cancelRTO() {
	e.rtoGen++
	e.rtoArmed = false
}

func (e *endpoint) rcvWindow() int64 {
	return max(e.rcvBuf-e.unread, 0)
}

// wireWin is the window as the peer decodes it (scaled after the handshake).
func wireWin(w int64, syn bool) uint32 {
	if syn {
		return uint32(min(w, synWindow))
	}
	return uint32(min(w>>wscale, 0xffff)) << wscale
}

// send builds a segment from endpoint i with the current receive state, and puts it on the path.
// It returns when the segment leaves the host: for the local one, the capture instant, later
// than now when the NIC is still busy with earlier frames.
func (s *sim) send(c *conn, i int, off int64, n int64, flags uint8, retx, probe bool) int64 {
	e := &c.ep[i]
	si := s.newSeg()
	g := &s.segs[si]
	g.off, g.length, g.flags, g.probe = off, int32(n), flags, probe
	syn := flags&flSYN != 0
	if e.synRcvd {
		g.flags |= flACK
		g.ack = e.rcvNxt
		e.lastAckSent = e.rcvNxt
		e.unacked = 0
		if e.delackArmed {
			e.delackArmed = false
			e.delackGen++
		}
	}
	g.win = wireWin(e.rcvWindow(), syn)
	if c.ts {
		g.tsval = s.tsClock(e.tsBase, s.now)
		g.tsecr = e.tsRecent
	}
	if c.sack && !syn && len(e.ooo) > 0 && flags&flRST == 0 {
		lim := maxSACKBlocks
		if c.ts {
			lim = 3
		}
		// RFC 2018: the first block holds the most recently received segment.
		first := 0
		for k, b := range e.ooo {
			if e.lastOOO >= b[0] && e.lastOOO < b[1] {
				first = k
			}
		}
		g.sack[0] = e.ooo[first]
		g.nsack = 1
		for k := 0; k < len(e.ooo) && int(g.nsack) < lim; k++ {
			if k != first {
				g.sack[g.nsack] = e.ooo[k]
				g.nsack++
			}
		}
	}
	if retx {
		if i == 0 {
			c.truth.Retransmits++
		} else {
			c.truth.RemoteRetransmits++
		}
	}
	if i == 0 {
		tx := max(s.now, c.txFree)
		c.txFree = tx + int64(s.wireLen(c, g))*localNsPerB
		s.push(tx, evTxLocal, c, 0, si, 0)
		if k := len(e.tsSent); c.ts && (k == e.tsHead || e.tsSent[k-1].tsval != g.tsval) {
			// The TSval is stamped when the stack builds the segment; a monitor first sees
			// it when the frame leaves.
			e.tsSent = append(e.tsSent, tsRec{tsval: g.tsval, t: tx})
		}
		return tx
	}
	if s.chance(s.cfg.LossRate) && flags&flRST == 0 {
		s.freeSeg(si)
		return s.now
	}
	s.push(s.arrival(c, 1, g), evArrLocal, c, 1, si, 0)
	return s.now
}

// arrival is when segment g reaches the far end of the path: base one-way delay plus jitter,
// never before the previous segment in the same direction has been serialised at the bottleneck
// (so the path keeps FIFO order and bursts queue).
func (s *sim) arrival(c *conn, dir int, g *segment) int64 {
	owd := c.srv.rtt/2 + int64(s.rng.Float64()*float64(c.srv.jitter))
	ser := int64(float64(s.wireLen(c, g)) * c.srv.nsPerB)
	t := max(s.now+owd, c.lastArr[dir]+ser)
	c.lastArr[dir] = t
	if b := int64(s.cfg.AckCompression); dir == 1 && b > 0 {
		// Held until the next burst boundary, then released back to back
		// at the local link's rate; the path's own order is kept.
		rel := t + (b-(t-s.start)%b)%b
		t = max(rel, c.lastRelease+int64(s.wireLen(c, g))*localNsPerB)
		c.lastRelease = t
	}
	return t
}

// sendData sends [off, off+n) of endpoint i's stream (SYN when off is -1, FIN when flags say).
func (s *sim) sendData(c *conn, i int, off, n int64, flags uint8) {
	e := &c.ep[i]
	retx := off < e.max
	end := off + n
	if flags&(flSYN|flFIN) != 0 {
		end++
	}
	if n > 0 && end == e.appEnd {
		flags |= flPSH
	}
	if !retx {
		e.sent = append(e.sent, sentRec{off: off, end: end, flags: flags})
		e.max = end
	}
	tx := s.send(c, i, off, n, flags, retx, false)
	if !retx {
		e.sent[len(e.sent)-1].t = tx
	}
	if !e.rtoArmed {
		e.armRTO(s, c, i)
	}
}

// trySend sends what the congestion and receive windows allow: first the segments to resend
// after an RTO (go-back-N from snd.una, as Linux marks them all lost), then new data, then FIN.
func (s *sim) trySend(c *conn, i int) {
	e := &c.ep[i]
	if c.done {
		return
	}
	for {
		limit := e.una + min(int64(e.cwnd*float64(e.mss)), max(e.peerWin, e.mss))
		if e.nxt < e.max {
			e.cursor = max(e.cursor, e.head)
			r := &e.sent[e.cursor]
			if r.off != e.nxt || (r.end > limit && r.off > e.una) {
				return
			}
			r.retx = true
			e.cursor++
			n := r.end - r.off
			if r.flags&(flSYN|flFIN) != 0 {
				n--
			}
			s.sendData(c, i, r.off, n, r.flags&(flSYN|flFIN))
			e.nxt = r.end
			continue
		}
		if e.nxt < 0 {
			return
		}
		if e.nxt < e.appEnd {
			n := min(e.mss, e.appEnd-e.nxt)
			if e.nxt+n > limit {
				return
			}
			s.sendData(c, i, e.nxt, n, 0)
			e.nxt += n
			continue
		}
		if e.finWanted && e.nxt == e.appEnd {
			s.sendData(c, i, e.nxt, 0, flFIN)
			e.nxt++
			continue
		}
		return
	}
}

// retransmit resends the record that starts at snd.una (fast retransmit, partial ACK).
func (s *sim) retransmit(c *conn, i int) {
	e := &c.ep[i]
	if e.head >= len(e.sent) {
		return
	}
	r := &e.sent[e.head]
	r.retx = true
	n := r.end - r.off
	if r.flags&(flSYN|flFIN) != 0 {
		n--
	}
	s.sendData(c, i, r.off, n, r.flags&(flSYN|flFIN))
}

func (s *sim) sendAck(c *conn, i int) {
	e := &c.ep[i]
	s.send(c, i, max(e.nxt, 0), 0, 0, false, false)
}

func (e *endpoint) rttSample(r int64) {
	if e.srtt == 0 {
		e.srtt, e.rttvar = r, r/2
	} else {
		d := e.srtt - r
		if d < 0 {
			d = -d
		}
		e.rttvar = (3*e.rttvar + d) / 4
		e.srtt = (7*e.srtt + r) / 8
	}
	e.rto = min(max(e.srtt+4*e.rttvar, minRTO), maxRTO)
}

func (s *sim) onAck(c *conn, i int, g *segment) {
	e := &c.ep[i]
	if g.flags&flSYN == 0 {
		e.peerWin = int64(g.win)
	}
	a := g.ack
	if a > e.max {
		return // acks something never sent: ignore
	}
	if a > e.una {
		clean, popped := true, false
		var first, last sentRec
		for e.head < len(e.sent) && e.sent[e.head].end <= a {
			r := e.sent[e.head]
			clean = clean && !r.retx
			if !popped {
				first = r
			}
			last, popped = r, true
			e.head++
		}
		if e.head > 1024 && e.head*2 > len(e.sent) {
			k := copy(e.sent, e.sent[e.head:])
			e.sent = e.sent[:k]
			e.cursor -= e.head
			e.head = 0
		}
		if popped && clean {
			r := s.now - last.t
			e.rttSample(r)
			if i == 0 {
				c.truth.SeqRTT.add(r)
				c.truth.KernelRTT.add(s.now - first.t)
			}
		} else {
			if i == 0 && popped && c.ts && g.tsecr != 0 && first.flags&flSYN == 0 {
				// Karn's rule forbids the sequence sample; the kernel
				// times the ACK from the TSval it echoes, in whole ticks
				// of its 1 ms clock, 1 at least (tcp_ack_update_rtt,
				// tcp_rtt_tsopt_us).
				ticks := max(int64(int32(s.tsClock(e.tsBase, s.now)-g.tsecr)), 1)
				c.truth.KernelRTT.add(ticks * ms)
			}
			if e.srtt > 0 {
				e.rto = min(max(e.srtt+4*e.rttvar, minRTO), maxRTO)
			}
		}
		acked := float64(a-max(e.una, 0)) / float64(e.mss)
		wasSyn := e.una < 0
		e.una = a
		e.nxt = max(e.nxt, a)
		e.dupacks = 0
		e.backoff = 0
		switch {
		case e.inRecovery && a < e.recover:
			s.retransmit(c, i) // NewReno partial ACK
		case e.inRecovery:
			e.inRecovery = false
			e.cwnd = e.ssthresh
		case e.cwnd < e.ssthresh:
			e.cwnd += max(acked, 1)
		default:
			e.cwnd += max(acked, 1) / e.cwnd
		}
		e.cwnd = min(e.cwnd, e.maxCwnd)
		if e.una < e.max {
			e.armRTO(s, c, i)
		} else {
			e.cancelRTO()
		}
		if wasSyn {
			s.onEstablished(c, i)
		}
		s.trySend(c, i)
		return
	}
	if a == e.una && g.length == 0 && g.flags&(flSYN|flFIN) == 0 && e.una < e.max && g.win == e.lastPeerWin {
		e.dupacks++
		switch {
		case e.dupacks == 3 && !e.inRecovery:
			flight := float64(e.max-e.una) / float64(e.mss)
			e.ssthresh = max(flight/2, 2)
			e.cwnd = e.ssthresh + 3
			e.inRecovery = true
			e.recover = e.max
			s.retransmit(c, i)
		case e.inRecovery:
			e.cwnd++
			s.trySend(c, i)
		}
	}
	e.lastPeerWin = g.win
}

// recv processes segment g arriving at endpoint i.
func (s *sim) recv(c *conn, i int, g *segment) {
	e := &c.ep[i]
	if c.done {
		return
	}
	if g.flags&flRST != 0 {
		c.done = true
		return
	}
	if i == 0 && c.ts && g.flags&flRST == 0 {
		// Ground truth of TS echo: the first segment echoing a TSval we sent.
		for e.tsHead < len(e.tsSent) && int32(e.tsSent[e.tsHead].tsval-g.tsecr) < 0 {
			e.tsHead++
		}
		if e.tsHead < len(e.tsSent) && e.tsSent[e.tsHead].tsval == g.tsecr {
			c.truth.TSRTT.add(s.now - e.tsSent[e.tsHead].t)
			e.tsHead++
		}
		if e.tsHead > 1024 && e.tsHead*2 > len(e.tsSent) {
			k := copy(e.tsSent, e.tsSent[e.tsHead:])
			e.tsSent = e.tsSent[:k]
			e.tsHead = 0
		}
	}
	if g.flags&flSYN != 0 {
		if !e.synRcvd {
			e.synRcvd = true
			e.peerWin = int64(g.win)
			e.lastPeerWin = g.win
			if c.ts {
				e.tsRecent = g.tsval
			}
		}
		if g.flags&flACK == 0 {
			switch {
			case e.max < 0:
				s.sendData(c, i, -1, 0, flSYN)
				e.nxt = 0
			case e.una < 0:
				s.retransmit(c, i) // duplicate SYN: our SYN/ACK was lost
			}
			return
		}
	}
	segEnd := g.off + int64(g.length)
	if g.flags&flFIN != 0 {
		segEnd++
	}
	acceptable := segEnd > e.rcvNxt || (segEnd == g.off && g.off == e.rcvNxt)
	if c.ts && acceptable && int32(g.tsval-e.tsRecent) >= 0 && g.off <= e.lastAckSent {
		// RFC 7323: TS.Recent takes the TSval of an acceptable segment that covers the left
		// edge of what we last acknowledged, so the peer times the segment that advanced the
		// window. Old duplicates and keepalive probes are answered with the old TS.Recent.
		e.tsRecent = g.tsval
	}
	if g.flags&flACK != 0 {
		s.onAck(c, i, g)
		if c.done {
			return
		}
	}
	if g.flags&flSYN != 0 {
		s.sendAck(c, i) // ACK of the SYN/ACK (again, if it was retransmitted)
		return
	}
	if g.length == 0 && g.flags&flFIN == 0 {
		if g.probe {
			s.sendAck(c, i)
		}
		return
	}
	end := g.off + int64(g.length)
	if g.flags&flFIN != 0 {
		e.peerFin = end
		end++
	}
	switch {
	case g.off == e.rcvNxt:
		hadHoles := len(e.ooo) > 0
		e.rcvNxt = end
		for len(e.ooo) > 0 && e.ooo[0][0] <= e.rcvNxt {
			e.rcvNxt = max(e.rcvNxt, e.ooo[0][1])
			e.ooo = e.ooo[1:]
		}
		if len(e.ooo) == 0 {
			e.ooo = e.ooo[:0:0]
		}
		if i == 0 && c.kind == ReqResp && c.winUpdates {
			// Only this application reads late (see delivered); others read at once.
			e.unread += int64(g.length)
		}
		finNow := e.peerFin >= 0 && e.rcvNxt > e.peerFin && !e.finDelivered
		e.unacked++
		switch {
		case hadHoles || finNow || e.unacked >= 2:
			s.sendAck(c, i)
		case !e.delackArmed:
			e.delackArmed = true
			e.delackGen++
			s.push(s.now+delackTimeout, evDelack, c, i, -1, e.delackGen)
		}
		s.delivered(c, i)
		if finNow {
			e.finDelivered = true
			if !e.finWanted {
				c.action[i] = actClose
				s.push(s.now+int64(s.rng.Float64()*float64(2*ms)), evApp, c, i, -1, 0)
			}
		}
	case g.off > e.rcvNxt:
		e.ooo = insertRange(e.ooo, g.off, end)
		e.lastOOO = g.off
		s.sendAck(c, i)
	default:
		s.sendAck(c, i) // old data: duplicate ACK
	}
}

// insertRange adds [a, b) to a sorted list of disjoint ranges, merging neighbours.
func insertRange(rs [][2]int64, a, b int64) [][2]int64 {
	k := 0
	for k < len(rs) && rs[k][1] < a {
		k++
	}
	if k == len(rs) || rs[k][0] > b {
		rs = append(rs, [2]int64{})
		copy(rs[k+1:], rs[k:])
		rs[k] = [2]int64{a, b}
		return rs
	}
	rs[k][0] = min(rs[k][0], a)
	rs[k][1] = max(rs[k][1], b)
	for k+1 < len(rs) && rs[k+1][0] <= rs[k][1] {
		rs[k][1] = max(rs[k][1], rs[k+1][1])
		rs = append(rs[:k+1], rs[k+2:]...)
	}
	return rs
}

func (s *sim) requestSize() int64 { return 100 + s.rng.Int64N(201) }

func (s *sim) responseSize(mss int64) int64 {
	segs := 1 + s.rng.Int64N(20)
	return (segs-1)*mss + 1 + s.rng.Int64N(mss)
}

func (s *sim) think() int64 {
	return int64(s.logUniform(float64(ms), float64(max(s.cfg.MaxThink, time.Millisecond))))
}

// onEstablished starts the application once endpoint i's SYN (or SYN/ACK) is acknowledged.
func (s *sim) onEstablished(c *conn, i int) {
	switch c.kind {
	case BulkSend, BulkRecv:
		sender := 0
		if c.kind == BulkRecv {
			sender = 1
		}
		if i == sender {
			e := &c.ep[i]
			e.appEnd = s.cfg.BulkBytes
			e.finWanted = true
		}
	default:
		if i == c.opener {
			c.action[i] = actRequest
			s.push(s.now, evApp, c, i, -1, 0)
		}
	}
}

// delivered runs the application after in-order data reached endpoint i.
func (s *sim) delivered(c *conn, i int) {
	e := &c.ep[i]
	if e.expect < 0 || e.rcvNxt < e.expect {
		return
	}
	e.expect = -1
	if c.kind != ReqResp && c.kind != Accept {
		return
	}
	if i != c.opener {
		// Request complete: respond after a little processing time.
		e.unread = 0
		c.action[i] = actRespond
		proc := s.logUniform(20e3, 20e6)
		if s.chance(0.1) {
			// A slow request: the delayed-ACK timer fires before the response is ready.
			proc = s.logUniform(50e6, 300e6)
		}
		s.push(s.now+int64(proc), evApp, c, i, -1, 0)
		return
	}
	// Response complete.
	if i == 0 {
		if c.winUpdates && s.chance(0.5) {
			// The application reads the response a little later; the reopened window is
			// announced by a pure window update.
			s.push(s.now+int64(s.logUniform(50e3, 2e6)), evWinUpdate, c, i, -1, 0)
		} else {
			e.unread = 0
		}
	} else {
		e.unread = 0
	}
	c.exchanges--
	if c.exchanges <= 0 {
		if c.useRST && c.rstBy != c.opener {
			c.action[1-i] = actClose
			s.push(s.now+int64(s.logUniform(1e6, 50e6)), evApp, c, 1-i, -1, 0)
			return
		}
		c.action[i] = actClose
		s.push(s.now+s.think(), evApp, c, i, -1, 0)
		return
	}
	t := s.think()
	if c.keepalive && i == 0 && s.chance(0.5) {
		// A long idle period with keepalive probes.
		iv := int64(s.cfg.KeepaliveInterval)
		t = iv*(2+s.rng.Int64N(3)) + iv/2
		c.kaGen++
		s.push(s.now+iv, evKeepalive, c, 0, -1, c.kaGen)
	}
	c.action[i] = actRequest
	s.push(s.now+t, evApp, c, i, -1, 0)
}

func (s *sim) app(c *conn, i int) {
	if c.done {
		return
	}
	e := &c.ep[i]
	peer := &c.ep[1-i]
	act := c.action[i]
	c.action[i] = actNone
	switch act {
	case actRequest:
		c.kaGen++
		e.appEnd += s.requestSize()
		peer.expect = e.appEnd
		s.trySend(c, i)
	case actRespond:
		e.appEnd += s.responseSize(e.mss)
		peer.expect = e.appEnd
		s.trySend(c, i)
	case actClose:
		if c.useRST && i == c.rstBy && !e.finWanted {
			if e.una < e.max {
				// Reset only once our data is acknowledged: ACKs still in flight after a
				// RST would be timed by a monitor but never by the (gone) socket.
				c.action[i] = actClose
				s.push(s.now+10*ms, evApp, c, i, -1, 0)
				return
			}
			s.send(c, i, max(e.nxt, 0), 0, flRST, false, false)
			c.truth.Reset = true
			c.done = true
			return
		}
		e.finWanted = true
		s.trySend(c, i)
	}
}

func (s *sim) keepaliveProbe(c *conn) {
	e := &c.ep[0]
	if c.done || e.una < e.max || e.una <= 0 {
		return
	}
	// A probe carries seq snd.una-1, with zero or one (already acknowledged) byte, so the peer
	// answers with a duplicate ACK. It is not an RTT sample.
	s.send(c, 0, e.una-1, int64(c.kaLen), 0, false, true)
	c.truth.KeepaliveProbes++
	c.kaGen++
	s.push(s.now+int64(s.cfg.KeepaliveInterval), evKeepalive, c, 0, -1, c.kaGen)
}

func (s *sim) onRTO(c *conn, i int) {
	e := &c.ep[i]
	e.rtoArmed = false
	if c.done || e.una >= e.max {
		return
	}
	e.backoff++
	if e.backoff > maxBackoff {
		c.done = true // the connection times out
		return
	}
	e.rto = min(e.rto*2, maxRTO)
	flight := float64(e.max-max(e.una, 0)) / float64(e.mss)
	e.ssthresh = max(flight/2, 2)
	e.cwnd = 1
	e.inRecovery = false
	e.dupacks = 0
	e.nxt = e.una
	e.cursor = e.head
	s.trySend(c, i)
}

func (s *sim) run() {
	for len(s.heap) > 0 {
		ev := s.pop()
		s.now = ev.t
		c := s.conns[ev.conn]
		i := int(ev.ep)
		switch ev.kind {
		case evConnect:
			s.sendData(c, i, -1, 0, flSYN)
			c.ep[i].nxt = 0
		case evTxLocal:
			g := &s.segs[ev.seg]
			s.emit(c, true, g)
			if s.chance(s.cfg.LossRate) && g.flags&flRST == 0 {
				s.freeSeg(ev.seg)
				continue
			}
			s.push(s.arrival(c, 0, g), evArrRemote, c, 1, ev.seg, 0)
		case evArrRemote:
			s.recv(c, 1, &s.segs[ev.seg])
			s.freeSeg(ev.seg)
		case evArrLocal:
			g := &s.segs[ev.seg]
			s.emit(c, false, g)
			s.recv(c, 0, g)
			s.freeSeg(ev.seg)
		case evRTO:
			if ev.gen == c.ep[i].rtoGen && c.ep[i].rtoArmed {
				s.onRTO(c, i)
			}
		case evDelack:
			e := &c.ep[i]
			if ev.gen == e.delackGen && e.delackArmed {
				e.delackArmed = false
				if e.unacked > 0 && !c.done {
					s.sendAck(c, i)
				}
			}
		case evApp:
			s.app(c, i)
		case evKeepalive:
			if ev.gen == c.kaGen {
				s.keepaliveProbe(c)
			}
		case evWinUpdate:
			if !c.done {
				c.ep[i].unread = 0
				s.sendAck(c, i)
			}
		}
	}
}
