package delayline

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// lockThreadForTiming pins the calling goroutine to its thread for good and
// sets the thread's timer slack to 1 ns: the default 50 us slack is added to
// every sleep. The thread is never unlocked, so it exits with the goroutine
// and its changed slack cannot leak to other goroutines.
func lockThreadForTiming() {
	runtime.LockOSThread()
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0) // best effort: only precision suffers
}

// sleepPrecise sleeps with nanosleep(2) on the current thread. Measured on
// the 2-core test VM: time.Sleep overshoots by ~250 us to 1 ms (median),
// nanosleep with 1 ns slack by ~60 us.
func sleepPrecise(d time.Duration) {
	ts := unix.NsecToTimespec(int64(d))
	_ = unix.Nanosleep(&ts, nil) // EINTR: the caller re-checks the clock
}

// yield is called while spinning for the last stretch before a release. It
// gives the CPU to any other thread of the same real-time priority that is
// ready to run (sched_yield; the lab runs the line at SCHED_FIFO 10), and
// returns at once when there is none. A FIFO thread that spins without it
// keeps every thread of its priority off its CPU for as long as it spins,
// which a second line, started while this one forwards a stream of frames,
// is. It is not Gosched: on a locked goroutine that hands the P to another
// thread and back, costing more than the spin saves; the runtime's
// asynchronous preemption still lets this process's other goroutines in.
func yield() { _, _, _ = unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0) }

// PacketPort is an AF_PACKET raw socket bound to one interface, receiving
// every protocol (ETH_P_ALL) but not the frames sent through it.
type PacketPort struct {
	fd      int
	file    *os.File        // owns fd; registered with the runtime's poller
	rc      syscall.RawConn // reads wait in the poller, not in a blocking syscall
	name    string
	timeout time.Duration
	drops   atomic.Uint64 // accumulated PACKET_STATISTICS drops (reading resets the kernel's)

	// State of the read in progress, so the closure passed to rc.Read is
	// made once and reading allocates nothing.
	rbuf   []byte
	rn     int
	rerrno syscall.Errno
	readFn func(uintptr) bool
	iov    unix.Iovec
	msg    unix.Msghdr
	oob    [64]byte
}

// PortOptions tune OpenPacketPort.
type PortOptions struct {
	// SocketBuffer is the receive and send buffer in bytes, forced past
	// rmem_max/wmem_max (needs CAP_NET_ADMIN). Default 64 MiB, so bursts
	// queue in the kernel instead of being dropped there.
	SocketBuffer int
	// ReadTimeout bounds ReadFrame so readers notice shutdown. Default 100ms.
	ReadTimeout time.Duration
	// VnetHdr makes every frame read and written carry a virtio_net_hdr
	// first (PACKET_VNET_HDR): GSO super-frames and frames with partial
	// checksums (offloads on) then cross the line whole, as the kernel
	// forwards them between devices. Both ports must agree.
	VnetHdr bool
}

