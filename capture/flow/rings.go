package flow

import "unsafe"

// A flow's memory grows with what it holds. Its rings start small, inside
// the Flow: enough for a handshake and a request/response exchange, whose
// rings hold one or two entries each. They come in two groups, which grow
// apart:
//
//   - the flight: the entries of sent data awaiting an ACK and the TSvals
//     awaiting an echo. A flow with more segments in flight than the small
//     ring holds (a bulk transfer) moves them to a full-size block
//     (flightRings, 2 KiB) and from then on times exactly as a flow always
//     has with those sizes: every ACK of a flight is timed, decimated
//     entries interpolate.
//   - the recent frames: the fingerprints of our recent segments and of
//     the peer's (duplicates, health.go) and the RTT sample reservoir. A
//     flow that would have to forget a fingerprint young enough to match,
//     or that takes more samples in a reporting interval than the small
//     reservoir holds (a busy keep-alive connection), moves them to a
//     block of their own (recentRings, 160 bytes).
//
// A flow moves a group back into itself when it fits again and the flow has
// been idle for the duplicate windows (Sweep), so a connection that was
// busy once does not keep a block for life. Whatever the rings in use, a
// flow keeps exactly the entries a full-size ring would: a small ring grows
// before it would let one go (TestRingsGrowWithWhatTheyHold).
//
// Each group's pool is bounded (TableConfig.MaxFlights, MaxRecents), so memory is bounded
// by the configuration whatever the traffic. With a pool empty, a flow keeps
// its small rings and works within them as a flow does within full-size
// rings, only coarser: its segment entries decimate sooner, the oldest
// TSval or fingerprint gives way to a newer one, the reservoir keeps a
// smaller uniform subset; Counters.RingsDenied counts each time.
//
// A block is found from its flow by an offset from the flow's own address
// (Flow.flightOff, recentOff, in 8-byte words): the flows and both pools
// are one allocation (makeRegion), so that offset is pointer arithmetic
// inside one object, stays pointer-free (the slab is memory the garbage
// collector does not scan), and needs nothing but the flow to follow. A
// Flow with blocks must therefore never be copied (noCopy).

// Sizes of the small rings. A handshake and a request/response exchange
// need one or two entries of each (the SYN is acknowledged before the
// request is sent); two requests in flight fit too.
const (
	smallSegs   = 2
	smallTSvals = 2
	smallDups   = 2
	smallInDups = 2
	smallRes    = 4
)

// smallRings are a flow's rings while they fit, inside the Flow.
type smallRings struct {
	segs   [smallSegs]segment
	tsvals [smallTSvals]tsEntry
	dups   [smallDups]dupEntry
	inDups [smallInDups]dupEntry
	res    [smallRes]uint32
}

// flightRings are a flow's flight at full size, a block of the table's
// flight pool.
type flightRings struct {
	segs   [maxOutstanding]segment
	tsvals [maxTSvals]tsEntry
}

// recentRings are a flow's recent frames and samples at full size, a block
// of the table's recent pool.
type recentRings struct {
	dups   [dupRing]dupEntry
	inDups [dupInRing]dupEntry
	res    [ReservoirSize]uint32
}

// FlightBytes and RecentBytes are the memory of a full-size block of each
// group: what a flow with a large flight, or a busy one, costs on top of
// FlowBytes.
const (
	FlightBytes = int(unsafe.Sizeof(flightRings{}))
	RecentBytes = int(unsafe.Sizeof(recentRings{}))
)

// Every ring's size is a power of two no larger than 256, so that uint8
// heads and counts wrap in step with the ring (see Flow.seg).
var _ = [1]struct{}{}[smallSegs&(smallSegs-1)|smallTSvals&(smallTSvals-1)|smallDups&(smallDups-1)|smallInDups&(smallInDups-1)|
	maxOutstanding&(maxOutstanding-1)|maxTSvals&(maxTSvals-1)|dupRing&(dupRing-1)|dupInRing&(dupInRing-1)]

// offsetTo is the offset of block b from flow f, in 8-byte words (both are
// 8-byte aligned in one allocation: makeRegion).
func offsetTo[B any](f *Flow, b *B) int32 {
	return int32((int64(uintptr(unsafe.Pointer(b))) - int64(uintptr(unsafe.Pointer(f)))) / 8)
}

// flight returns the flow's full-size flight block, nil while it has the
// small rings; recent the same for the recent frames.
func (f *Flow) flight() *flightRings {
	if f.flightOff == 0 {
		return nil
	}
	return (*flightRings)(unsafe.Add(unsafe.Pointer(f), int(f.flightOff)*8))
}

func (f *Flow) recent() *recentRings {
	if f.recentOff == 0 {
		return nil
	}
	return (*recentRings)(unsafe.Add(unsafe.Pointer(f), int(f.recentOff)*8))
}

// The rings in use, as slices whose length is the ring's size.
func (f *Flow) segRing() []segment {
	if b := f.flight(); b != nil {
		return b.segs[:]
	}
	return f.small.segs[:]
}

func (f *Flow) tsRing() []tsEntry {
	if b := f.flight(); b != nil {
		return b.tsvals[:]
	}
	return f.small.tsvals[:]
}

func (f *Flow) dupsOut() []dupEntry {
	if b := f.recent(); b != nil {
		return b.dups[:]
	}
	return f.small.dups[:]
}

func (f *Flow) dupsIn() []dupEntry {
	if b := f.recent(); b != nil {
		return b.inDups[:]
	}
	return f.small.inDups[:]
}

