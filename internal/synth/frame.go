package synth

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// Snaplen of the written capture: enough for Ethernet + IPv6 + TCP with 40 bytes of options.
const Snaplen = 128

var (
	localMAC   = [6]byte{0x02, 0, 0, 0, 0, 0x01}
	gatewayMAC = [6]byte{0x02, 0, 0, 0, 0, 0xfe}
)

// tcpOptLen is the length of the TCP options of g, laid out as Linux does.
func tcpOptLen(c *conn, g *segment) int {
	if g.flags&flSYN != 0 {
		switch {
		case c.ts:
			return 20 // MSS, SACK_PERM|NOP NOP, TS, NOP, WS
		case c.sack:
			return 12 // MSS, NOP NOP SACK_PERM, NOP WS
		default:
			return 8 // MSS, NOP WS
		}
	}
	n := 0
	if c.ts {
		n = 12 // NOP NOP TS
	}
	if g.nsack > 0 {
		n += 4 + 8*int(g.nsack) // NOP NOP SACK
	}
	return n
}

func (s *sim) wireLen(c *conn, g *segment) int {
	ip := 20
	if c.v6 {
		ip = 40
	}
	return 14 + ip + 20 + tcpOptLen(c, g) + int(g.length)
}

// emit appends the headers of g, as captured on the local host now, to the capture buffer.
// Payload bytes are not stored; checksums are computed as if the payload were zeros.
func (s *sim) emit(c *conn, out bool, g *segment) {
	ipLen := 20
	if c.v6 {
		ipLen = 40
	}
	optLen := tcpOptLen(c, g)
	tcpLen := 20 + optLen
	hlen := 14 + ipLen + tcpLen
	wire := hlen + int(g.length)
	caplen := hlen
	if !out && wire < 60 {
		// Incoming short frames carry the Ethernet padding the sender's NIC added.
		wire, caplen = 60, 60
	}
	off := len(s.buf)
	if cap(s.buf)-off < caplen {
		s.growBuf(caplen)
	}
	s.buf = s.buf[:off+caplen]
	b := s.buf[off : off+caplen : off+caplen]
	clear(b)

	dir, from, to := 0, &c.ep[0], &c.ep[1]
	src, dst := c.local, c.remote
	if !out {
		dir, from, to = 1, &c.ep[1], &c.ep[0]
		src, dst = c.remote, c.local
	}
	if out {
		copy(b[0:6], gatewayMAC[:])
		copy(b[6:12], localMAC[:])
	} else {
		copy(b[0:6], localMAC[:])
		copy(b[6:12], gatewayMAC[:])
	}
	ttl := byte(64)
	if !out {
		ttl = c.srv.ttl
	}
	c.ipID[dir]++
	ip := b[14:]
	var sum uint32
	if c.v6 {
		binary.BigEndian.PutUint16(b[12:], 0x86dd)
		binary.BigEndian.PutUint32(ip[0:], 6<<28|c.flowLabel)
		binary.BigEndian.PutUint16(ip[4:], uint16(tcpLen+int(g.length)))
		ip[6], ip[7] = 6, ttl
		s16, d16 := src.Addr().As16(), dst.Addr().As16()
		copy(ip[8:24], s16[:])
		copy(ip[24:40], d16[:])
		sum = onesSum(ip[8:40], 0)
	} else {
		binary.BigEndian.PutUint16(b[12:], 0x0800)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+tcpLen+int(g.length)))
		binary.BigEndian.PutUint16(ip[4:], c.ipID[dir])
		binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
		ip[8], ip[9] = ttl, 6
		s4, d4 := src.Addr().As4(), dst.Addr().As4()
		copy(ip[12:16], s4[:])
		copy(ip[16:20], d4[:])
		binary.BigEndian.PutUint16(ip[10:], ^fold(onesSum(ip[:20], 0)))
		sum = onesSum(ip[12:20], 0)
	}
	sum += 6 + uint32(tcpLen) + uint32(g.length)

	t := b[14+ipLen:]
	binary.BigEndian.PutUint16(t[0:], src.Port())
	binary.BigEndian.PutUint16(t[2:], dst.Port())
	binary.BigEndian.PutUint32(t[4:], uint32(int64(from.iss)+1+g.off))
	if g.flags&flACK != 0 {
		binary.BigEndian.PutUint32(t[8:], uint32(int64(to.iss)+1+g.ack))
	}
	t[12] = byte(tcpLen/4) << 4
	t[13] = g.flags
	win := g.win
	if g.flags&flSYN == 0 {
		win >>= wscale
	}
	binary.BigEndian.PutUint16(t[14:], uint16(win))
	o := t[20:tcpLen]
	if g.flags&flSYN != 0 {
		mss := from.mss
		if c.ts {
			mss += 12
		}
		o[0], o[1] = 2, 4
		binary.BigEndian.PutUint16(o[2:], uint16(mss))
		switch {
		case c.ts:
			if c.sack {
				o[4], o[5] = 4, 2
			} else {
				o[4], o[5] = 1, 1
			}
			putTS(o[6:], g)
			o[16], o[17], o[18], o[19] = 1, 3, 3, wscale
		case c.sack:
			o[4], o[5], o[6], o[7] = 1, 1, 4, 2
			o[8], o[9], o[10], o[11] = 1, 3, 3, wscale
		default:
			o[4], o[5], o[6], o[7] = 1, 3, 3, wscale
		}
	} else {
		if c.ts {
			o[0], o[1] = 1, 1
			putTS(o[2:], g)
			o = o[12:]
		}
		if g.nsack > 0 {
			o[0], o[1], o[2], o[3] = 1, 1, 5, byte(2+8*int(g.nsack))
			for k := range int(g.nsack) {
				binary.BigEndian.PutUint32(o[4+8*k:], uint32(int64(to.iss)+1+g.sack[k][0]))
				binary.BigEndian.PutUint32(o[8+8*k:], uint32(int64(to.iss)+1+g.sack[k][1]))
			}
		}
	}
	binary.BigEndian.PutUint16(t[16:], ^fold(onesSum(t[:tcpLen], sum)))

	c.truth.Frames++
	if c.truth.FirstTS == 0 {
		c.truth.FirstTS = s.now
	}
	c.truth.LastTS = s.now
	s.frames = append(s.frames, Frame{Data: b, TS: s.now, WireLen: int32(wire), Flow: c.id})
}

