package synth

import (
	"encoding/binary"
	"time"

	"testing"

	"github.com/google/gopacket/layers"
)

// TestFeaturesPresent checks, from the capture alone, that the Small profile contains each
// behaviour the RTT engine must cope with, so a regression in the simulator that silently
// drops one (say, SACK blocks) is caught.
func TestFeaturesPresent(t *testing.T) {
	c := genSmall(t)
	type dirLast struct {
		ack, win uint32
		maxEnd   uint32
		started  bool
	}
	last := make([][2]dirLast, len(c.Flows))
	sends := map[[2]uint32]int{} // (flow, seq) of outgoing data/SYN/FIN -> times sent
	count := map[string]int{}
	for k, f := range c.Frames {
		d := decodeFrame(t, k, f)
		fl := c.Flows[f.Flow]
		dir := 0
		if d.src == fl.Remote {
			dir = 1
		}
		tcp := d.tcp
		l := &last[f.Flow][dir]
		pure := d.plen == 0 && !tcp.SYN && !tcp.FIN && !tcp.RST
		for _, o := range tcp.Options {
			if o.OptionType == layers.TCPOptionKindSACK {
				count["sack blocks ("+[]string{"out", "in"}[dir]+")"]++
			}
		}
		switch {
		case tcp.SYN && !tcp.ACK && dir == 1:
			count["remote SYN (local accepts)"]++
		case tcp.RST:
			count["RST"]++
		case tcp.FIN:
			count["FIN"]++
		}
		if dir == 0 && d.plen <= 1 && !tcp.SYN && !tcp.FIN && l.started && tcp.Seq == l.maxEnd-1 {
			count["keepalive probe"]++
		}
		if pure && l.started && tcp.ACK && tcp.Ack == l.ack {
			if uint32(tcp.Window) != l.win {
				count["window update ("+[]string{"out", "in"}[dir]+")"]++
			} else if dir == 1 {
				count["duplicate ACK (in)"]++
			}
		}
		if dir == 0 && (d.plen > 0 || tcp.SYN || tcp.FIN) {
			key := [2]uint32{uint32(f.Flow), tcp.Seq}
			sends[key]++
			if sends[key] == 3 {
				count["sent 3 times (RTO backoff)"]++
			}
		}
		end := tcp.Seq + uint32(d.plen)
		if tcp.SYN || tcp.FIN {
			end++
		}
		if !l.started || seqLT(l.maxEnd, end) {
			l.maxEnd = end
		}
		if tcp.ACK {
			l.ack, l.win = tcp.Ack, uint32(tcp.Window)
		}
		l.started = true
	}
	for _, want := range []string{
		"sack blocks (out)", "sack blocks (in)", "remote SYN (local accepts)", "RST", "FIN",
		"keepalive probe", "window update (out)", "duplicate ACK (in)", "sent 3 times (RTO backoff)",
	} {
		if count[want] == 0 {
			t.Errorf("no %s in the capture (%v)", want, count)
		}
	}
	t.Logf("%v", count)
}

var lossFreeCapture *Capture

// lossFree is Small without loss or keepalives: every ACK then follows the textbook rules.
func lossFree() *Capture {
	if lossFreeCapture == nil {
		cfg := Small()
		cfg.LossRate, cfg.KeepaliveFrac = 0, 0
		lossFreeCapture = Generate(cfg)
	}
	return lossFreeCapture
}

func TestDelayedAcks(t *testing.T) {
	c := lossFree()
	type pending struct {
		end uint32
		ts  int64
	}
	lastData := make([]pending, len(c.Flows)) // last local data segment, if alone in flight
	inFlight := make([]int, len(c.Flows))
	dataSegs := make([]int, len(c.Flows))
	acks := make([]int, len(c.Flows))
	delayed := 0
	for k, f := range c.Frames {
		d := decodeFrame(t, k, f)
		fl := c.Flows[f.Flow]
		tcp := d.tcp
		if d.src == fl.Local {
			if d.plen > 0 {
				dataSegs[f.Flow]++
				inFlight[f.Flow]++
				lastData[f.Flow] = pending{end: tcp.Seq + uint32(d.plen), ts: f.TS}
			}
			continue
		}
		if d.plen > 0 || tcp.SYN || tcp.FIN || !tcp.ACK {
			continue
		}
		acks[f.Flow]++
		if inFlight[f.Flow] == 0 {
			continue
		}
		if inFlight[f.Flow] == 1 && tcp.Ack == lastData[f.Flow].end && fl.Kind == ReqResp {
			// A pure ACK of a lone request: the server did not answer within the delayed-ACK
			// timeout (else the ACK rides on the response), so it comes 40 ms late.
			delayed++
			if dt := time.Duration(f.TS - lastData[f.Flow].ts); dt < 40*time.Millisecond+fl.PathRTT {
				t.Errorf("frame %d: lone request acked after %v, path RTT %v: not delayed", k, dt, fl.PathRTT)
			}
		}
		inFlight[f.Flow] = 0
	}
	if delayed == 0 {
		t.Error("no delayed ACK of a lone request")
	}
	for k, fl := range c.Flows {
		if fl.Kind != BulkSend {
			continue
		}
		// One ACK per two full segments, plus the odd delayed one.
		if r := float64(acks[k]) / float64(dataSegs[k]); r < 0.45 || r > 0.6 {
			t.Errorf("bulk flow %v: %d ACKs for %d segments", fl.Remote, acks[k], dataSegs[k])
		}
	}
}

// TestTSecrEchoesLeftEdge checks RFC 7323 on the local receiver of a loss-free download: an
// ACK echoes the TSval of the segment that started at the previously acknowledged sequence
// number (the one that advanced the left edge), not the latest one when it covers two.
func TestTSecrEchoesLeftEdge(t *testing.T) {
	c := lossFree()
	tsvalAt := make([]map[uint32]uint32, len(c.Flows)) // incoming seq -> TSval
	lastAck := make([]uint32, len(c.Flows))
	checked := 0
	for k, f := range c.Frames {
		fl := c.Flows[f.Flow]
		if fl.Kind != BulkRecv || !fl.Timestamps {
			continue
		}
		d := decodeFrame(t, k, f)
		var tsval, tsecr uint32
		for _, o := range d.tcp.Options {
			if o.OptionType == layers.TCPOptionKindTimestamps {
				tsval, tsecr = binary.BigEndian.Uint32(o.OptionData), binary.BigEndian.Uint32(o.OptionData[4:])
			}
		}
		if tsvalAt[f.Flow] == nil {
			tsvalAt[f.Flow] = map[uint32]uint32{}
		}
		if d.src == fl.Remote {
			if d.plen > 0 {
				tsvalAt[f.Flow][d.tcp.Seq] = tsval
			}
			continue
		}
		if d.plen == 0 && !d.tcp.SYN && !d.tcp.FIN && d.tcp.ACK && d.tcp.Ack != lastAck[f.Flow] {
			if want, ok := tsvalAt[f.Flow][lastAck[f.Flow]]; ok {
				checked++
				if tsecr != want {
					t.Fatalf("frame %d: TSecr %d, want %d (TSval of the segment at the left edge)", k, tsecr, want)
				}
			}
		}
		if d.tcp.ACK {
			lastAck[f.Flow] = d.tcp.Ack
		}
	}
	if checked < 100 {
		t.Fatalf("only %d ACKs checked", checked)
	}
}
