package synth

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// genSmall caches the Small capture: several tests only read it.
var smallCapture *Capture

func genSmall(t testing.TB) *Capture {
	t.Helper()
	if smallCapture == nil {
		smallCapture = Generate(Small())
	}
	return smallCapture
}

// decoded is one frame decoded by gopacket, an implementation independent of the generator.
type decoded struct {
	v4   *layers.IPv4
	v6   *layers.IPv6
	tcp  *layers.TCP
	src  netip.AddrPort
	dst  netip.AddrPort
	plen int // TCP payload length from the IP header
}

func decodeFrame(t *testing.T, k int, f Frame) decoded {
	t.Helper()
	p := gopacket.NewPacket(f.Data, layers.LayerTypeEthernet, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("frame %d: decode error: %v", k, el.Error())
	}
	var d decoded
	tl, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if !ok {
		t.Fatalf("frame %d: no TCP layer: %v", k, p)
	}
	d.tcp = tl
	hdr := int(tl.DataOffset) * 4
	switch ip := p.NetworkLayer().(type) {
	case *layers.IPv4:
		d.v4 = ip
		d.plen = int(ip.Length) - int(ip.IHL)*4 - hdr
		a, _ := netip.AddrFromSlice(ip.SrcIP)
		b, _ := netip.AddrFromSlice(ip.DstIP)
		d.src, d.dst = netip.AddrPortFrom(a.Unmap(), uint16(tl.SrcPort)), netip.AddrPortFrom(b.Unmap(), uint16(tl.DstPort))
		if want := 14 + int(ip.Length); int(f.WireLen) != max(want, 60) && int(f.WireLen) != want {
			t.Fatalf("frame %d: wire length %d, IPv4 says %d", k, f.WireLen, want)
		}
	case *layers.IPv6:
		d.v6 = ip
		d.plen = int(ip.Length) - hdr
		a, _ := netip.AddrFromSlice(ip.SrcIP)
		b, _ := netip.AddrFromSlice(ip.DstIP)
		d.src, d.dst = netip.AddrPortFrom(a, uint16(tl.SrcPort)), netip.AddrPortFrom(b, uint16(tl.DstPort))
		if want := 14 + 40 + int(ip.Length); int(f.WireLen) != want {
			t.Fatalf("frame %d: wire length %d, IPv6 says %d", k, f.WireLen, want)
		}
	default:
		t.Fatalf("frame %d: network layer %T", k, ip)
	}
	if d.plen < 0 || len(f.Data) > Snaplen {
		t.Fatalf("frame %d: payload %d, captured %d", k, d.plen, len(f.Data))
	}
	return d
}

// checksumsOK recomputes the IPv4 and TCP checksums with gopacket over the headers and an
// all-zero payload of the advertised length (the generator's convention).
func checksumsOK(t *testing.T, d decoded) bool {
	t.Helper()
	tcp := *d.tcp
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{ComputeChecksums: true}
	var err error
	if d.v4 != nil {
		ip := *d.v4
		err = tcp.SetNetworkLayerForChecksum(&ip)
		if err == nil {
			err = gopacket.SerializeLayers(buf, opts, &ip, &tcp, gopacket.Payload(make([]byte, d.plen)))
		}
		if err == nil && ip.Checksum != d.v4.Checksum {
			return false
		}
	} else {
		ip := *d.v6
		err = tcp.SetNetworkLayerForChecksum(&ip)
		if err == nil {
			err = gopacket.SerializeLayers(buf, opts, &ip, &tcp, gopacket.Payload(make([]byte, d.plen)))
		}
	}
	if err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return tcp.Checksum == d.tcp.Checksum
}

func TestFramesDecodeWithValidChecksums(t *testing.T) {
	c := genSmall(t)
	if len(c.Frames) < 10000 {
		t.Fatalf("only %d frames", len(c.Frames))
	}
	for k, f := range c.Frames {
		d := decodeFrame(t, k, f)
		fl := c.Flows[f.Flow]
		if !(d.src == fl.Local && d.dst == fl.Remote) && !(d.src == fl.Remote && d.dst == fl.Local) {
			t.Fatalf("frame %d: %v -> %v does not belong to flow %v-%v", k, d.src, d.dst, fl.Local, fl.Remote)
		}
		if !checksumsOK(t, d) {
			t.Fatalf("frame %d: bad checksum", k)
		}
	}
}

