package synth

import (
	"container/heap"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"time"
)

// ConcurrentConfig describes a capture of many concurrent request/response
// connections, the traffic of a busy proxy or load balancer: every
// connection is opened by LocalIPv4 (SYN, SYN/ACK, ACK) and carries one
// request/response exchange (request, response, our ACK), the connections
// one Gap apart; then each further exchange comes in a round of its own, in
// which every connection makes one exchange, in an order shuffled afresh
// for each round (a proxy's connections are each busy at their own time,
// so a monitor finds them all over its table). None is closed: at the end
// of the capture every connection is open. Unlike Generate it simulates
// nothing (no loss, no jitter, every path has the same RTT): its point is
// the number of flows, not their behaviour.
type ConcurrentConfig struct {
	// Flows is the number of connections. Each remote host takes
	// PortsPerRemote of them, so there are Flows/PortsPerRemote remotes.
	Flows int
	// Exchanges per connection; 0 means 1.
	Exchanges int
	// RTT of every path; 0 means 2 ms.
	RTT time.Duration
	// Gap between two connections' SYNs, and between two requests of a
	// round; 0 means 1 µs (a million new connections a second).
	Gap time.Duration
	// Start is the instant of the first SYN; zero means 2026-01-01.
	Start time.Time
}

// PortsPerRemote is how many connections the local host opens to each
// remote host (one local port each).
const PortsPerRemote = 50000

// Sizes of the frames Concurrent makes.
const (
	concurrentRequest  = 200  // request payload bytes
	concurrentResponse = 1200 // response payload bytes
)

// concurrentEvent is the next frame of one step of the schedule: the j-th
// connection in that step's order.
type concurrentEvent struct {
	at int64
	k  int // the step
	j  int // the position in the step's round
}

type eventHeap []concurrentEvent

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(a, b int) bool {
	return h[a].at < h[b].at || h[a].at == h[b].at && h[a].k < h[b].k
}
func (h eventHeap) Swap(a, b int) { h[a], h[b] = h[b], h[a] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(concurrentEvent)) }
func (h *eventHeap) Pop() any {
	x := (*h)[len(*h)-1]
	*h = (*h)[:len(*h)-1]
	return x
}

// concurrentStep is one frame of a connection's schedule: when it is
// captured after the start of its round (the connection's own slot in
// it excluded), whether it is ours, its flags and payload, and which
// exchange (and round) it belongs to (-1: the handshake, in round 0).
type concurrentStep struct {
	after    int64
	out      bool
	flags    uint8
	payload  int
	exchange int
	id       int // the step's rank among its side's frames (IP ID)
}

// round is the round of step st: exchange 0 shares round 0 with the
// handshake.
func (st *concurrentStep) round() int { return max(st.exchange, 0) }

// schedule is the frames of one connection, in capture order within each
// round.
func (cfg ConcurrentConfig) schedule() []concurrentStep {
	rtt := int64(cfg.RTT)
	const stack = int64(10 * time.Microsecond) // our stack's turnaround
	steps := []concurrentStep{
		{after: 0, out: true, flags: flSYN, exchange: -1},
		{after: rtt, flags: flSYN | flACK, exchange: -1},
		{after: rtt + stack, out: true, flags: flACK, exchange: -1},
	}
	for x := range max(cfg.Exchanges, 1) {
		t := int64(0)
		if x == 0 {
			t = rtt + 2*stack
		}
		steps = append(steps,
			concurrentStep{after: t, out: true, flags: flPSH | flACK, payload: concurrentRequest, exchange: x},
			concurrentStep{after: t + rtt, flags: flPSH | flACK, payload: concurrentResponse, exchange: x},
			concurrentStep{after: t + rtt + stack, out: true, flags: flACK, exchange: x})
	}
	var sent [2]int
	for k := range steps {
		d := 0
		if !steps[k].out {
			d = 1
		}
		steps[k].id = sent[d]
		sent[d]++
	}
	return steps
}

