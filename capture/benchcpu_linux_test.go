package capture

import (
	"time"

	"golang.org/x/sys/unix"
)

// threadCPU is the CPU time of the calling thread so far (RUSAGE_THREAD).
// A benchmark locked to its thread reports its own work with it, however
// much of the CPU other processes take meanwhile, which wall time (ns/op)
// does not on a shared machine.
func threadCPU() time.Duration {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_THREAD, &ru) != nil {
		return 0
	}
	return time.Duration(unix.TimevalToNsec(ru.Utime) + unix.TimevalToNsec(ru.Stime))
}
