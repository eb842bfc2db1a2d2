package source

import (
	"fmt"
	"unsafe"

	"github.com/gometro/go-metro/capture/filter"
	"golang.org/x/sys/unix"
)

// join makes the bound socket fd the next member of the group. The first
// member has the kernel make a group with an ID no other group of the
// namespace uses (PACKET_FANOUT_FLAG_UNIQUEID, Linux 4.4: a fixed ID could
// join another process's group), reads that ID back, and installs the
// hash (PACKET_FANOUT_DATA, Linux 4.2); the others join by that ID.
func (f *Fanout) join(fd int, ifname string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.joined == f.members {
		return fmt.Errorf("capture: %q: a fanout group of %d workers joined by a %dth", ifname, f.members, f.joined+1)
	}
	if f.joined > 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT, f.id|unix.PACKET_FANOUT_CBPF<<16); err != nil {
			return fmt.Errorf("capture: %q: joining fanout group %d: %w", ifname, f.id, err)
		}
		f.joined++
		return nil
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT, (unix.PACKET_FANOUT_CBPF|unix.PACKET_FANOUT_FLAG_UNIQUEID)<<16); err != nil {
		return fmt.Errorf("capture: %q: making a fanout group (PACKET_FANOUT with a unique ID needs Linux 4.4): %w", ifname, err)
	}
	v, err := unix.GetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT)
	if err != nil {
		return fmt.Errorf("capture: %q: reading the fanout group's ID: %w", ifname, err)
	}
	prog := filter.FanoutHash()
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: (*unix.SockFilter)(unsafe.Pointer(&prog[0]))}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_PACKET, unix.PACKET_FANOUT_DATA, &fprog); err != nil {
		return fmt.Errorf("capture: %q: installing the fanout hash (%d instructions): %w", ifname, len(prog), err)
	}
	f.id, f.joined = v&0xffff, 1
	return nil
}