func (f *Flow) resRing() []uint32 {
	if b := f.recent(); b != nil {
		return b.res[:]
	}
	return f.small.res[:]
}

// growFlight moves the flow's flight to a full-size block, keeping every
// entry in order, and reports whether it could (false: it has one
// already, or the pool is empty).
func (f *Flow) growFlight(c *sampleCounters) bool {
	if f.flightOff != 0 {
		return false
	}
	b := c.flights.get()
	if b == nil {
		c.ringsDenied++
		return false
	}
	*b = flightRings{}
	s := &f.small
	for k := range f.segCount {
		b.segs[k] = s.segs[(f.segHead+k)%smallSegs]
	}
	for k := range f.tsCount {
		b.tsvals[k] = s.tsvals[(f.tsHead+k)%smallTSvals]
	}
	f.segHead, f.tsHead = 0, 0
	s.segs, s.tsvals = [smallSegs]segment{}, [smallTSvals]tsEntry{}
	f.flightOff = offsetTo(f, b)
	return true
}

// growRecent moves the flow's fingerprints and reservoir to a full-size
// block, keeping every entry in order, and reports whether it could.
func (f *Flow) growRecent(c *sampleCounters) bool {
	if f.recentOff != 0 {
		return false
	}
	b := c.recents.get()
	if b == nil {
		c.ringsDenied++
		return false
	}
	*b = recentRings{}
	s, h := &f.small, &f.h
	// The fingerprint rings are in recording order from their next slot;
	// the peer bits follow their entries.
	peer := h.dupPeer
	h.dupPeer = 0
	for k := range uint8(smallDups) {
		i := (h.dupNext + k) % smallDups
		b.dups[k] = s.dups[i]
		if peer&(1<<i) != 0 {
			h.dupPeer |= 1 << k
		}
	}
	for k := range uint8(smallInDups) {
		b.inDups[k] = s.inDups[(h.inNext+k)%smallInDups]
	}
	// The samples so far are the interval's reservoir: it can use the
	// whole block only if the small one was never full (see resCap).
	copy(b.res[:], s.res[:])
	if h.resN <= smallRes {
		h.resCap = ReservoirSize
	}
	h.dupNext, h.inNext = smallDups, smallInDups
	s.dups, s.inDups, s.res = [smallDups]dupEntry{}, [smallInDups]dupEntry{}, [smallRes]uint32{}
	f.recentOff = offsetTo(f, b)
	return true
}

// shrink moves back into the flow each group of rings that fits the small
// ones without losing anything a full-size ring would still use, as of
// capture time now, and returns its block to its pool: the flight when it
// fits, the recent frames when this interval's samples fit; both only
// once the flow has been idle for the duplicate windows (no fingerprint
// can match any more, and a connection that pauses briefly does not move
// back and forth).
func (f *Flow) shrink(now int64, c *sampleCounters) {
	if now-f.lastSeen <= dupIdentWindow {
		return
	}
	if b := f.flight(); b != nil && f.segCount <= smallSegs && f.tsCount <= smallTSvals {
		s := &f.small
		for k := range f.segCount {
			s.segs[k] = b.segs[(f.segHead+k)%maxOutstanding]
		}
		for k := range f.tsCount {
			s.tsvals[k] = b.tsvals[(f.tsHead+k)%maxTSvals]
		}
		f.segHead, f.tsHead = 0, 0
		f.flightOff = 0
		c.flights.put(b)
	}
	if b := f.recent(); b != nil && f.h.resN <= smallRes {
		s, h := &f.small, &f.h
		copy(s.res[:], b.res[:h.resN])
		h.resCap = min(h.resCap, smallRes)
		h.dupNext, h.inNext, h.dupPeer = 0, 0, 0
		s.dups, s.inDups = [smallDups]dupEntry{}, [smallInDups]dupEntry{}
		f.recentOff = 0
		c.recents.put(b)
	}
}

// release returns the flow's blocks to their pools (it leaves the table).
func (f *Flow) release(c *sampleCounters) {
	if b := f.flight(); b != nil {
		c.flights.put(b)
		f.flightOff = 0
	}
	if b := f.recent(); b != nil {
		c.recents.put(b)
		f.recentOff = 0
	}
}

// pool hands out a table's full-size blocks of one group, at most
// len(blocks), the lowest unused first so that the resident pages are the
// ones in use.
type pool[B any] struct {
	blocks []B
	free   []int32 // indexes returned, a stack with room for them all: put never allocates
	used   int32   // high-water mark
	inUse  int
}

func newPool[B any](blocks []B) pool[B] {
	return pool[B]{blocks: blocks, free: make([]int32, 0, len(blocks))}
}

func (p *pool[B]) get() *B {
	switch {
	case len(p.free) > 0:
		i := p.free[len(p.free)-1]
		p.free = p.free[:len(p.free)-1]
		p.inUse++
		return &p.blocks[i]
	case int(p.used) < len(p.blocks):
		p.used++
		p.inUse++
		return &p.blocks[p.used-1]
	}
	return nil
}

func (p *pool[B]) put(b *B) {
	i := (uintptr(unsafe.Pointer(b)) - uintptr(unsafe.Pointer(&p.blocks[0]))) / unsafe.Sizeof(*b)
	p.free = append(p.free, int32(i))
	p.inUse--
}

// noCopy makes go vet report copies of the struct that holds it (its
// copylocks check): a Flow with blocks finds them by an offset from its
// own address, which a copy does not share.
type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}
