package source

// The afpacket backend is written directly against the kernel's TPACKET_V3
// interface with golang.org/x/sys/unix instead of gopacket/afpacket, because
// gopacket/afpacket v1.1.19 needs cgo, takes a mutex per packet and
// allocates per packet for VLAN-tagged frames.
//
// TPACKET_V3 ring: the kernel fills fixed-size blocks with variable-size
// frames and hands a whole block to user space at once (when it is full or
// its retire timer expires). Next walks the frames of the current block in
// place (zero copy) and gives the block back when it moves to the next one.
//
// The ring is sized by need (ringsize.go): it starts small, because every
// page of it is resident from the moment it is mapped, and a ring of a new
// size replaces it when the reader falls behind or has long been idle.
// A ring's size is fixed once set up, so a resize opens a second socket
// with the same filter and hands over between the two (see handOver).
//
// The backend's files, by concern:
//
//	afpacket_linux.go         the socket: open, filter, counters, close
//	afpacket_read_linux.go    the steady read path (Next)
//	afpacket_ring_linux.go    the ring and its blocks
//	afpacket_wait_linux.go    waiting for a block, and Wake
//	afpacket_resize_linux.go  the hand-over to a ring of a new size

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/gometro/go-metro/capture/filter"
	"github.com/gometro/go-metro/capture/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// afpacket is the afpacket Source: a TPACKET_V3 ring read in place by one
// goroutine, the reader (Next, then Close), while other goroutines may call
// Wake, SetFilter and Stats. Its fields are grouped by who may touch them.
type afpacket struct {
	// Set by openAFPacket, read-only afterwards: any goroutine reads them.
	link      packet.LinkType
	snaplen   int
	sockType  int
	timeout   time.Duration // of a wait on the netpoller, which Wake ends
	timeoutMs int           // of a wait in poll(2), which it cannot
	ifname    string
	ifindex   int   // 0 for "any"
	promisc   bool  // a bridge: each ring joins it promiscuously (isBridge)
	ns        netns // where the sockets of resized rings are made
	nice      int   // of the threads that open resized rings (Options.Nice)

	// The reader's alone (Next, and Close once reading stopped): no lock.
	//
	// The resize state: opening while a goroutine opens the new ring;
	// then handing, the ring it opened (handing.r nil: none), taken over
	// at the latest at handoverBy (monotonic). After the switch, the
	// frames of the new ring up to checkUntil stamped before bindStart or
	// whose fingerprint seen keeps were read from the old one and are
	// skipped (overlap_linux.go); when seen overflowed, those older than
	// skipBefore too.
	opening    chan openedRing
	handing    openedRing
	handoverBy time.Time
	seen       *overlap
	bindStart  int64
	checkUntil int64
	skipBefore int64
	sizer      ringSizer
	ifreq      *unix.Ifreq    // ifindexExists's scratch request
	closing    sync.WaitGroup // replaced rings being closed in the background: the reader adds, Close waits
	frameIf    int32          // the interface of the frame Next returned last (Interface)

	// Guarded by mu, which keeps the rings from racing Close in Stats and
	// SetFilter, and the totals consistent.
	mu sync.Mutex
	// cur is the ring Next reads; next, once bound, the ring of a resize
	// that replaces it. The goroutine that opens next sets it; the reader
	// moves it to cur, and, the only one to change cur, reads cur without
	// the lock.
	cur, next *ring
	total     Stats
	prog      []bpf.RawInstruction // the installed filter, for a resized ring
	progGen   int                  // counts SetFilter calls

	// Atomics, any goroutine.
	closed  atomic.Bool // set by Close (under mu)
	pressed atomic.Bool // the kernel dropped frames (readStats): grow the ring (watch)
	// Wake's handshake with wait: Wake sets wake, then ends the park on
	// the ring in parked; wait stores parked and its deadline, then takes
	// wake. Whichever comes second sees the other's.
	wake   atomic.Bool
	parked atomic.Pointer[ring]
}

