//go:build unix

package flow

import "golang.org/x/sys/unix"

// mapAnon maps size bytes of private zero pages; none is resident until
// written.
func mapAnon(size int) ([]byte, error) {
	return unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
}

func unmapAnon(mem []byte) { _ = unix.Munmap(mem) }
