// Package source delivers captured frames to the engine from a live
// interface (AF_PACKET TPACKET_V3 ring by default, libpcap behind the "pcap"
// build tag) or from a pcap/pcapng file, behind one small interface.
package source

import (
	"errors"
	"time"

	"github.com/gometro/go-metro/capture/packet"
	"golang.org/x/net/bpf"
)

// ErrTimeout is returned by Next when a live source had no frame within its
// poll timeout. It is not a failure: callers use the pause to do housekeeping.
var ErrTimeout = errors.New("capture: no packet within poll timeout")

// Source is a stream of captured frames.
type Source interface {
	// Next returns the next frame. data is only valid until the following
	// call (zero-copy sources reuse their buffers). ts is the capture time in
	// nanoseconds since the Unix epoch; wireLen is the frame's length on the
	// wire (data may be shorter: snaplen). Next returns ErrTimeout when a live
	// source is idle and io.EOF at the end of a file.
	Next() (data []byte, ts int64, wireLen int, err error)
	// LinkType is the framing of the data the latest Next returned. It is
	// fixed for live sources; in a pcapng file each interface has its own.
	LinkType() packet.LinkType
	// Interface identifies the interface the frame the latest Next returned
	// was captured on, where the source knows it: the interface index on a
	// live "any" capture (AF_PACKET's sll_ifindex), the interface's number
	// plus one in a pcapng file, the index of a Linux cooked v2 header;
	// else 0. One transmission captured on two interfaces ("any" seeing a
	// frame on a bridge and on its port, on both sides of a forwarding
	// hop; two files merged) differs only in it.
	Interface() int
	// SetFilter atomically replaces the kernel filter (nil: accept all).
	// File sources accept and ignore it (the engine filters in user space too).
	SetFilter(prog []bpf.RawInstruction) error
	// Stats returns cumulative kernel counters since the source was opened.
	Stats() (Stats, error)
	// Wake makes a Next that is waiting for a frame, or else the next one
	// that waits, return ErrTimeout at once. Any goroutine may call it. A
	// source that cannot be interrupted returns within unwakeableTimeout.
	Wake()
	// Close releases the socket or file. It is safe to call more than once.
	Close() error
}

// Stats are a live source's kernel counters, cumulative since Open.
type Stats struct {
	Received uint64 // frames the kernel handed to the capture
	Dropped  uint64 // frames the kernel dropped because the ring was full
	// RingSize is the bytes of kernel ring in use now (all resident);
	// the afpacket ring grows and shrinks with the traffic (ringsize.go).
	RingSize int
	// RingResizes counts the rings that replaced a smaller or larger one;
	// RingResizeFailures those the kernel could not set up (the ring in
	// use kept capturing).
	RingResizes, RingResizeFailures uint64
}

// Options configure a live capture.
type Options struct {
	Interface string // interface name, or "any"
	Snaplen   int    // bytes kept per frame (headers only)
	// WholeLen is the most a filter program returns for a frame it keeps
	// whole (DNS answers: filter.DNSSnaplen); 0 when it keeps none.
	// libpcap cuts every frame to its snapshot length, which is then the
	// larger of the two; an afpacket ring (TPACKET_V3) holds frames of any
	// length the program returns, up to its block size.
	WholeLen int
	// Filter installs the kernel filter before any frame can reach the
	// ring: OpenLive calls it once the socket exists and its link type is
	// known, before the socket is bound, and it calls attach with a program
	// (again with a coarser one if the kernel refuses it). An error fails
	// the open. nil accepts every frame, truncated to Snaplen.
	Filter      func(link packet.LinkType, attach func([]bpf.RawInstruction) error) error
	PollTimeout time.Duration // how long Next may block before ErrTimeout
	// RingSize fixes the bytes of kernel ring. 0 sizes the afpacket ring
	// by need instead, from InitialRingSize up to DefaultRingSize
	// (ringsize.go), and gives libpcap a DefaultRingSize buffer.
	RingSize int
	// Fanout makes the socket a member of a group among which the kernel
	// spreads the interface's frames (afpacket only; see Fanout). Filter
	// must be nil: the member rejects every frame until SetFilter.
	Fanout *Fanout
	// Nice is the nice value of the threads that open a resized afpacket
	// ring, which must be bound before the ring it replaces overflows: the
	// reader's own (capture.Config.ReaderNice). 0 leaves the process's.
	Nice int
}

// Then is the counters of s followed by those of a source opened after it
// closed: the sum of the counts, the later source's ring.
func (s Stats) Then(later Stats) Stats {
	return Stats{
		Received:           s.Received + later.Received,
		Dropped:            s.Dropped + later.Dropped,
		RingSize:           later.RingSize,
		RingResizes:        s.RingResizes + later.RingResizes,
		RingResizeFailures: s.RingResizeFailures + later.RingResizeFailures,
	}
}

// Plus is the counters of s and of a source capturing beside it (another
// worker's): the sums, the rings' sizes included.
func (s Stats) Plus(other Stats) Stats {
	return Stats{
		Received:           s.Received + other.Received,
		Dropped:            s.Dropped + other.Dropped,
		RingSize:           s.RingSize + other.RingSize,
		RingResizes:        s.RingResizes + other.RingResizes,
		RingResizeFailures: s.RingResizeFailures + other.RingResizeFailures,
	}
}