func TestChecksumMismatchIsDetected(t *testing.T) {
	// The checksum test above must be able to fail: corrupt one header byte.
	c := Generate(Small())
	f := c.Frames[100]
	f.Data = append([]byte(nil), f.Data...)
	binary.BigEndian.PutUint16(f.Data[len(f.Data)-2:], binary.BigEndian.Uint16(f.Data[len(f.Data)-2:])^0x0100)
	if checksumsOK(t, decodeFrame(t, 100, f)) {
		t.Fatal("corrupted frame passed the checksum check")
	}
}

func TestTimestampsNonDecreasing(t *testing.T) {
	c := genSmall(t)
	start := Small().Start.UnixNano()
	for k := 1; k < len(c.Frames); k++ {
		if c.Frames[k].TS < c.Frames[k-1].TS {
			t.Fatalf("frame %d at %d before frame %d at %d", k, c.Frames[k].TS, k-1, c.Frames[k-1].TS)
		}
	}
	if c.Frames[0].TS < start {
		t.Fatalf("first frame %d before start %d", c.Frames[0].TS, start)
	}
}

// dirState follows one direction of one flow in the capture.
type dirState struct {
	isn       uint32
	synSeen   bool
	maxEnd    uint32 // highest seq+len (+SYN/FIN) seen
	lastAck   uint32
	ackSeen   bool
	wrapped   bool
	tsvals    map[uint32]bool
	lastTSecr uint32
	tsecrSeen bool
}

func seqLT(a, b uint32) bool { return int32(a-b) < 0 }

func TestSeqAckConsistency(t *testing.T) {
	c := genSmall(t)
	st := make([][2]*dirState, len(c.Flows))
	for k := range st {
		st[k] = [2]*dirState{{tsvals: map[uint32]bool{}}, {tsvals: map[uint32]bool{}}}
	}
	for k, f := range c.Frames {
		d := decodeFrame(t, k, f)
		fl := &c.Flows[f.Flow]
		dir := 0
		if d.src == fl.Remote {
			dir = 1
		}
		me, peer := st[f.Flow][dir], st[f.Flow][1-dir]
		tcp := d.tcp
		if tcp.SYN {
			want := fl.LocalISN
			if dir == 1 {
				want = fl.RemoteISN
			}
			if tcp.Seq != want {
				t.Fatalf("frame %d: SYN seq %d, truth ISN %d", k, tcp.Seq, want)
			}
			if !me.synSeen {
				me.isn, me.synSeen, me.maxEnd = tcp.Seq, true, tcp.Seq+1
			}
		} else if !me.synSeen {
			t.Fatalf("frame %d: segment before SYN in flow %d dir %d", k, f.Flow, dir)
		}
		end := tcp.Seq + uint32(d.plen)
		if tcp.FIN {
			end++
		}
		if seqLT(me.maxEnd, end) {
			if end < me.maxEnd {
				me.wrapped = true
			}
			me.maxEnd = end
		}
		if tcp.ACK {
			// An ACK never covers data the peer has not sent (as captured: incoming data lost
			// on the path is never seen, so only outgoing ACKs can be checked against it...
			// but the local host only acks what it received, which the capture saw).
			if dir == 0 && seqLT(peer.maxEnd, tcp.Ack) {
				t.Fatalf("frame %d: local acks %d beyond remote's highest %d", k, tcp.Ack, peer.maxEnd)
			}
			if dir == 1 && seqLT(peer.maxEnd, tcp.Ack) {
				t.Fatalf("frame %d: remote acks %d beyond local's highest %d", k, tcp.Ack, peer.maxEnd)
			}
			if me.ackSeen && seqLT(tcp.Ack, me.lastAck) && !tcp.RST {
				t.Fatalf("frame %d: ack went back from %d to %d (flow %d dir %d)", k, me.lastAck, tcp.Ack, f.Flow, dir)
			}
			me.lastAck, me.ackSeen = tcp.Ack, true
		}
		for _, o := range tcp.Options {
			if o.OptionType != layers.TCPOptionKindTimestamps {
				continue
			}
			tsval, tsecr := binary.BigEndian.Uint32(o.OptionData[0:]), binary.BigEndian.Uint32(o.OptionData[4:])
			me.tsvals[tsval] = true
			if tcp.SYN && !tcp.ACK {
				continue
			}
			// RFC 7323: TSecr echoes a TSval the peer sent; echoes never go back in time.
			// Incoming TSecr must echo a local TSval (all are captured); outgoing ones echo
			// an incoming TSval the capture saw, since lost ones are never echoed.
			if !peer.tsvals[tsecr] {
				t.Fatalf("frame %d: TSecr %d echoes no TSval of the peer (flow %d dir %d)", k, tsecr, f.Flow, dir)
			}
			if me.tsecrSeen && seqLT(tsecr, me.lastTSecr) {
				t.Fatalf("frame %d: TSecr went back from %d to %d", k, me.lastTSecr, tsecr)
			}
			me.lastTSecr, me.tsecrSeen = tsecr, true
		}
	}
	wrapped := 0
	for k, fl := range c.Flows {
		if fl.Wraps && (st[k][0].wrapped || st[k][1].wrapped) {
			wrapped++
		}
	}
	if wrapped == 0 {
		t.Fatal("no flow's sequence numbers wrapped")
	}
}

