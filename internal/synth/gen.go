package synth

import (
	"math/rand/v2"
	"net/netip"
	"time"
)

// Frame is one captured frame: headers only (Ethernet, IP, TCP with options), as a capture with
// a small snaplen stores them. Data points into the capture's single buffer.
type Frame struct {
	Data []byte
	// TS is the capture instant in nanoseconds since the Unix epoch.
	TS int64
	// WireLen is the length of the whole frame on the wire, payload included.
	WireLen int32
	// Flow indexes Capture.Flows.
	Flow int32
}

// Capture is a generated capture with its ground truth.
type Capture struct {
	// Frames in capture order (TS non-decreasing).
	Frames []Frame
	// LocalIPs are the addresses of the capture host.
	LocalIPs []netip.Addr
	// Flows are the simulated connections; Frame.Flow indexes them.
	Flows []FlowTruth
	// Buf holds the bytes of all frames.
	Buf []byte
}

// Generate runs the simulation described by cfg. The result depends only on cfg.
func Generate(cfg Config) *Capture {
	s := &sim{
		cfg:   cfg,
		rng:   rand.New(rand.NewPCG(uint64(cfg.Seed), 0x9e3779b97f4a7c15)),
		start: cfg.Start.UnixNano(),
	}
	s.setup()
	s.reserve()
	s.run()
	return s.finish()
}

func (s *sim) newServer(addr netip.Addr) *server {
	cfg := s.cfg
	rtt := int64(s.logUniform(float64(max(cfg.MinRTT, 10*time.Microsecond)), float64(max(cfg.MaxRTT, cfg.MinRTT))))
	rate := s.logUniform(max(cfg.MinRateMbps, 1), max(cfg.MaxRateMbps, cfg.MinRateMbps, 1))
	return &server{
		addr:   addr,
		rtt:    rtt,
		jitter: max(int64(cfg.MinJitter), int64(cfg.JitterFrac*float64(rtt))),
		nsPerB: 8000 / rate,
		tsBase: s.rng.Uint32(),
		ttl:    uint8(40 + s.rng.IntN(24)),
	}
}

