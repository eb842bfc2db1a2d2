package source

import (
	"strings"

	"golang.org/x/sys/unix"
)

// isBridge reports whether the named interface of the calling thread's
// namespace is a Linux bridge (its driver, as `ethtool -i` reports it, is
// "bridge").
//
// A bridge forwards the frames between its ports without passing them up
// to its own device, so a capture on it sees only the host's own traffic
// across it, unless the bridge is promiscuous (br_handle_frame_finish,
// net/bridge/br_input.c: local_rcv). Containers on docker0 or a
// user-defined Docker network, and pods behind a CNI bridge, talk through
// one: the capture joins it promiscuously, as tcpdump does by default.
// The query needs no privilege; any failure reads as "not a bridge".
func isBridge(ifname string) bool {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	info, err := unix.IoctlGetEthtoolDrvinfo(fd, ifname)
	if err != nil {
		return false
	}
	return strings.TrimRight(string(info.Driver[:]), "\x00") == "bridge"
}
