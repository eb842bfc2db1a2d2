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

import (
	"errors"
	"fmt"
	"math/bits"
	"os"
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
	// kernel fill some while the reader holds one.
	ringBlocks   = 8
	minBlockSize = 256 << 10
	maxBlockSize = 1 << 20
	minBlocks    = 4

	// Offsets in struct tpacket_block_desc (hdr.bh1 starts at 8).
	blkStatusOff   = 8
	blkNumPktsOff  = 12
	blkFirstPktOff = 16

	// struct sockaddr_ll follows the tpacket3_hdr at TPACKET_ALIGN(48).
	sllOff        = 48
	sllHatypeOff  = sllOff + 8
	sllPkttypeOff = sllOff + 10

	arphrdLoopback = 772
	packetOutgoing = 4
)

type afpacket struct {
	fd        int
	ring      []byte
	blockSize int
	numBlocks int
	link      packet.LinkType
	snaplen   int

	// Reader state (used only by the goroutine calling Next).
	block     int  // index of the current block
	held      bool // the current block belongs to user space
	remaining uint32
	off       int // offset in ring of the next frame header
	timeoutMs int
	ifname    string
	ifindex   int // 0 for "any"
	ifreq     *unix.Ifreq

	// file and rc wrap fd for the Go netpoller (see usePoller); nil when the
	// runtime could not register it, and wait falls back to poll(2).
	file  *os.File
	rc    syscall.RawConn
	ready func(uintptr) bool // made once: rc.Read's callback, no allocation per wait
	woken bool               // ready was called before in this wait

	mu     sync.Mutex // guards fd against Stats/SetFilter racing Close, and the totals
	closed atomic.Bool
	total  Stats
}

