//go:build pcap

package source

import (
	"os"

	"golang.org/x/sys/unix"
)

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
