package source

import (
	"errors"
	"fmt"
	"math/bits"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The TPACKET_V3 ring of the afpacket backend (see afpacket_linux.go): one
// bound socket and its mapped blocks, and the reader's access to them.

const (
	// blockRetire is how long the kernel holds a partly filled block before
	// handing it over. Every hand-over wakes the reader, so it sets the
	// wake-up rate whenever traffic is too light to fill a block sooner (an
	// empty block is never handed over: an idle ring wakes nobody). It only
	// delays processing, never timing: kernel timestamps are taken on
	// arrival. 100 ms keeps a snapshot at most that stale; 10 ms with
	// 256 KiB blocks cost twice the CPU at ~100k packets/s (make
	// bench-live's traffic).
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
	sllIfindexOff = sllOff + 4
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

	bindStart int64 // when its bind began (ns, the kernel's timestamp clock)

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
	if s.promisc {
		// A membership belongs to the socket: the kernel drops it, and the
		// bridge's promiscuity count with it, when the ring is closed.
		mreq := unix.PacketMreq{Ifindex: int32(s.ifindex), Type: unix.PACKET_MR_PROMISC}
		if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
			return nil, fmt.Errorf("capture: %q: joining the bridge promiscuously (to see the traffic between its ports): %w", s.ifname, err)
		}
	}
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: s.ifindex}
	r.bindStart = time.Now().UnixNano()
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

func htons(v uint16) uint16 { return v<<8 | v>>8 }

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
		// The netpoller's duplicate descriptor. The field stays: Wake reads
		// it from any goroutine, even while the ring closes (a run's end
		// wakes the reader as it closes the source; a hand-over closes the
		// old ring on a thread of its own), and a deadline set on a closed
		// file fails harmlessly.
		r.file.Close()
		r.rc = nil
	}
	if r.fd >= 0 {
		if err := unix.Close(r.fd); err != nil {
			errs = append(errs, fmt.Errorf("closing socket: %w", err))
		}
		r.fd = -1
	}
	return errors.Join(errs...)
}