func openAFPacket(opts Options) (_ Source, err error) {
	s := &afpacket{fd: -1, snaplen: opts.Snaplen, ifname: opts.Interface}
	if s.ifname == "" {
		s.ifname = "any"
	}
	sockType := unix.SOCK_DGRAM
	s.link = packet.LinkTypeRaw
	if s.ifname != "any" {
		ifi, err := interfaceByName(s.ifname)
		if err != nil {
			return nil, err
		}
		s.ifindex = ifi.Index
		if s.link = AFPacketLinkType(ifi); s.link == packet.LinkTypeEthernet {
			sockType = unix.SOCK_RAW // keeps the link header
		}
		s.ifreq, _ = unix.NewIfreq("")
	}
	s.timeoutMs = int(opts.PollTimeout / time.Millisecond)
	if s.timeoutMs < 1 {
		s.timeoutMs = 1
	}

	// Protocol 0: the socket receives nothing until bind, so no frame can
	// reach the ring before the filter is attached.
	fd, err := unix.Socket(unix.AF_PACKET, sockType|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("capture: opening AF_PACKET socket for %q: %w (capturing needs CAP_NET_RAW: run as root, `setcap cap_net_raw+ep` the binary, or set AmbientCapabilities=CAP_NET_RAW)", s.ifname, err)
		}
		return nil, fmt.Errorf("capture: opening AF_PACKET socket for %q: %w", s.ifname, err)
	}
	s.fd = fd
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return nil, fmt.Errorf("capture: %q: selecting TPACKET_V3 (kernel >= 3.2 needed): %w", s.ifname, err)
	}

	// A frame holds the tpacket3 header, sockaddr_ll, padding and the
	// snaplen bytes; the kernel truncates to the block, so frameSize is
	// only a bound used to size the request.
	frameSize := 1 << bits.Len(uint(opts.Snaplen+128-1))
	s.blockSize = max(frameSize, min(maxBlockSize, max(minBlockSize, 1<<(bits.Len(uint(opts.RingSize/ringBlocks))-1))))
	s.numBlocks = max(minBlocks, opts.RingSize/s.blockSize)
	req := unix.TpacketReq3{
		Block_size:     uint32(s.blockSize),
		Block_nr:       uint32(s.numBlocks),
		Frame_size:     uint32(frameSize),
		Frame_nr:       uint32(s.blockSize / frameSize * s.numBlocks),
		Retire_blk_tov: uint32(blockRetire / time.Millisecond),
	}
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return nil, fmt.Errorf("capture: %q: setting up a %d-byte ring (%d blocks of %d): %w", s.ifname, s.blockSize*s.numBlocks, s.numBlocks, s.blockSize, err)
	}
	// The ring's pages are kernel memory that is never swapped: no need
	// for MAP_LOCKED (which RLIMIT_MEMLOCK could refuse).
	s.ring, err = unix.Mmap(fd, 0, s.blockSize*s.numBlocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("capture: %q: mapping the %d-byte ring: %w", s.ifname, s.blockSize*s.numBlocks, err)
	}
	// The filter goes on before bind: the socket (protocol 0) receives
	// nothing until then, so no frame enters the ring unfiltered.
	if opts.Filter != nil {
		err = opts.Filter(s.link, s.attach)
	} else {
		err = s.attach(nil)
	}
	if err != nil {
		return nil, err
	}
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: s.ifindex}
	if err := unix.Bind(fd, sa); err != nil {
		if errors.Is(err, unix.ENODEV) {
			return nil, fmt.Errorf("capture: interface %q: %w", s.ifname, ErrNoSuchInterface)
		}
		return nil, fmt.Errorf("capture: binding to %q: %w", s.ifname, err)
	}
	s.usePoller()
	return s, nil
}

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
func (s *afpacket) usePoller() {
	// A duplicate descriptor for the os.File, which owns and closes it;
	// the socket itself stays s.fd for the socket options.
	fd, err := unix.FcntlInt(uintptr(s.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return
	}
	f := os.NewFile(uintptr(fd), "afpacket:"+s.ifname)
	rc, err := f.SyscallConn()
	if err != nil || f.SetReadDeadline(time.Time{}) != nil {
		f.Close() // not registered with the netpoller: deadlines need it
		return
	}
	s.file, s.rc = f, rc
	s.ready = func(uintptr) bool {
		if s.blockReady() {
			return true
		}
		// The first call comes before parking: a ready block is checked,
		// an error is not (a poll(2) before every park cost 30 % of the
		// CPU); one set while the reader was not parked is found when the
		// wait times out.
		woken := s.woken
		s.woken = true
		return woken && s.pendingError()
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (s *afpacket) LinkType() packet.LinkType { return s.link }

// Next returns the next frame from the ring. It blocks at most the poll
// timeout. The returned data points into the ring and stays valid until the
// next call.
func (s *afpacket) Next() ([]byte, int64, int, error) {
	if s.ring == nil {
		return nil, 0, 0, ErrClosed
	}
	for {
		for s.remaining > 0 {
			h := (*unix.Tpacket3Hdr)(unsafe.Pointer(&s.ring[s.off]))
			start := s.off + int(h.Mac)
			end := start + int(h.Snaplen)
			ts := int64(h.Sec)*1e9 + int64(h.Nsec)
			wire := int(h.Len)
			skip := s.ring[s.off+sllPkttypeOff] == packetOutgoing &&
				*(*uint16)(unsafe.Pointer(&s.ring[s.off+sllHatypeOff])) == arphrdLoopback
			s.remaining--
			s.off += int(h.Next_offset)
			if skip {
				// Loopback frames are seen leaving and arriving; keep one.
				continue
			}
			return s.ring[start:end:end], ts, wire, nil
		}
		if s.held {
			s.release()
		}
		if s.blockReady() {
			base := s.block * s.blockSize
			s.held = true
			s.remaining = *(*uint32)(unsafe.Pointer(&s.ring[base+blkNumPktsOff]))
			s.off = base + int(*(*uint32)(unsafe.Pointer(&s.ring[base+blkFirstPktOff])))
			continue
		}
		if err := s.wait(); err != nil {
			return nil, 0, 0, err
		}
	}
}

// release hands the current block back to the kernel and moves on.
func (s *afpacket) release() {
	base := s.block * s.blockSize
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&s.ring[base+blkStatusOff])), unix.TP_STATUS_KERNEL)
	s.held = false
	s.remaining = 0
	s.block++
	if s.block == s.numBlocks {
		s.block = 0
	}
}

// blockReady reports whether the current block belongs to user space.
func (s *afpacket) blockReady() bool {
	status := (*uint32)(unsafe.Pointer(&s.ring[s.block*s.blockSize+blkStatusOff]))
	return atomic.LoadUint32(status)&unix.TP_STATUS_USER != 0
}