// growBuf moves the frame buffer to a larger one and points the frames at it; the estimate in
// setup makes this rare.
func (s *sim) growBuf(need int) {
	nb := make([]byte, len(s.buf), max(cap(s.buf)+cap(s.buf)/2, len(s.buf)+need, 1<<20))
	copy(nb, s.buf)
	off := 0
	for k := range s.frames {
		n := len(s.frames[k].Data)
		s.frames[k].Data = nb[off : off+n : off+n]
		off += n
	}
	s.buf = nb
}

func putTS(o []byte, g *segment) {
	o[0], o[1] = 8, 10
	binary.BigEndian.PutUint32(o[2:], g.tsval)
	binary.BigEndian.PutUint32(o[6:], g.tsecr)
}

// onesSum adds b as big-endian 16-bit words to sum (RFC 1071); b has even length here.
func onesSum(b []byte, sum uint32) uint32 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

func fold(sum uint32) uint16 {
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}

// WriteFile writes the capture to a new pcap file at path (see WritePcap).
func (c *Capture) WriteFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	if err := c.WritePcap(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	return nil
}

// WritePcap writes the capture as a pcap file with nanosecond timestamps, Ethernet link type
// and snaplen 128.
func (c *Capture) WritePcap(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	pw := pcapgo.NewWriterNanos(bw)
	if err := pw.WriteFileHeader(Snaplen, layers.LinkTypeEthernet); err != nil {
		return fmt.Errorf("synth: write pcap header: %w", err)
	}
	for k := range c.Frames {
		f := &c.Frames[k]
		ci := gopacket.CaptureInfo{
			Timestamp:     time.Unix(0, f.TS),
			CaptureLength: len(f.Data),
			Length:        int(f.WireLen),
		}
		if err := pw.WritePacket(ci, f.Data); err != nil {
			return fmt.Errorf("synth: write pcap frame %d: %w", k, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("synth: flush pcap: %w", err)
	}
	return nil
}
