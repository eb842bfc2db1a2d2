package source

import "sync"

// Fanout is a group of afpacket sockets on one interface among which the
// kernel spreads the frames (PACKET_FANOUT), each frame to one member
// picked by filter.FanoutHash, which keeps both directions of every
// connection, tunnelled or not, on one member: the capture workers of one
// instance. Open the members one after the other, each with the same
// Fanout in Options.Fanout: they join in that order, and the kernel gives a
// frame to member hash % members in join order, so members opened again
// in the same order (after the interface went away) see the connections
// they saw before.
//
// A member's socket rejects every frame until its filter is set, so it is
// opened without Options.Filter, and the caller sets the filter of every
// member with SetFilter once all have joined: no frame reaches a member
// while the group is smaller than it will be (the hash would send the
// connection elsewhere once the group is complete). A member's ring has a
// fixed size, Options.RingSize, else FanoutRingSize: the ring sized by
// need grows by opening a second socket, which would join the group and
// move connections between members. A Fanout serves one set of opens; a
// group reopened needs a new one.
type Fanout struct {
	members int

	mu     sync.Mutex
	id     int // the kernel's group ID, once the first member made the group
	joined int
}

// NewFanout makes a group for members sockets.
func NewFanout(members int) *Fanout { return &Fanout{members: max(members, 1)} }

// Members is the number of sockets the group is made for.
func (f *Fanout) Members() int { return f.members }

// FanoutRingSize is the fixed ring of each of members workers when no size
// is configured: the most a single ring sized by need grows to, divided
// among them, but never less than a single ring starts with.
func FanoutRingSize(members int) int {
	return max(DefaultRingSize/max(members, 1), InitialRingSize)
}
