package source

import (
	"errors"
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
			frame := r.mem[start:end:end]
			if ho := &s.handing; ho.r != nil {
				if ts > ho.bound+cutGuard {
					// The new ring holds this frame and all after it.
					s.handOver()
					r = s.cur
					continue
				}
				if ts >= ho.bindStart {
					ho.seen.add(fingerprint(frame, wire, ifindex)) // the new ring may hold it too
				}
			} else if s.seen != nil {
				if ts > s.checkUntil {
					s.seen = nil // past every frame the old ring could have held
				} else if ts < s.bindStart || s.seen.take(fingerprint(frame, wire, ifindex)) || s.seen.full && ts < s.skipBefore {
					continue // read from the old ring already
				}
			}
			s.frameIf = ifindex
			return frame, ts, wire, nil
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