// wait waits until a block may be ready (nil), the poll timeout expires
// (ErrTimeout) or the socket reports an error.
func (s *afpacket) wait() error {
	if s.rc != nil {
		// Park on the netpoller (see usePoller): the kernel wakes it when
		// it closes a block or sets a socket error (interface down). The
		// runtime does not tell the two apart, so ready looks for an error
		// after a wake-up, the timeout for one set before the park, and
		// poll(2) below reads and classifies it, as without the netpoller.
		if err := s.file.SetReadDeadline(time.Now().Add(time.Duration(s.timeoutMs) * time.Millisecond)); err == nil {
			s.woken = false
			err = s.rc.Read(s.ready)
			if err == nil && s.blockReady() {
				return nil
			}
			if errors.Is(err, os.ErrDeadlineExceeded) && !s.pendingError() {
				return s.timedOut()
			}
		}
	}
	fds := [1]unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN | unix.POLLERR}}
	for {
		n, err := unix.Poll(fds[:], s.timeoutMs)
		if err == unix.EINTR {
			continue // Go's preemption signals interrupt poll
		}
		if err != nil {
			return fmt.Errorf("capture: polling %q: %w", s.ifname, err)
		}
		if n == 0 {
			return s.timedOut()
		}
		if fds[0].Revents&unix.POLLERR != 0 {
			// Reading SO_ERROR also clears it.
			soerr, err := unix.GetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_ERROR)
			if err != nil {
				return fmt.Errorf("capture: %q: reading socket error: %w", s.ifname, err)
			}
			if soerr == int(unix.ENETDOWN) {
				if s.ifindex != 0 && !s.ifindexExists() {
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

// pendingError reports whether the socket has an error to read (POLLERR),
// without waiting and without clearing it.
func (s *afpacket) pendingError() bool {
	fds := [1]unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLERR}}
	n, err := unix.Poll(fds[:], 0)
	return err == nil && n > 0 && fds[0].Revents&unix.POLLERR != 0
}

// timedOut is the end of a wait that saw nothing: ErrTimeout, or
// ErrInterfaceGone if the device was deleted. The kernel signals a deleted
// device once, through POLLERR; checking here too means a missed or already
// consumed signal can never leave the caller timing out forever.
func (s *afpacket) timedOut() error {
	if s.ifindex != 0 && !s.ifindexExists() {
		return fmt.Errorf("capture: interface %q (index %d): %w", s.ifname, s.ifindex, ErrInterfaceGone)
	}
	return ErrTimeout
}

// ifindexExists asks the kernel (SIOCGIFNAME, in the socket's namespace)
// whether the bound interface index still exists. It does not allocate.
func (s *afpacket) ifindexExists() bool {
	s.ifreq.SetUint32(uint32(s.ifindex))
	err := unix.IoctlIfreq(s.fd, unix.SIOCGIFNAME, s.ifreq)
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
	return s.attach(prog)
}

func (s *afpacket) attach(prog []bpf.RawInstruction) error {
	if len(prog) == 0 {
		prog = []bpf.RawInstruction{{Op: 0x06, K: uint32(s.snaplen)}} // ret #snaplen
	}
	if len(prog) > filter.MaxInstructions {
		return fmt.Errorf("capture: %q: filter of %d instructions: %w", s.ifname, len(prog), filter.ErrTooLarge)
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: (*unix.SockFilter)(unsafe.Pointer(&prog[0]))}
	if err := unix.SetsockoptSockFprog(s.fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog); err != nil {
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
	err := s.readStats()
	return s.total, err
}

// readStats adds the kernel's counters since the last read to s.total.
// Callers hold s.mu.
func (s *afpacket) readStats() error {
	st, err := unix.GetsockoptTpacketStatsV3(s.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return fmt.Errorf("capture: %q: reading socket statistics: %w", s.ifname, err)
	}
	s.total.Received += uint64(st.Packets)
	s.total.Dropped += uint64(st.Drops)
	return nil
}

// Close releases the ring and the socket. It must be called by the goroutine
// that reads, after it stopped reading; later calls do nothing.
func (s *afpacket) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Swap(true) {
		return nil
	}
	var errs []error
	if s.fd >= 0 {
		// Keep the final counters for Stats after Close.
		if err := s.readStats(); err != nil {
			errs = append(errs, err)
		}
	}
	if s.ring != nil {
		if err := unix.Munmap(s.ring); err != nil {
			errs = append(errs, fmt.Errorf("capture: %q: unmapping ring: %w", s.ifname, err))
		}
		s.ring = nil
	}
	if s.file != nil {
		s.file.Close() // the netpoller's duplicate descriptor
		s.file, s.rc = nil, nil
	}
	if s.fd >= 0 {
		if err := unix.Close(s.fd); err != nil {
			errs = append(errs, fmt.Errorf("capture: %q: closing socket: %w", s.ifname, err))
		}
		s.fd = -1
	}
	return errors.Join(errs...)
}
