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

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/gometro/go-metro/capture/filter"
	"github.com/gometro/go-metro/capture/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

const (
	// blockRetire is how long the kernel holds a partly filled block before
	// handing it over. Every hand-over wakes the reader, so it sets the
	// wake-up rate whenever traffic is too light to fill a block sooner (an
	// empty block is never handed over: an idle ring wakes nobody). It only
	// delays processing, never timing: kernel timestamps are taken on
	// arrival. 100 ms keeps a snapshot at most that stale. With the 10 ms
	// and 256 KiB blocks this replaced, go-metro used twice the CPU at
	// ~100k packets/s (make bench-live's traffic).
	blockRetire = 100 * time.Millisecond
	// Blocks: ringBlocks of them, each a power of two between minBlockSize
	// and maxBlockSize. A block is the unit the kernel hands over, so large
	// blocks mean few wake-ups (1 MiB holds about 4,000 headers-only
	// frames: 40 ms of traffic at 100k packets/s); several of them let the
	// kernel fill some while the reader holds one, and bound how long the
	// reader may fall behind at light traffic (ringsize.go).
	ringBlocks   = 8
	minBlockSize = 256 << 10
	maxBlockSize = 1 << 20
	minBlocks    = 4

	// Offsets in struct tpacket_block_desc (hdr.bh1 starts at 8).
	blkStatusOff   = 8
	blkNumPktsOff  = 12
	blkFirstPktOff = 16
	blkLenOff      = 20
	blkTsFirstOff  = 32 // struct tpacket_bd_ts: seconds, nanoseconds
	blkTsLastOff   = 40

	// struct sockaddr_ll follows the tpacket3_hdr at TPACKET_ALIGN(48).
	sllOff        = 48
	sllHatypeOff  = sllOff + 8
	sllPkttypeOff = sllOff + 10

	arphrdLoopback = 772
	packetOutgoing = 4
)

// ring is one bound packet socket and its mapped TPACKET_V3 ring, with the
// reader's position in it.
type ring struct {
	fd        int
	mem       []byte
	blockSize int
	numBlocks int

	block     int  // index of the current block
	held      bool // the current block belongs to user space
	remaining uint32
	off       int // offset in mem of the next frame header

	// file and rc wrap fd for the Go netpoller (see usePoller); nil when the
	// runtime could not register it, and wait falls back to poll(2).
	file  *os.File
	rc    syscall.RawConn
	ready func(uintptr) bool // made once: rc.Read's callback, no allocation per wait
	woken bool               // ready was called before in this wait
}

type afpacket struct {
	link      packet.LinkType
	snaplen   int
	sockType  int
	timeout   time.Duration // of a wait on the netpoller, which Wake ends
	timeoutMs int           // of a wait in poll(2), which it cannot
	ifname    string
	ifindex   int // 0 for "any"
	ifreq     *unix.Ifreq
	ns        netns // where the sockets of resized rings are made

	// cur is the ring Next reads; next, once bound, the ring of a resize
	// that replaces it. Both are guarded by mu: the goroutine that opens
	// next sets it, the reader moves it to cur.
	cur, next *ring
	// The reader's resize state: opening while a goroutine opens the new
	// ring; then handing, the ring it opened (handing.r nil: none), taken
	// over at the latest at handoverBy (monotonic). After the switch,
	// frames of the new ring older than skipBefore were read from the old
	// one and are skipped.
	opening    chan openedRing
	handing    openedRing
	handoverBy time.Time
	skipBefore int64
	sizer      ringSizer

	closing sync.WaitGroup // replaced rings being closed in the background
	mu      sync.Mutex     // guards the rings against Stats/SetFilter racing Close, and the totals
	closed  atomic.Bool
	total   Stats
	prog    []bpf.RawInstruction // the installed filter, for a resized ring
	progGen int                  // counts SetFilter calls
	pressed atomic.Bool          // the kernel dropped frames: grow the ring

	// Wake's handshake with wait: Wake sets wake, then ends the park on
	// the ring in parked; wait stores parked and its deadline, then takes
	// wake. Whichever comes second sees the other's.
	wake   atomic.Bool
	parked atomic.Pointer[ring]
}