func TestFlowCounts(t *testing.T) {
	cfg := Small()
	c := genSmall(t)
	want := map[FlowKind]int{BulkSend: cfg.BulkSendFlows, BulkRecv: cfg.BulkRecvFlows, ReqResp: cfg.ReqRespFlows, Accept: cfg.AcceptFlows}
	got := map[FlowKind]int{}
	v6, noTS, resets, keepaliveFlows := 0, 0, 0, 0
	for _, fl := range c.Flows {
		got[fl.Kind]++
		if fl.Local.Addr().Is6() {
			v6++
			if fl.Local.Addr() != LocalIPv6 || fl.Remote.Addr().Is4() {
				t.Fatalf("mixed families in %v-%v", fl.Local, fl.Remote)
			}
		}
		if !fl.Timestamps {
			noTS++
		}
		if fl.Reset {
			resets++
		}
		if fl.Frames < 4 {
			t.Errorf("flow %v-%v has %d frames", fl.Local, fl.Remote, fl.Frames)
		}
		switch fl.Kind {
		case BulkSend:
			if fl.BytesSent != cfg.BulkBytes {
				t.Errorf("bulk send delivered %d of %d bytes", fl.BytesSent, cfg.BulkBytes)
			}
		case BulkRecv:
			if fl.BytesReceived != cfg.BulkBytes {
				t.Errorf("bulk receive got %d of %d bytes", fl.BytesReceived, cfg.BulkBytes)
			}
		}
		_ = keepaliveFlows
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%v flows: got %d, want %d", k, got[k], n)
		}
	}
	if v6 != cfg.IPv6Flows {
		t.Errorf("IPv6 flows: got %d, want %d", v6, cfg.IPv6Flows)
	}
	if noTS == 0 || noTS == len(c.Flows) {
		t.Errorf("flows without timestamps: %d of %d", noTS, len(c.Flows))
	}
	if resets == 0 {
		t.Error("no connection ended with a RST")
	}
}

func TestDeterminism(t *testing.T) {
	a, b := Generate(Small()), Generate(Small())
	if !bytes.Equal(a.Buf, b.Buf) || len(a.Frames) != len(b.Frames) {
		t.Fatal("same seed, different bytes")
	}
	for k := range a.Frames {
		if a.Frames[k].TS != b.Frames[k].TS || a.Frames[k].WireLen != b.Frames[k].WireLen {
			t.Fatalf("same seed, frame %d differs", k)
		}
	}
	cfg := Small()
	cfg.Seed++
	if d := Generate(cfg); bytes.Equal(a.Buf, d.Buf) {
		t.Fatal("different seed, same bytes")
	}
}

func TestLossProducesRetransmissions(t *testing.T) {
	tests := []struct {
		name string
		loss float64
	}{
		{"no loss", 0},
		{"1% loss", 0.01},
		{"5% loss", 0.05},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Small()
			cfg.LossRate = tt.loss
			cfg.KeepaliveFrac = 0 // probes repeat a sequence number without being retransmissions
			c := Generate(cfg)
			truthLocal, truthRemote := 0, 0
			for _, fl := range c.Flows {
				truthLocal += fl.Retransmits
				truthRemote += fl.RemoteRetransmits
			}
			// Count, from the capture alone, outgoing segments whose sequence range (SYN and FIN
			// included) was already sent.
			type key struct {
				flow int32
				seq  uint32
			}
			seen := map[key]bool{}
			repeats := 0
			for k, f := range c.Frames {
				d := decodeFrame(t, k, f)
				fl := c.Flows[f.Flow]
				if d.src != fl.Local || (d.plen == 0 && !d.tcp.SYN && !d.tcp.FIN) {
					continue
				}
				kk := key{f.Flow, d.tcp.Seq}
				if seen[kk] {
					repeats++
				}
				seen[kk] = true
			}
			if repeats != truthLocal {
				t.Errorf("capture shows %d repeated local segments, truth says %d retransmissions", repeats, truthLocal)
			}
			if tt.loss == 0 && (truthLocal != 0 || truthRemote != 0) {
				t.Errorf("no loss but %d local and %d remote retransmissions", truthLocal, truthRemote)
			}
			if tt.loss > 0 && (truthLocal == 0 || truthRemote == 0) {
				t.Errorf("loss %v but %d local and %d remote retransmissions", tt.loss, truthLocal, truthRemote)
			}
			for _, fl := range c.Flows {
				if fl.Kind == BulkSend && fl.BytesSent != cfg.BulkBytes || fl.Kind == BulkRecv && fl.BytesReceived != cfg.BulkBytes {
					t.Errorf("%v flow incomplete under loss: sent %d received %d", fl.Kind, fl.BytesSent, fl.BytesReceived)
				}
			}
		})
	}
}