func (s *sim) setup() {
	cfg := s.cfg
	n4 := max(cfg.Servers, 1)
	n6 := max(cfg.Servers/4, 1)
	var v4, v6 []*server
	for k := range n4 {
		v4 = append(v4, s.newServer(netip.AddrFrom4([4]byte{10, 2, byte(k / 250), byte(k%250 + 1)})))
	}
	for k := range n6 {
		a := netip.MustParseAddr("fd00:2::").As16()
		a[14], a[15] = byte((k+1)>>8), byte(k+1)
		v6 = append(v6, s.newServer(netip.AddrFrom16(a)))
	}
	localTS := s.rng.Uint32()

	type spec struct {
		kind FlowKind
		idx  int // index within its kind
	}
	var specs []spec
	for _, kc := range []struct {
		k FlowKind
		n int
	}{{BulkSend, cfg.BulkSendFlows}, {BulkRecv, cfg.BulkRecvFlows}, {ReqResp, cfg.ReqRespFlows}, {Accept, cfg.AcceptFlows}} {
		for i := range kc.n {
			specs = append(specs, spec{kc.k, i})
		}
	}
	// IPv6 goes to request/response connections first, then to bulk ones.
	v6Left := cfg.IPv6Flows
	isV6 := make([]bool, len(specs))
	for pass := 0; pass < 2; pass++ {
		for i, sp := range specs {
			bulk := sp.kind == BulkSend || sp.kind == BulkRecv
			if v6Left > 0 && !isV6[i] && bulk == (pass == 1) {
				isV6[i] = true
				v6Left--
			}
		}
	}
	// Wrapping flows alternate between uploads and downloads: send 0, receive 0, send 1, ...
	wraps := make([]bool, len(specs))
	wrapLeft := max(cfg.WrapFlows, 1)
	for k := 0; wrapLeft > 0 && k < max(cfg.BulkSendFlows, cfg.BulkRecvFlows); k++ {
		if k < cfg.BulkSendFlows {
			wraps[k] = true
			wrapLeft--
		}
		if k < cfg.BulkRecvFlows && wrapLeft > 0 {
			wraps[cfg.BulkSendFlows+k] = true
			wrapLeft--
		}
	}
	port := uint16(32768 + s.rng.IntN(20000))
	nextPort := func() uint16 {
		port++
		if port > 60999 {
			port = 32768
		}
		return port
	}

	for id, sp := range specs {
		c := &conn{id: int32(id), kind: sp.kind, v6: isV6[id]}
		pool, localIP := v4, LocalIPv4
		if c.v6 {
			pool, localIP = v6, LocalIPv6
		}
		c.srv = pool[s.rng.IntN(len(pool))]
		bulk := sp.kind == BulkSend || sp.kind == BulkRecv
		switch sp.kind {
		case BulkSend:
			c.local = netip.AddrPortFrom(localIP, nextPort())
			c.remote = netip.AddrPortFrom(c.srv.addr, 5001)
		case BulkRecv:
			c.local = netip.AddrPortFrom(localIP, nextPort())
			c.remote = netip.AddrPortFrom(c.srv.addr, 443)
		case ReqResp:
			rp := uint16(443)
			if s.chance(0.2) {
				rp = 80
			}
			c.local = netip.AddrPortFrom(localIP, nextPort())
			c.remote = netip.AddrPortFrom(c.srv.addr, rp)
		case Accept:
			lp := uint16(22)
			if s.chance(0.5) {
				lp = 8080
			}
			c.opener = 1
			c.local = netip.AddrPortFrom(localIP, lp)
			c.remote = netip.AddrPortFrom(c.srv.addr, uint16(40000+s.rng.IntN(20000)))
		}
		c.ts = !s.chance(cfg.NoTimestampsFrac)
		if bulk {
			// One bulk upload without timestamps (sequence matching only under load); the
			// other bulk flows keep them, as the download case needs them.
			c.ts = !(sp.kind == BulkSend && sp.idx == 1)
		}
		c.sack = !s.chance(cfg.NoSACKFrac)
		c.flowLabel = s.rng.Uint32() & 0xfffff
		c.exchanges = cfg.MinExchanges + s.rng.IntN(max(cfg.MaxExchanges-cfg.MinExchanges, 0)+1)
		c.useRST = !bulk && s.chance(cfg.RSTFrac)
		c.rstBy = s.rng.IntN(2)
		c.keepalive = sp.kind == ReqResp && s.chance(cfg.KeepaliveFrac)
		c.kaLen = int32(s.rng.IntN(2))
		c.winUpdates = s.chance(0.5)

		mssOpt := int64(1460)
		if c.v6 {
			mssOpt = 1440
		}
		mss := mssOpt
		if c.ts {
			mss -= 12
		}
		bdp := int64(float64(c.srv.rtt) / c.srv.nsPerB)
		bulkBuf := min(max(bdp*3/2, 64<<10), 8<<20)
		sender := -1
		switch sp.kind {
		case BulkSend:
			sender = 0
		case BulkRecv:
			sender = 1
		}
		for i := range 2 {
			e := &c.ep[i]
			e.iss = s.rng.Uint32()
			if i == sender && wraps[id] {
				e.iss = 0xffffffff - s.rng.Uint32N(200000)
				c.truth.Wraps = true
			}
			e.mss = mss
			e.tsBase = c.srv.tsBase
			if i == 0 {
				e.tsBase = localTS
			}
			e.una, e.nxt, e.max = -1, -1, -1
			e.cwnd, e.ssthresh = 10, 1e9
			e.rto = initRTO
			e.peerFin, e.expect = -1, -1
			e.peerWin = synWindow
			e.rcvBuf = 256 << 10
			if sender >= 0 && i != sender {
				e.rcvBuf = bulkBuf
			}
		}
		for i := range 2 {
			c.ep[i].maxCwnd = float64(2*c.ep[1-i].rcvBuf/mss + 10)
		}
		start := int64(s.rng.Float64() * float64(time.Second))
		if !bulk {
			start = int64(s.rng.Float64() * float64(cfg.Duration))
		}
		c.truth.Kind = sp.kind
		c.truth.Local, c.truth.Remote = c.local, c.remote
		c.truth.PathRTT, c.truth.Jitter = time.Duration(c.srv.rtt), time.Duration(c.srv.jitter)
		c.truth.RateMbps = 8000 / c.srv.nsPerB
		c.truth.Timestamps, c.truth.SACK = c.ts, c.sack
		c.truth.LocalISN, c.truth.RemoteISN = c.ep[0].iss, c.ep[1].iss
		s.conns = append(s.conns, c)
		s.push(s.start+start, evConnect, c, c.opener, -1, 0)
	}
}

func (s *sim) finish() *Capture {
	capt := &Capture{
		LocalIPs: []netip.Addr{LocalIPv4, LocalIPv6},
		Flows:    make([]FlowTruth, len(s.conns)),
		Frames:   s.frames,
		Buf:      s.buf,
	}
	for k, c := range s.conns {
		e := &c.ep[0]
		c.truth.BytesSent = max(min(e.una, e.appEnd), 0)
		got := e.rcvNxt
		if e.peerFin >= 0 {
			got = min(got, e.peerFin)
		}
		c.truth.BytesReceived = max(got, 0)
		capt.Flows[k] = c.truth
	}
	s.frames, s.buf = nil, nil
	return capt
}

// reserve sizes the frame buffers from the configuration so they rarely grow: a bulk flow
// makes about 1.55 frames per MSS of payload, a request/response exchange about 20 frames.
func (s *sim) reserve() {
	cfg := s.cfg
	frames := int64(cfg.BulkSendFlows+cfg.BulkRecvFlows) * (cfg.BulkBytes/1400*155/100 + 20)
	frames += int64(cfg.ReqRespFlows+cfg.AcceptFlows) * (int64(cfg.MinExchanges+cfg.MaxExchanges)/2*20 + 10)
	frames = frames*11/10 + 1024
	s.frames = make([]Frame, 0, frames)
	s.buf = make([]byte, 0, frames*70)
}