func openAFPacket(opts Options) (_ Source, err error) {
	s := &afpacket{snaplen: opts.Snaplen, ifname: opts.Interface, skipBefore: math.MinInt64}
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
	if opts.RingSize > 0 {
		s.sizer = newRingSizer(opts.RingSize, opts.RingSize, time.Now()) // fixed
	}
	runtime.LockOSThread() // the namespace of the thread that makes the first socket
	s.ns = currentNetns()
	s.cur, err = s.openRing(s.sizer.size, func(r *ring) error {
		attach := func(prog []bpf.RawInstruction) error { return s.attach(r.fd, prog) }
		if opts.Filter != nil {
			return opts.Filter(s.link, attach)
		}
		return attach(nil)
	})
	runtime.UnlockOSThread()
	if err != nil {
		s.ns.close()
		return nil, err
	}
	s.total.RingSize = s.cur.size()
	return s, nil
}

// openRing opens a socket with a ring of size bytes, has install attach
// its filter, and binds it.
func (s *afpacket) openRing(size int, install func(*ring) error) (_ *ring, err error) {
	// Protocol 0: the socket receives nothing until bind, so no frame can
	// reach the ring before the filter is attached.
	var fd int
	err = s.ns.do(func() (err error) {
		fd, err = unix.Socket(unix.AF_PACKET, s.sockType|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("capture: opening AF_PACKET socket for %q: %w (capturing needs CAP_NET_RAW: run as root, `setcap cap_net_raw+ep` the binary, or set AmbientCapabilities=CAP_NET_RAW)", s.ifname, err)
		}
		return nil, fmt.Errorf("capture: opening AF_PACKET socket for %q: %w", s.ifname, err)
	}
	r := &ring{fd: fd}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return nil, fmt.Errorf("capture: %q: selecting TPACKET_V3 (kernel >= 3.2 needed): %w", s.ifname, err)
	}

	// A frame holds the tpacket3 header, sockaddr_ll, padding and the
	// snaplen bytes; the kernel truncates to the block, so frameSize is
	// only a bound used to size the request.
	frameSize := 1 << bits.Len(uint(s.snaplen+128-1))
	r.blockSize, r.numBlocks = ringGeometry(size, frameSize)
	req := unix.TpacketReq3{
		Block_size:     uint32(r.blockSize),
		Block_nr:       uint32(r.numBlocks),
		Frame_size:     uint32(frameSize),
		Frame_nr:       uint32(r.blockSize / frameSize * r.numBlocks),
		Retire_blk_tov: uint32(blockRetire / time.Millisecond),
	}
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return nil, fmt.Errorf("capture: %q: setting up a %d-byte ring (%d blocks of %d): %w", s.ifname, r.size(), r.numBlocks, r.blockSize, err)
	}
	// The ring's pages are kernel memory that is never swapped: no need
	// for MAP_LOCKED (which RLIMIT_MEMLOCK could refuse).
	r.mem, err = unix.Mmap(fd, 0, r.size(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("capture: %q: mapping the %d-byte ring: %w", s.ifname, r.size(), err)
	}
	// The filter goes on before bind: the socket (protocol 0) receives
	// nothing until then, so no frame enters the ring unfiltered.
	if err := install(r); err != nil {
		return nil, err
	}
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: s.ifindex}
	if err := unix.Bind(fd, sa); err != nil {
		if errors.Is(err, unix.ENODEV) {
			return nil, fmt.Errorf("capture: interface %q: %w", s.ifname, ErrNoSuchInterface)
		}
		return nil, fmt.Errorf("capture: binding to %q: %w", s.ifname, err)
	}
	r.usePoller(s.ifname)
	return r, nil
}

// ringGeometry divides size bytes into blocks.
func ringGeometry(size, frameSize int) (blockSize, numBlocks int) {
	blockSize = max(frameSize, min(maxBlockSize, max(minBlockSize, 1<<(bits.Len(uint(size/ringBlocks))-1))))
	return blockSize, max(minBlocks, size/blockSize)
}

func (r *ring) size() int { return r.blockSize * r.numBlocks }

// captureAllowed reports whether this process may open packet sockets: the
// error (wrapping os.ErrPermission without CAP_NET_RAW) of a socket opened
// and closed at once.
func captureAllowed() error {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socket(AF_PACKET)", err)
	}
	return unix.Close(fd)
}