// OpenPacketPort opens a raw packet socket on ifname in the calling thread's
// network namespace and puts the interface in promiscuous mode (through
// socket membership, undone when the socket closes) so frames for other MACs
// are seen on every kind of link.
func OpenPacketPort(ifname string, opt PortOptions) (*PacketPort, error) {
	if opt.SocketBuffer == 0 {
		opt.SocketBuffer = 64 << 20
	}
	if opt.ReadTimeout == 0 {
		opt.ReadTimeout = 100 * time.Millisecond
	}
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("delayline: interface %q: %w", ifname, err)
	}
	proto := htons(unix.ETH_P_ALL)
	// Non-blocking, so reads wait in the Go runtime's poller: a reader
	// blocked in recvfrom would hold a thread and, until the runtime takes
	// it back, a P; on a 2-core machine that starved the senders and made
	// releases hundreds of milliseconds late.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, int(proto))
	if err != nil {
		return nil, fmt.Errorf("delayline: packet socket for %s: %w", ifname, err)
	}
	p := &PacketPort{fd: fd, name: ifname, timeout: opt.ReadTimeout}
	fail := func(what string, err error) (*PacketPort, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("delayline: %s on %s: %w", what, ifname, err)
	}
	// Ignore outgoing before binding: our own writes would otherwise come
	// back to us as captured frames and be forwarded again.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
		return fail("PACKET_IGNORE_OUTGOING", err)
	}
	if opt.VnetHdr {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
			return fail("PACKET_VNET_HDR", err)
		}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, opt.SocketBuffer); err != nil {
		return fail("SO_RCVBUFFORCE", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, opt.SocketBuffer); err != nil {
		return fail("SO_SNDBUFFORCE", err)
	}
	// Kernel receive timestamps: frames are scheduled from the moment the
	// kernel got them, so the reader's own wake-up delay cannot hide from
	// the lateness measurement.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		return fail("SO_TIMESTAMPNS", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}); err != nil {
		return fail("bind", err)
	}
	mreq := unix.PacketMreq{Ifindex: int32(ifi.Index), Type: unix.PACKET_MR_PROMISC}
	if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
		return fail("promiscuous membership", err)
	}
	p.file = os.NewFile(uintptr(fd), "packet:"+ifname)
	if p.rc, err = p.file.SyscallConn(); err != nil {
		p.file.Close()
		return nil, fmt.Errorf("delayline: raw conn on %s: %w", ifname, err)
	}
	p.msg.Iov = &p.iov
	p.msg.Iovlen = 1
	p.readFn = func(fd uintptr) bool {
		p.iov.Base = &p.rbuf[0]
		p.iov.SetLen(len(p.rbuf))
		p.msg.Control = &p.oob[0]
		p.msg.SetControllen(len(p.oob))
		r, _, errno := unix.Syscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&p.msg)), unix.MSG_TRUNC)
		p.rn, p.rerrno = int(r), errno
		return errno != unix.EAGAIN // false: wait for readability
	}
	return p, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// ReadFrame implements Port. It does not allocate: recvmsg is called
// directly with MSG_TRUNC so the frame's full length comes back, along with
// the kernel's receive time (wall clock, ns).
func (p *PacketPort) ReadFrame(buf []byte) (int, int64, error) {
	if err := p.file.SetReadDeadline(time.Now().Add(p.timeout)); err != nil {
		return 0, 0, fmt.Errorf("read deadline on %s: %w", p.name, err)
	}
	p.rbuf = buf
	for {
		err := p.rc.Read(p.readFn)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			return 0, 0, ErrTimeout
		case err != nil:
			return 0, 0, fmt.Errorf("read on %s: %w", p.name, err)
		case p.rerrno == unix.EINTR:
			continue
		case p.rerrno != 0:
			return 0, 0, fmt.Errorf("recvmsg on %s: %w", p.name, p.rerrno)
		}
		return p.rn, p.timestamp(), nil
	}
}

// timestamp extracts SCM_TIMESTAMPNS from the last recvmsg, 0 if absent.
func (p *PacketPort) timestamp() int64 {
	n := int(p.msg.Controllen)
	b := p.oob[:n]
	for len(b) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
		if h.Len < unix.SizeofCmsghdr || int(h.Len) > len(b) {
			return 0
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS &&
			int(h.Len) >= unix.CmsgLen(int(unsafe.Sizeof(unix.Timespec{}))) {
			ts := (*unix.Timespec)(unsafe.Pointer(&b[unix.CmsgLen(0)]))
			return ts.Nano()
		}
		b = b[min(unix.CmsgSpace(int(h.Len)-unix.CmsgLen(0)), len(b)):]
	}
	return 0
}

// WriteFrame implements Port.
func (p *PacketPort) WriteFrame(frame []byte) error {
	for {
		_, err := unix.Write(p.fd, frame)
		if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
			continue
		}
		if err != nil {
			return fmt.Errorf("write on %s: %w", p.name, err)
		}
		return nil
	}
}

// KernelDrops implements Port: frames the socket's receive queue dropped.
func (p *PacketPort) KernelDrops() uint64 {
	// getsockopt(PACKET_STATISTICS) returns and resets the kernel counters.
	st, err := unix.GetsockoptTpacketStats(p.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err == nil {
		p.drops.Add(uint64(st.Drops))
	}
	return p.drops.Load()
}

// Close releases the socket.
func (p *PacketPort) Close() error {
	if err := p.file.Close(); err != nil {
		return fmt.Errorf("delayline: close %s: %w", p.name, err)
	}
	return nil
}
