package source

import (
	"fmt"
	"runtime"

	"github.com/gometro/go-metro/internal/ownthread"
	"golang.org/x/sys/unix"
)

// netns is the network namespace a capture was opened in. A packet socket
// belongs to the namespace of the thread that creates it, and binds by an
// interface index of that namespace, so the socket of a resized ring must
// be created there too, whichever thread the reader runs on by then (a
// caller may open the capture on a thread it moved into another namespace,
// as the tests do, and read on any other).
type netns struct {
	fd       int // -1: unknown (no /proc), sockets are made where the caller is
	dev, ino uint64
}

const threadNetns = "/proc/thread-self/ns/net"

// currentNetns refers to the calling thread's namespace; the caller must
// be locked to its thread if threads may differ in namespace.
func currentNetns() netns {
	fd, err := unix.Open(threadNetns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return netns{fd: -1}
	}
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		unix.Close(fd)
		return netns{fd: -1}
	}
	return netns{fd: fd, dev: st.Dev, ino: st.Ino}
}

// do runs fn in the namespace: on the calling thread when it is there
// already (entering a namespace needs CAP_SYS_ADMIN, which a capture does
// not otherwise need), else on a thread of its own that enters it and ends
// with fn, so that no thread of the runtime's pool is left in it.
func (n netns) do(fn func() error) error {
	if n.fd < 0 {
		return fn()
	}
	runtime.LockOSThread()
	var st unix.Stat_t
	if unix.Stat(threadNetns, &st) == nil && st.Dev == n.dev && st.Ino == n.ino {
		defer runtime.UnlockOSThread()
		return fn()
	}
	runtime.UnlockOSThread()
	errc := make(chan error, 1)
	ownthread.Go(func() {
		if err := unix.Setns(n.fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("entering the capture's network namespace: %w", err)
			return
		}
		errc <- fn()
	})
	return <-errc
}

func (n netns) close() {
	if n.fd >= 0 {
		unix.Close(n.fd)
	}
}