// usePoller hands the socket to the Go runtime's netpoller, so that waiting
// for a block parks the goroutine instead of blocking a thread in poll(2).
// A thread blocked in a system call costs far more than the call: the
// runtime's sysmon thread takes its P away after 20 µs, and every such
// take-over resets sysmon to polling every 20 µs for a while, so each
// wake-up of the reader cost dozens of sysmon wake-ups (measured: 1,240
// context switches and 207 ms of CPU per 10 s in sysmon at 85k packets/s,
// half of go-metro's CPU). Parked on the netpoller, the reader costs one
// epoll wake-up per block and sysmon sleeps. If the runtime cannot register
// the socket, wait uses poll(2) as before.
func (r *ring) usePoller(ifname string) {
	// A duplicate descriptor for the os.File, which owns and closes it;
	// the socket itself stays r.fd for the socket options.
	fd, err := unix.FcntlInt(uintptr(r.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return
	}
	f := os.NewFile(uintptr(fd), "afpacket:"+ifname)
	rc, err := f.SyscallConn()
	if err != nil || f.SetReadDeadline(time.Time{}) != nil {
		f.Close() // not registered with the netpoller: deadlines need it
		return
	}
	r.file, r.rc = f, rc
	r.ready = func(uintptr) bool {
		if r.blockReady() {
			return true
		}
		// The first call comes before parking: a ready block is checked,
		// an error is not (a poll(2) before every park cost 30 % of the
		// CPU); one set while the reader was not parked is found when the
		// wait times out.
		woken := r.woken
		r.woken = true
		return woken && r.pendingError()
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (s *afpacket) LinkType() packet.LinkType { return s.link }

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

// take makes the current block, which the kernel handed over, the one Next
// reads.
func (r *ring) take() {
	r.held = true
	r.remaining = r.blockField(blkNumPktsOff)
	r.off = r.block*r.blockSize + int(r.blockField(blkFirstPktOff))
}

// blockField reads the 32-bit field at off of the current block's
// descriptor (struct tpacket_block_desc).
func (r *ring) blockField(off int) uint32 {
	return *(*uint32)(unsafe.Pointer(&r.mem[r.block*r.blockSize+off]))
}

// release hands the current block back to the kernel and moves on.
func (r *ring) release() {
	base := r.block * r.blockSize
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&r.mem[base+blkStatusOff])), unix.TP_STATUS_KERNEL)
	r.held = false
	r.remaining = 0
	r.block++
	if r.block == r.numBlocks {
		r.block = 0
	}
}

// blockReady reports whether the current block belongs to user space.
func (r *ring) blockReady() bool { return r.blockAt(r.block) }

func (r *ring) blockAt(i int) bool {
	status := (*uint32)(unsafe.Pointer(&r.mem[i*r.blockSize+blkStatusOff]))
	return atomic.LoadUint32(status)&unix.TP_STATUS_USER != 0
}

// fillRate is how fast, in bytes per second, the kernel filled the current
// block, from its first frame's to its last frame's timestamp; 0 when the
// block has too few frames to tell.
func (r *ring) fillRate() float64 {
	ts := func(off int) int64 { return int64(r.blockField(off))*1e9 + int64(r.blockField(off+4)) }
	span := ts(blkTsLastOff) - ts(blkTsFirstOff)
	if r.blockField(blkNumPktsOff) < 64 || span <= 0 {
		return 0
	}
	return float64(r.blockField(blkLenOff)) * 1e9 / float64(span)
}

// backlog is how many blocks past the current one the kernel has filled
// and handed over: how far the reader is behind.
func (r *ring) backlog() int {
	n := 0
	for n < r.numBlocks-1 && r.blockAt((r.block+1+n)%r.numBlocks) {
		n++
	}
	return n
}

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

