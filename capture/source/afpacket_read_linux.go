package source

import (
	"errors"
	"math"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The reader's steady path: frames of the current block, in place.

// Next returns the next frame from the ring. It blocks at most the poll
// timeout. The returned data points into the ring and stays valid until the
// next call.
func (s *afpacket) Next() ([]byte, int64, int, error) {
	r := s.cur
	if r == nil {
		return nil, 0, 0, ErrClosed
	}
	for {
		for r.remaining > 0 {
			h := (*unix.Tpacket3Hdr)(unsafe.Pointer(&r.mem[r.off]))
			start := r.off + int(h.Mac)
			end := start + int(h.Snaplen)
			ts := int64(h.Sec)*1e9 + int64(h.Nsec)
			wire := int(h.Len)
			ifindex := *(*int32)(unsafe.Pointer(&r.mem[r.off+sllIfindexOff]))
			skip := r.mem[r.off+sllPkttypeOff] == packetOutgoing &&
				*(*uint16)(unsafe.Pointer(&r.mem[r.off+sllHatypeOff])) == arphrdLoopback
			r.remaining--
			r.off += int(h.Next_offset)
			if skip {
				// Loopback frames are seen leaving and arriving; keep one.
				continue
			}
			if s.handing.r != nil && ts > s.handing.bound {
				// The new ring holds this frame and all after it.
				s.handOver()
				r = s.cur
				continue
			}
			if s.skipBefore != math.MinInt64 {
				if ts < s.skipBefore {
					continue // read from the old ring already
				}
				s.skipBefore = math.MinInt64 // a clock stepped back later must not hide frames
			}
			s.frameIf = ifindex
			return r.mem[start:end:end], ts, wire, nil
		}
		if r.held {
			r.release()
		}
		if r.blockReady() {
			r.take()
			s.watch(r)
			r = s.cur // watch may have switched rings
			continue
		}
		err := s.wait(r)
		if s.handing.r != nil && errors.Is(err, ErrTimeout) && !time.Now().Before(s.handoverBy) {
			// Nothing newer than the new ring's bind came through the
			// old one, and its retire timer would have handed over any
			// frame it holds: all it had was read, the rest is in the
			// new ring.
			s.handOver()
			r = s.cur
			continue
		}
		if err != nil {
			return nil, 0, 0, err
		}
	}
}