func openAFPacket(opts Options) (_ Source, err error) {
	s := &afpacket{snaplen: opts.Snaplen, ifname: opts.Interface, nice: opts.Nice}
	if s.ifname == "" {
		s.ifname = "any"
	}
	s.sockType = unix.SOCK_DGRAM
	s.link = packet.LinkTypeRaw
	if s.ifname != "any" {
		ifi, err := interfaceByName(s.ifname)
		if err != nil {
			return nil, err
		}
		s.ifindex = ifi.Index
		if s.link = AFPacketLinkType(ifi); s.link == packet.LinkTypeEthernet {
			s.sockType = unix.SOCK_RAW // keeps the link header
		}
		s.ifreq, _ = unix.NewIfreq("")
	}
	s.timeout = max(opts.PollTimeout, time.Millisecond)
	s.timeoutMs = int(min(s.timeout, unwakeableTimeout) / time.Millisecond)
	s.sizer = newRingSizer(InitialRingSize, DefaultRingSize, time.Now())
	switch {
	case opts.RingSize > 0:
		s.sizer = newRingSizer(opts.RingSize, opts.RingSize, time.Now()) // fixed
	case opts.Fanout != nil:
		size := FanoutRingSize(opts.Fanout.Members())
		s.sizer = newRingSizer(size, size, time.Now()) // fixed: see Fanout
	}
	if opts.Fanout != nil && opts.Filter != nil {
		return nil, fmt.Errorf("capture: %q: a fanout member takes its filter from SetFilter, once every member has joined", s.ifname)
	}
	runtime.LockOSThread() // the namespace of the thread that makes the first socket
	s.ns = currentNetns()
	s.promisc = s.ifindex != 0 && isBridge(s.ifname)
	s.cur, err = s.openRing(s.sizer.size, func(r *ring) error {
		if opts.Fanout != nil {
			// Nothing until SetFilter (see Fanout); not kept for rings
			// opened later, as a refused filter would be.
			return s.attachTo(r.fd, []bpf.RawInstruction{{Op: 0x06, K: 0}}) // ret #0
		}
		attach := func(prog []bpf.RawInstruction) error { return s.attach(r.fd, prog) }
		if opts.Filter != nil {
			return opts.Filter(s.link, attach)
		}
		return attach(nil)
	})
	runtime.UnlockOSThread()
	if err == nil && opts.Fanout != nil {
		if err = opts.Fanout.join(s.cur.fd, s.ifname); err != nil {
			s.cur.close()
		}
	}
	if err != nil {
		s.ns.close()
		return nil, err
	}
	s.total.RingSize = s.cur.size()
	return s, nil
}

func (s *afpacket) LinkType() packet.LinkType { return s.link }

// Interface is the index of the interface the latest frame was captured
// on (sll_ifindex): on "any", the one of the frame's sightings.
func (s *afpacket) Interface() int { return int(s.frameIf) }

// SetFilter attaches prog, replacing any previous program in one step
// (SO_ATTACH_FILTER swaps it atomically in the kernel). nil accepts
// everything, still truncated to the snaplen so that payload bytes never
// reach the ring.
func (s *afpacket) SetFilter(prog []bpf.RawInstruction) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return ErrClosed
	}
	s.progGen++
	if s.next != nil {
		if err := s.attachTo(s.next.fd, prog); err != nil {
			return err
		}
	}
	return s.attach(s.cur.fd, prog)
}

// attach installs prog on fd and keeps it for rings opened later.
func (s *afpacket) attach(fd int, prog []bpf.RawInstruction) error {
	if err := s.attachTo(fd, prog); err != nil {
		return err
	}
	s.prog = slices.Clone(prog)
	return nil
}

// attachTo installs prog on fd.
func (s *afpacket) attachTo(fd int, prog []bpf.RawInstruction) error {
	if len(prog) == 0 {
		prog = []bpf.RawInstruction{{Op: 0x06, K: uint32(s.snaplen)}} // ret #snaplen
	}
	if len(prog) > filter.MaxInstructions {
		return fmt.Errorf("capture: %q: filter of %d instructions: %w", s.ifname, len(prog), filter.ErrTooLarge)
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: (*unix.SockFilter)(unsafe.Pointer(&prog[0]))}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog); err != nil {
		return fmt.Errorf("capture: %q: attaching BPF filter (%d instructions): %w", s.ifname, len(prog), err)
	}
	return nil
}

// Stats returns the kernel's counters since open. The kernel resets them
// on every read, so they are accumulated here; after Close it returns the
// final values. Received counts every frame
// that passed the filter, including those dropped (the kernel's and
// libpcap's convention); Dropped counts those lost because the ring was full.
// Safe to call from any goroutine.
func (s *afpacket) Stats() (Stats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return s.total, nil // final counters, read by Close
	}
	err := s.readStats(s.counting())
	return s.total, err
}

// counting is the ring whose kernel counters count: the new one while a
// resize hands over (see watch). Callers hold s.mu.
func (s *afpacket) counting() *ring {
	if s.next != nil {
		return s.next
	}
	return s.cur
}

// readStats adds the kernel's counters of r since the last read to
// s.total. Callers hold s.mu.
func (s *afpacket) readStats(r *ring) error {
	st, err := unix.GetsockoptTpacketStatsV3(r.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return fmt.Errorf("capture: %q: reading socket statistics: %w", s.ifname, err)
	}
	s.total.Received += uint64(st.Packets)
	s.total.Dropped += uint64(st.Drops)
	if st.Drops > 0 {
		s.pressed.Store(true)
	}
	return nil
}

// Close releases the rings and the sockets. It must be called by the
// goroutine that reads, after it stopped reading; later calls do nothing.
func (s *afpacket) Close() error {
	if s.opening != nil {
		<-s.opening // a ring it opened is in s.next, closed below
		s.opening = nil
	}
	s.closing.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Swap(true) {
		return nil
	}
	var errs []error
	if s.cur != nil {
		// Keep the final counters for Stats after Close.
		if err := s.readStats(s.counting()); err != nil {
			errs = append(errs, err)
		}
		errs = append(errs, s.cur.close())
	}
	if s.next != nil {
		errs = append(errs, s.next.close())
	}
	s.cur, s.next = nil, nil
	s.ns.close()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("capture: %q: %w", s.ifname, err)
	}
	return nil
}
