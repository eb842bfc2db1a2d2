package source

import (
	"encoding/binary"
	"math/bits"
)

// The hand-over between two rings (afpacket_resize_linux.go) reads every
// frame once. From the moment the new ring is bound, the kernel delivers
// each frame to both rings, one after the other, and stamps each copy with
// its own time (a frame the driver did not stamp is stamped as it reaches
// each socket): the two copies of one frame differ by the time between the
// two deliveries, a few hundred nanoseconds, and frames from two CPUs
// interleave differently in the two rings. So no instant tells every frame
// read from the old ring from every frame to read in the new one: a frame
// stamped just before the cut in the new ring and just after it in the old
// one was lost, one stamped the other way round read twice (now and then
// at a few hundred thousand frames/s from two CPUs). The reader therefore
// keeps the fingerprint of each frame it reads from the old ring from the
// start of the new ring's bind on, reads the old ring a little past the
// bind (cutGuard), and skips in the new ring the frames stamped before the
// bind began (the old ring gave them) and exactly those whose fingerprint
// it kept.

// cutGuard is how far past the new ring's bind the old ring is read, and
// how far past the last frame read from it the new ring is checked: much
// more than the gap between a frame's two deliveries.
const cutGuard = int64(1e6) // 1 ms

// overlapSlots bounds the fingerprints kept during one hand-over: the
// frames of the bind and cutGuard, 16384 of them: 13 ms at 1.25 M frames/s.
// A hand-over that needs more (a bind stalled for longer) keeps what fits
// and skips the rest in the new ring by their time, as a cut does.
const overlapSlots = 1 << 15 // twice as many slots: at most half full

// overlap is a multiset of frame fingerprints (open addressing, linear
// probing); allocated by the goroutine that opens the new ring, so that
// the reader never allocates.
type overlap struct {
	slots [overlapSlots]uint64 // fingerprint; 0: empty
	count [overlapSlots]uint32 // copies of it kept
	n     int                  // fingerprints kept, at most overlapSlots/2
	full  bool                 // one did not fit
}

// fingerprint hashes a frame's captured bytes, length on the wire and
// interface: the two copies of one frame are byte for byte the same, and
// the same bytes seen on two interfaces are two frames. Never 0.
func fingerprint(data []byte, wire int, ifindex int32) uint64 {
	h := uint64(wire)*0x9e3779b97f4a7c15 ^ uint64(len(data)) ^ uint64(uint32(ifindex))<<32
	for len(data) >= 8 {
		h = mix(h ^ binary.LittleEndian.Uint64(data))
		data = data[8:]
	}
	var tail [8]byte
	copy(tail[:], data)
	return mix(h^binary.LittleEndian.Uint64(tail[:])) | 1
}

func mix(x uint64) uint64 {
	hi, lo := bits.Mul64(x, 0xe7037ed1a0b428db)
	return hi ^ lo
}

// add keeps one more copy of fp.
func (o *overlap) add(fp uint64) {
	for i := fp & (overlapSlots - 1); ; i = (i + 1) & (overlapSlots - 1) {
		switch o.slots[i] {
		case fp:
			o.count[i]++
			return
		case 0:
			if o.n == overlapSlots/2 {
				o.full = true
				return
			}
			o.slots[i], o.count[i] = fp, 1
			o.n++
			return
		}
	}
}

// take reports whether a copy of fp is kept, and forgets it. Emptied slots
// keep their fingerprint (count 0), so probe chains stay whole.
func (o *overlap) take(fp uint64) bool {
	for i := fp & (overlapSlots - 1); o.slots[i] != 0; i = (i + 1) & (overlapSlots - 1) {
		if o.slots[i] == fp {
			if o.count[i] == 0 {
				return false
			}
			o.count[i]--
			return true
		}
	}
	return false
}
