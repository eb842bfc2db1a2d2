package source

import "time"

// The afpacket ring is sized by need. Every page of a ring is resident from
// the moment it is mapped (the kernel allocates and maps them all), so a
// ring sized for the worst burst costs its full size on every idle host.
// It starts at InitialRingSize and is replaced, up to DefaultRingSize, by a
// larger one as soon as
//
//   - at the rate the kernel fills blocks, the ring would hold less than
//     holdTarget of traffic: the size that holds it, rounded up to a power
//     of two (at 100k packets/s, 16 MiB), so the ring is large enough
//     before the reader is first kept off a CPU for long;
//   - or the reader falls a quarter of the ring's blocks behind, or the
//     kernel drops a frame: growFactor times larger.
//
// It is replaced by one half as large after shrinkAfter in which neither
// would have made the half grow again: the rate needed at most half of the
// half, and the reader was never behind by more than a sixteenth of the
// blocks (an eighth of the half's). Backlog is counted in blocks, not
// bytes: the kernel hands a block over when it is full or blockRetire after
// its first frame, so at light traffic a ring holds numBlocks × blockRetire
// of backlog however many bytes it has.
const (
	// InitialRingSize holds about 15,000 headers-only frames in 8 blocks:
	// 150 ms at 100k packets/s, 800 ms at light traffic.
	InitialRingSize = 4 << 20
	// holdTarget is how long the ring must be able to hold the traffic:
	// on a 2-core host saturated by the traffic itself, the reader was
	// seen kept off a CPU for up to about 160 ms (TestLoadNoKernelDrops).
	holdTarget  = 250 * time.Millisecond
	growFactor  = 4
	shrinkAfter = 10 * time.Minute
	// retryAfter spaces out resizes after one failed (the kernel could not
	// allocate the ring): the current ring keeps capturing meanwhile.
	retryAfter = time.Minute
)

// ringSizer decides the ring's size from how fast the kernel fills it and
// how far behind the reader is, each time the reader takes a block. It
// only decides; the afpacket source does the resizing and reports back
// with resized or failed.
type ringSizer struct {
	min, max   int
	size       int       // bytes of the ring in use
	since      time.Time // start of the current calm window
	peakBehind int       // the most blocks the reader was behind since then
	peakNeed   int       // the largest ring the fill rate needed since then
	retryAt    time.Time // no resize before, after a failed one
}

// newRingSizer sizes a ring that starts at start bytes, never shrinks below
// it and grows up to maxSize: start == maxSize fixes its size.
func newRingSizer(start, maxSize int, now time.Time) ringSizer {
	return ringSizer{min: start, max: maxSize, size: start, since: now}
}

// observe takes how many of the ring's blocks wait, handed over, past the
// one the reader just took, the rate in bytes per second at which the
// kernel filled that one (0: unknown), and whether the kernel dropped
// frames since the last call. It returns the size the ring should have:
// its current size, or the size of the ring to replace it with.
func (z *ringSizer) observe(now time.Time, behind, blocks int, rate float64, dropped bool) int {
	if now.Before(z.retryAt) {
		return z.size
	}
	need := int(min(rate*holdTarget.Seconds(), float64(z.max)))
	switch {
	case z.size >= z.max:
	case dropped || 4*behind >= blocks:
		return min(z.max, z.size*growFactor)
	case need > z.size:
		grown := z.size
		for grown < need {
			grown *= 2
		}
		return min(z.max, grown)
	}
	z.peakBehind, z.peakNeed = max(z.peakBehind, behind), max(z.peakNeed, need)
	if now.Sub(z.since) < shrinkAfter {
		return z.size
	}
	half := max(z.min, z.size/2)
	calm := 16*z.peakBehind <= blocks && 2*z.peakNeed <= half
	z.since, z.peakBehind, z.peakNeed = now, 0, 0
	if half < z.size && calm {
		return half
	}
	return z.size
}

// resized records that the ring now has size bytes.
func (z *ringSizer) resized(size int, now time.Time) {
	z.size, z.since, z.peakBehind, z.peakNeed = size, now, 0, 0
}

// failed records that a resize failed; the next waits for retryAfter.
func (z *ringSizer) failed(now time.Time) { z.retryAt = now.Add(retryAfter) }
