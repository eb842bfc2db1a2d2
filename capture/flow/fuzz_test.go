package flow

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/gometro/go-metro/capture/packet"
)

// FuzzTable feeds arbitrary segment sequences (any flags, sequence and ACK
// numbers, SACK blocks, timestamps, times going backwards) to a small table
// and checks the invariants nothing may break: no panic, bounded state,
// samples that are positive and consistent estimators.
//
// Each 24-byte record of the input is one segment:
// [dir|port] [flags] [len:2] [seq:4] [ack:4] [tsval:4] [tsecr:4] [dt:2] [sack:2].
func FuzzTable(f *testing.F) {
	rec := func(out bool, port byte, flags uint8, n uint16, seq, ack, tsval, tsecr uint32, dtMS uint16, sack uint16) []byte {
		b := make([]byte, 24)
		b[0] = port & 0x7f
		if out {
			b[0] |= 0x80
		}
		b[1] = flags
		binary.BigEndian.PutUint16(b[2:], n)
		binary.BigEndian.PutUint32(b[4:], seq)
		binary.BigEndian.PutUint32(b[8:], ack)
		binary.BigEndian.PutUint32(b[12:], tsval)
		binary.BigEndian.PutUint32(b[16:], tsecr)
		binary.BigEndian.PutUint16(b[20:], dtMS)
		binary.BigEndian.PutUint16(b[22:], sack)
		return b
	}
	cat := func(rs ...[]byte) []byte {
		var out []byte
		for _, r := range rs {
			out = append(out, r...)
		}
		return out
	}
	f.Add(cat(
		rec(true, 1, S, 0, 100, 0, 1, 0, 0, 0),
		rec(false, 1, SA, 0, 900, 101, 7, 1, 20, 0),
		rec(true, 1, PA, 500, 101, 901, 21, 7, 1, 0),
		rec(true, 1, PA, 500, 601, 901, 21, 7, 1, 0),
		rec(false, 1, A, 0, 901, 601, 30, 21, 20, 200),
		rec(true, 1, PA, 500, 101, 901, 60, 30, 200, 0),
		rec(false, 1, A, 0, 901, 1101, 90, 60, 20, 0),
	))
	f.Add(cat(
		rec(true, 2, PA, 1448, 0xFFFFFF00, 1, 5, 1, 0, 0),
		rec(true, 2, PA, 1448, 0xFFFFFF00+1448-0x100000000, 1, 5, 1, 0, 0),
		rec(false, 2, A, 0, 1, 0xFFFFFF00+2896-0x100000000, 9, 5, 30, 0),
		rec(false, 2, R, 0, 1, 0, 0, 0, 1, 0),
	))
	f.Fuzz(func(t *testing.T, data []byte) {
		locals := localSet{v4(localIP): true}
		tb := NewTable(TableConfig{MaxFlows: 8, IdleTTL: ms(500), ExpTTL: ms(100)}, locals, nil)
		ts := int64(1e18)
		for len(data) >= 24 {
			r := data[:24]
			data = data[24:]
			p := packet.Packet{
				Flags:      r[1],
				PayloadLen: uint32(binary.BigEndian.Uint16(r[2:])),
				Seq:        binary.BigEndian.Uint32(r[4:]),
				Ack:        binary.BigEndian.Uint32(r[8:]),
				TSval:      binary.BigEndian.Uint32(r[12:]),
				TSecr:      binary.BigEndian.Uint32(r[16:]),
			}
			p.HasTimestamps = p.TSval != 0
			if sk := binary.BigEndian.Uint16(r[22:]); sk != 0 {
				p.NumSACK = 1
				p.SACK[0] = packet.SACKBlock{Left: p.Ack + uint32(sk&0xff)*100, Right: p.Ack + uint32(sk>>8)*100}
			}
			port := uint16(r[0] & 0x7f)
			local, remote := v4(localIP), v4(remoteIP)
			if r[0]&0x80 != 0 {
				p.Src, p.Dst, p.SrcPort, p.DstPort = local, remote, 40000+port, 443
			} else {
				p.Src, p.Dst, p.SrcPort, p.DstPort = remote, local, 443, 40000+port
			}
			dt := int64(int16(binary.BigEndian.Uint16(r[20:]))) // may go backwards
			ts += dt * 1e6
			tb.Process(&p, ts)
			if dt%7 == 0 {
				tb.Sweep(ts)
			}
			c := tb.Counters()
			if c.Flows > 8 || c.Flows < 0 {
				t.Fatalf("%d flows in a table of 8", c.Flows)
			}
			for i := int32(0); i < tb.used; i++ {
				fl := &tb.flows[i]
				if fl.state&inUse == 0 {
					continue
				}
				if fl.segCount > maxOutstanding || fl.tsCount > maxTSvals {
					t.Fatalf("flow state grew: %d segments, %d tsvals", fl.segCount, fl.tsCount)
				}
				for _, e := range []*struct {
					n                            uint64
					min, max, last, srtt, rttvar int64
				}{
					{fl.seq.Samples, fl.seq.Min, fl.seq.Max, fl.seq.Last, fl.seq.SRTT, fl.seq.RTTVAR},
					{fl.echo.Samples, fl.echo.Min, fl.echo.Max, fl.echo.Last, fl.echo.SRTT, fl.echo.RTTVAR},
				} {
					if e.n == 0 {
						continue
					}
					// The smoothed RTT follows the samples' estimates, the
					// figures their ceilings (rtt.Estimator.AddBounded): an
					// estimate is at most its ceiling, or one TSval tick
					// above it (sampleTSecr).
					if e.min <= 0 || e.min > e.last || e.last > e.max || e.srtt <= 0 || e.srtt > e.max+int64(time.Millisecond) || e.rttvar < 0 {
						t.Fatalf("inconsistent estimator %+v", *e)
					}
				}
			}
		}
		// Every live flow is still reachable through the index.
		for i := int32(0); i < tb.used; i++ {
			if fl := &tb.flows[i]; fl.state&inUse != 0 {
				k := fl.key
				if got := tb.lookup(&k, &packet.Packet{}, ts, true); got != fl {
					t.Fatalf("flow %d unreachable through the index", i)
				}
			}
		}
	})
}
