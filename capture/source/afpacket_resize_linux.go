package source

import (
	"fmt"
	"time"

	"golang.org/x/net/bpf"
)

// Resizing the ring: watch decides, openResized opens the new ring beside
// the reader, opened and handOver switch the reader to it without losing or
// (almost) repeating a frame. The ring sizes themselves are ringsize.go's.

// watch runs when the reader takes a block: it tells the sizer how far
// behind the reader is and how fast the block filled, and starts a resize
// when the sizer asks for one.
func (s *afpacket) watch(r *ring) {
	now := time.Now()
	switch {
	case s.opening != nil:
		select {
		case res := <-s.opening:
			s.opening = nil
			s.opened(res, now)
		default:
		}
		return
	case s.handing.r != nil:
		if now.After(s.handoverBy.Add(time.Second)) {
			// Blocks keep coming and none is newer than the bind: the
			// wall clock stepped back. Switch now; a few frames may be
			// seen twice.
			s.handOver()
		}
		return
	}
	bl := r.backlog()
	size := s.sizer.observe(now, bl, r.numBlocks, r.fillRate(), s.pressed.Swap(false))
	if size == s.sizer.size {
		return
	}
	// The new ring is opened beside the reader, which keeps emptying the
	// old one meanwhile: the kernel may take tens of milliseconds to find
	// and zero the pages of a large ring, more than a small ring holds at
	// the rates that make it grow.
	s.mu.Lock()
	prog, gen := s.prog, s.progGen
	s.mu.Unlock()
	s.opening = make(chan openedRing, 1)
	go func() { s.opening <- s.openResized(size, prog, gen) }()
}

// openResized opens the ring of a resize, on a goroutine of its own, and
// publishes it as s.next once bound. A panic is returned as the resize's
// error: the reader keeps the ring it has, and nothing escapes to crash
// the process.
func (s *afpacket) openResized(size int, prog []bpf.RawInstruction, gen int) (res openedRing) {
	res.size = size
	defer func() {
		if p := recover(); p != nil {
			res.r, res.err = nil, fmt.Errorf("capture: %q: opening a %d-byte ring: panic: %v", s.ifname, size, p)
		}
	}()
	r, err := s.openRing(size, func(n *ring) error { return s.attachTo(n.fd, prog) })
	if err != nil {
		res.err = err
		return res
	}
	res.bound = time.Now().UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.progGen != gen {
		err = s.attachTo(r.fd, s.prog) // SetFilter ran meanwhile
	}
	if err != nil {
		r.close()
		res.err = err
		return res
	}
	// From here on the new ring's counters count (see counting): the old
	// ring's, read now, count until it was bound. Frames the old ring
	// receives or drops from now on are in the new one too, unless that
	// drops them, which its counters tell.
	s.readStats(s.cur)
	s.next, res.r = r, r
	return res
}

// openedRing is what the goroutine that opens a resized ring hands back.
type openedRing struct {
	r     *ring
	size  int   // what the sizer asked for
	bound int64 // when the ring was bound, on the kernel's timestamp clock
	err   error
}

// opened starts the hand-over to a resized ring, or gives up the resize.
func (s *afpacket) opened(res openedRing, now time.Time) {
	if res.err != nil {
		s.mu.Lock()
		s.total.RingResizeFailures++
		s.mu.Unlock()
		s.sizer.failed(now) // keep the ring there is; ask again later
		return
	}
	// Every frame the kernel timestamps from the bind on is in both rings.
	// A frame timestamped earlier may be in the new ring too but is surely
	// in the old one, so the old ring is read up to the first frame past
	// that instant, and the new ring from there on. A retire timer hands
	// over a block at most blockRetire after its first frame, so two of
	// them bound the wait when traffic stops.
	s.handing = res
	s.handoverBy = now.Add(2*blockRetire + 10*time.Millisecond)
}

// handOver makes the new ring current and closes the old one. The old
// ring's frames not yet read are all newer than its bind, so the new ring
// has them; frames in the new ring from before the bind were read
// from the old one and are skipped. Frames the kernel timestamped out of
// order around the bind can be seen twice or not at all: the engine
// counts copies as duplicates.
func (s *afpacket) handOver() {
	s.mu.Lock()
	old := s.cur
	s.cur, s.next = s.next, nil
	s.total.RingSize = s.cur.size()
	s.total.RingResizes++
	s.mu.Unlock()
	// The sizer records the size it asked for, which ringGeometry may
	// round, so that it does not ask for that size again.
	size := s.handing.size
	s.skipBefore = s.handing.bound
	s.handing = openedRing{}
	// Closing a packet socket waits for an RCU grace period (tens of
	// milliseconds under load): the reader does not wait for it.
	s.closing.Add(1)
	go func() { defer s.closing.Done(); old.close() }()
	s.sizer.resized(size, time.Now())
}
