package source

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Waiting for the kernel to hand over a block, and Wake, which ends such a
// wait from another goroutine.

// usePoller hands the socket to the Go runtime's netpoller, so that waiting
// for a block parks the goroutine instead of blocking a thread in poll(2).
// A thread blocked in a system call costs far more than the call: the
// runtime's sysmon thread takes its P away after 20 µs, and every such
// take-over resets sysmon to polling every 20 µs for a while, so each
// wake-up of the reader cost dozens of sysmon wake-ups (measured: 1,240
// context switches and 207 ms of CPU per 10 s in sysmon at 85k packets/s,
// half of go-metro's CPU). Parked on the netpoller, the reader costs one
// epoll wake-up per block and sysmon sleeps. If the runtime cannot register
// the socket, wait uses poll(2).
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