// wait waits until a block of r may be ready (nil), the poll timeout
// expires (ErrTimeout) or the socket reports an error.
func (s *afpacket) wait(r *ring) error {
	if r.rc != nil {
		// Park on the netpoller (see usePoller): the kernel wakes it when
		// it closes a block or sets a socket error (interface down). The
		// runtime does not tell the two apart, so ready looks for an error
		// after a wake-up, the timeout for one set before the park, and
		// poll(2) below reads and classifies it, as without the netpoller.
		//
		// A wait that Wake ended is a timeout like any other, with the same
		// checks for a socket error and a deleted interface: Cancel and
		// snapshots can wake the reader more often than the timeout
		// expires, and an error whose wake-up came while it was not
		// parked is only found by those checks.
		if err := r.file.SetReadDeadline(time.Now().Add(s.timeout)); err == nil {
			s.parked.Store(r)
			err = os.ErrDeadlineExceeded // woken before parking
			if !s.wake.Swap(false) {
				r.woken = false
				err = r.rc.Read(r.ready)
				if err == nil && r.blockReady() {
					return nil
				}
				s.wake.Store(false) // a Wake that ended the wait is spent
			}
			if errors.Is(err, os.ErrDeadlineExceeded) && !r.pendingError() {
				return s.timedOut(r)
			}
		}
	}
	fds := [1]unix.PollFd{{Fd: int32(r.fd), Events: unix.POLLIN | unix.POLLERR}}
	for {
		n, err := unix.Poll(fds[:], s.timeoutMs)
		if err == unix.EINTR {
			continue // Go's preemption signals interrupt poll
		}
		if err != nil {
			return fmt.Errorf("capture: polling %q: %w", s.ifname, err)
		}
		if n == 0 {
			return s.timedOut(r)
		}
		if fds[0].Revents&unix.POLLERR != 0 {
			// Reading SO_ERROR also clears it.
			soerr, err := unix.GetsockoptInt(r.fd, unix.SOL_SOCKET, unix.SO_ERROR)
			if err != nil {
				return fmt.Errorf("capture: %q: reading socket error: %w", s.ifname, err)
			}
			if soerr == int(unix.ENETDOWN) {
				if s.ifindex != 0 && !s.ifindexExists(r) {
					return fmt.Errorf("capture: interface %q (index %d): %w", s.ifname, s.ifindex, ErrInterfaceGone)
				}
				return fmt.Errorf("capture: interface %q: %w (capture resumes when it is up)", s.ifname, ErrInterfaceDown)
			}
			if soerr != 0 {
				return fmt.Errorf("capture: %q: socket error: %w", s.ifname, unix.Errno(soerr))
			}
		}
		return nil
	}
}

// Wake ends the reader's wait on the netpoller by moving its deadline to
// now (see the wake and parked fields); a wait in poll(2) ends at its
// timeout.
func (s *afpacket) Wake() {
	s.wake.Store(true)
	if r := s.parked.Load(); r != nil && r.file != nil {
		r.file.SetReadDeadline(time.Now()) // fails harmlessly on a ring closed meanwhile
	}
}

// pendingError reports whether the socket has an error to read (POLLERR),
// without waiting and without clearing it.
func (r *ring) pendingError() bool {
	fds := [1]unix.PollFd{{Fd: int32(r.fd), Events: unix.POLLERR}}
	n, err := unix.Poll(fds[:], 0)
	return err == nil && n > 0 && fds[0].Revents&unix.POLLERR != 0
}

// timedOut is the end of a wait that saw nothing: ErrTimeout, or
// ErrInterfaceGone if the device was deleted. The kernel signals a deleted
// device once, through POLLERR; checking here too means a missed or already
// consumed signal can never leave the caller timing out forever.
func (s *afpacket) timedOut(r *ring) error {
	if s.ifindex != 0 && !s.ifindexExists(r) {
		return fmt.Errorf("capture: interface %q (index %d): %w", s.ifname, s.ifindex, ErrInterfaceGone)
	}
	return ErrTimeout
}

// ifindexExists asks the kernel (SIOCGIFNAME, in the socket's namespace)
// whether the bound interface index still exists. It does not allocate.
func (s *afpacket) ifindexExists(r *ring) bool {
	s.ifreq.SetUint32(uint32(s.ifindex))
	err := unix.IoctlIfreq(r.fd, unix.SIOCGIFNAME, s.ifreq)
	return !errors.Is(err, unix.ENODEV)
}

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

// close unmaps the ring and closes its socket.
func (r *ring) close() error {
	var errs []error
	if r.mem != nil {
		if err := unix.Munmap(r.mem); err != nil {
			errs = append(errs, fmt.Errorf("unmapping ring: %w", err))
		}
		r.mem = nil
	}
	if r.file != nil {
		r.file.Close() // the netpoller's duplicate descriptor
		r.file, r.rc = nil, nil
	}
	if r.fd >= 0 {
		if err := unix.Close(r.fd); err != nil {
			errs = append(errs, fmt.Errorf("closing socket: %w", err))
		}
		r.fd = -1
	}
	return errors.Join(errs...)
}