// Concurrent generates the capture cfg describes, frames in capture order.
// Its Flows hold each connection's addresses and frame count; RTT truth is
// cfg.RTT for every sample. The result depends only on cfg.
func Concurrent(cfg ConcurrentConfig) *Capture {
	if cfg.RTT == 0 {
		cfg.RTT = 2 * time.Millisecond
	}
	if cfg.Gap == 0 {
		cfg.Gap = time.Microsecond
	}
	if cfg.Start.IsZero() {
		cfg.Start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	steps := cfg.schedule()
	n := cfg.Flows
	capt := &Capture{
		LocalIPs: []netip.Addr{LocalIPv4},
		Flows:    make([]FlowTruth, n),
		Frames:   make([]Frame, 0, n*len(steps)),
		// Two SYNs per connection, every other frame without SYN options:
		// the exact size, so the frames never move.
		Buf: make([]byte, 0, n*(2*concurrentFrameLen(true)+(len(steps)-2)*concurrentFrameLen(false))),
	}
	for i := range capt.Flows {
		capt.Flows[i] = FlowTruth{Kind: ReqResp, Local: concurrentLocal(i), Remote: concurrentRemote(i),
			PathRTT: cfg.RTT, Timestamps: true, LocalISN: concurrentISN(i, true), RemoteISN: concurrentISN(i, false)}
	}
	if n == 0 {
		return capt
	}
	// Round r starts when the one before has ended, and its slot j is
	// connection conn[r][j]'s: each step's frames are then in order of
	// slot, and a merge of one cursor per step puts them all in capture
	// order.
	start, gap := cfg.Start.UnixNano(), int64(cfg.Gap)
	rounds := max(cfg.Exchanges, 1)
	roundLen := int64(n)*gap + 2*int64(cfg.RTT) + int64(time.Millisecond)
	conn := make([][]int32, rounds) // conn[r][slot]: which connection
	rng := rand.New(rand.NewPCG(uint64(n), uint64(rounds)))
	for r := range conn {
		conn[r] = make([]int32, n)
		for i := range conn[r] {
			conn[r][i] = int32(i)
		}
		if r > 0 {
			rng.Shuffle(n, func(a, b int) { conn[r][a], conn[r][b] = conn[r][b], conn[r][a] })
		}
	}
	at := func(k, j int) int64 {
		st := &steps[k]
		return start + int64(st.round())*roundLen + int64(j)*gap + st.after
	}
	h := make(eventHeap, 0, len(steps))
	for k := range steps {
		h = append(h, concurrentEvent{at: at(k, 0), k: k})
	}
	heap.Init(&h)
	for h.Len() > 0 {
		e := &h[0]
		st := &steps[e.k]
		i := int(conn[st.round()][e.j])
		// The TCP timestamp clocks run from the connection's SYN.
		data, wire := concurrentFrame(capt, i, st, e.at-(start+int64(i)*gap))
		capt.Frames = append(capt.Frames, Frame{Data: data, TS: e.at, WireLen: int32(wire), Flow: int32(i)})
		fl := &capt.Flows[i]
		fl.Frames++
		if fl.FirstTS == 0 {
			fl.FirstTS = e.at
		}
		fl.LastTS = e.at
		if e.j+1 < n {
			e.j++
			e.at = at(e.k, e.j)
			heap.Fix(&h, 0)
		} else {
			heap.Pop(&h)
		}
	}
	return capt
}

// concurrentFrameLen is the captured length of a frame: Ethernet, IPv4 and
// TCP with the options Linux sends (a SYN: MSS, SACK permitted, timestamps
// and window scale in 20 bytes; any other segment: timestamps in 12).
func concurrentFrameLen(syn bool) int {
	if syn {
		return 14 + 20 + 20 + 20
	}
	return 14 + 20 + 20 + 12
}

func concurrentLocal(i int) netip.AddrPort {
	return netip.AddrPortFrom(LocalIPv4, uint16(10000+i%PortsPerRemote))
}

// concurrentRemote is connection i's server: 10.2.0.0/16 and beyond,
// port 443.
func concurrentRemote(i int) netip.AddrPort {
	r := i / PortsPerRemote
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(2 + r>>16), byte(r >> 8), byte(r)}), 443)
}

// concurrentISN is a deterministic, well-spread ISN per connection and side.
func concurrentISN(i int, local bool) uint32 {
	x := uint64(i)*0x9e3779b97f4a7c15 + 1
	if !local {
		x ^= 0xbf58476d1ce4e5b9
	}
	x ^= x >> 31
	x *= 0x94d049bb133111eb
	return uint32(x >> 32)
}