func TestRTTSamplesNeverBelowPathRTT(t *testing.T) {
	// Every sample is a real round trip over the path: base RTT plus non-negative jitter,
	// queueing and ACK delay. A sample below the path RTT would mean the simulator broke
	// causality (or timed the wrong segment).
	c := genSmall(t)
	withSeq, withTS := 0, 0
	for _, fl := range c.Flows {
		if fl.SeqRTT.N > 0 {
			withSeq++
			if fl.SeqRTT.Min < fl.PathRTT {
				t.Errorf("%v %v: seq sample %v below path RTT %v", fl.Kind, fl.Remote, fl.SeqRTT.Min, fl.PathRTT)
			}
		}
		if fl.TSRTT.N > 0 {
			withTS++
			if fl.TSRTT.Min < fl.PathRTT {
				t.Errorf("%v %v: TS sample %v below path RTT %v", fl.Kind, fl.Remote, fl.TSRTT.Min, fl.PathRTT)
			}
		}
		if fl.Timestamps != (fl.TSRTT.N > 0) {
			t.Errorf("%v %v: timestamps %v but %d TS samples", fl.Kind, fl.Remote, fl.Timestamps, fl.TSRTT.N)
		}
		// Without delayed ACKs in play (request/response to a quick server), the smoothed RTT
		// stays near the path RTT plus jitter.
		if fl.SeqRTT.N == 0 {
			t.Errorf("%v %v: no sequence RTT sample (the handshake always gives one)", fl.Kind, fl.Remote)
		}
	}
	if withSeq == 0 || withTS == 0 {
		t.Fatalf("samples: %d flows with seq, %d with TS", withSeq, withTS)
	}
}

func TestRTTStats(t *testing.T) {
	tests := []struct {
		name             string
		samples          []time.Duration
		srtt, rttvar     time.Duration
		minimum, maximum time.Duration
	}{
		{"first sample", []time.Duration{100 * time.Millisecond}, 100 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond},
		// RTTVAR = 3/4*50 + 1/4*|100-180| = 57.5; SRTT = 7/8*100 + 1/8*180 = 110.
		{"second uses old srtt", []time.Duration{100 * time.Millisecond, 180 * time.Millisecond}, 110 * time.Millisecond, 57500 * time.Microsecond, 100 * time.Millisecond, 180 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s RTTStats
			for _, r := range tt.samples {
				s.add(int64(r))
			}
			if s.SRTT != tt.srtt || s.RTTVar != tt.rttvar || s.Min != tt.minimum || s.Max != tt.maximum || s.N != len(tt.samples) {
				t.Fatalf("got %+v", s)
			}
		})
	}
}

func TestInsertRange(t *testing.T) {
	tests := []struct {
		name string
		in   [][2]int64
		a, b int64
		want [][2]int64
	}{
		{"empty", nil, 10, 20, [][2]int64{{10, 20}}},
		{"before", [][2]int64{{30, 40}}, 10, 20, [][2]int64{{10, 20}, {30, 40}}},
		{"after", [][2]int64{{10, 20}}, 30, 40, [][2]int64{{10, 20}, {30, 40}}},
		{"adjacent merges", [][2]int64{{10, 20}}, 20, 30, [][2]int64{{10, 30}}},
		{"bridges two", [][2]int64{{10, 20}, {30, 40}}, 20, 30, [][2]int64{{10, 40}}},
		{"duplicate", [][2]int64{{10, 20}}, 12, 18, [][2]int64{{10, 20}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := insertRange(append([][2]int64(nil), tt.in...), tt.a, tt.b)
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for k := range got {
				if got[k] != tt.want[k] {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
}