// concurrentFrame appends the headers of step st of connection i, rel ns
// after its SYN, to capt.Buf and returns them with the wire
// length.
func concurrentFrame(capt *Capture, i int, st *concurrentStep, rel int64) ([]byte, int) {
	fl := &capt.Flows[i]
	src, dst := fl.Local, fl.Remote
	fromISN, toISN := fl.LocalISN, fl.RemoteISN
	if !st.out {
		src, dst = dst, src
		fromISN, toISN = toISN, fromISN
	}
	// Sequence offsets: each side's SYN takes one; the local side has
	// sent x requests before exchange x, the remote x responses.
	var seq, ack uint32
	x := uint32(max(st.exchange, 0))
	req, resp := uint32(concurrentRequest), uint32(concurrentResponse)
	switch {
	case st.flags&flSYN != 0 && st.out:
		seq = fromISN
	case st.flags&flSYN != 0:
		seq, ack = fromISN, toISN+1
	case st.out && st.payload > 0:
		seq, ack = fromISN+1+x*req, toISN+1+x*resp
	case st.out && st.exchange >= 0:
		seq, ack = fromISN+1+(x+1)*req, toISN+1+(x+1)*resp
	case st.out:
		seq, ack = fromISN+1, toISN+1
	default: // the response
		seq, ack = fromISN+1+x*resp, toISN+1+(x+1)*req
	}
	// TSvals: a 1 ms clock per side, the remote's offset by the index.
	tsOut := uint32(rel/1e6) + 1000
	tsIn := uint32(rel/1e6) + 5000 + uint32(i)
	tsval, tsecr := tsOut, tsIn
	if !st.out {
		tsval, tsecr = tsIn, tsOut
	}
	if st.flags == flSYN {
		tsecr = 0
	}

	syn := st.flags&flSYN != 0
	hlen := concurrentFrameLen(syn)
	tcpLen := hlen - 34
	off := len(capt.Buf)
	capt.Buf = capt.Buf[:off+hlen]
	b := capt.Buf[off : off+hlen : off+hlen]
	clear(b)
	if st.out {
		copy(b[0:6], gatewayMAC[:])
		copy(b[6:12], localMAC[:])
	} else {
		copy(b[0:6], localMAC[:])
		copy(b[6:12], gatewayMAC[:])
	}
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+tcpLen+st.payload))
	binary.BigEndian.PutUint16(ip[4:], uint16(i*16+st.id)) // grows along each side's frames
	binary.BigEndian.PutUint16(ip[6:], 0x4000)             // DF
	ip[8], ip[9] = 64, 6
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	copy(ip[12:16], s4[:])
	copy(ip[16:20], d4[:])
	binary.BigEndian.PutUint16(ip[10:], ^fold(onesSum(ip, 0)))

	t := b[34:]
	binary.BigEndian.PutUint16(t[0:], src.Port())
	binary.BigEndian.PutUint16(t[2:], dst.Port())
	binary.BigEndian.PutUint32(t[4:], seq)
	binary.BigEndian.PutUint32(t[8:], ack)
	t[12] = byte(tcpLen/4) << 4
	t[13] = st.flags
	binary.BigEndian.PutUint16(t[14:], 502) // 64 KiB at window scale 7
	o := t[20:tcpLen]
	if syn {
		binary.BigEndian.PutUint16(t[14:], 64240)
		o[0], o[1] = 2, 4
		binary.BigEndian.PutUint16(o[2:], 1460)
		o[4], o[5] = 4, 2 // SACK permitted
		o[6], o[7] = 8, 10
		binary.BigEndian.PutUint32(o[8:], tsval)
		binary.BigEndian.PutUint32(o[12:], tsecr)
		o[16], o[17], o[18], o[19] = 1, 3, 3, 7
	} else {
		o[0], o[1], o[2], o[3] = 1, 1, 8, 10
		binary.BigEndian.PutUint32(o[4:], tsval)
		binary.BigEndian.PutUint32(o[8:], tsecr)
	}
	sum := onesSum(ip[12:20], 0) + 6 + uint32(tcpLen) + uint32(st.payload)
	binary.BigEndian.PutUint16(t[16:], ^fold(onesSum(t, sum)))
	return b, hlen + st.payload
}
