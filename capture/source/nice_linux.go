package source

import (
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// LockThreadNice locks the calling goroutine to its thread and sets that
// thread's nice value to nice (Linux keeps one per thread; setpriority's
// PRIO_PROCESS with a thread id sets only that thread). restore sets the
// thread's previous value back and unlocks it; on error the goroutine is
// left as it was.
//
// Why a thread and not the process: in the agent the reader shares the
// process with every other check, which must keep their priority. The Go
// runtime creates new threads from a template thread once any goroutine
// locks one (runtime.LockOSThread), so the raised priority does not leak
// into threads the runtime starts later.
//
// A negative value needs CAP_SYS_NICE (or an RLIMIT_NICE that allows it);
// the error then wraps ErrNicePermission.
func LockThreadNice(nice int) (restore func(), err error) {
	runtime.LockOSThread()
	tid := unix.Gettid()
	// The raw system call returns 20 - nice, so that it is never negative.
	raw, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("capture: reading the reader thread's nice value: %w", err)
	}
	old := 20 - raw
	if err := unix.Setpriority(unix.PRIO_PROCESS, tid, nice); err != nil {
		runtime.UnlockOSThread()
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			err = fmt.Errorf("%w (%w)", ErrNicePermission, err)
		}
		return nil, fmt.Errorf("capture: setting the reader thread's nice value to %d: %w", nice, err)
	}
	return func() {
		// Raising a nice value needs no privilege, so this does not fail
		// for lack of one; if it fails anyway, the thread stays locked
		// and exits with its goroutine instead of running other
		// goroutines at the raised priority.
		if unix.Setpriority(unix.PRIO_PROCESS, tid, old) == nil {
			runtime.UnlockOSThread()
		}
	}, nil
}

// threadNice sets the calling thread's nice value, for goroutines that
// keep their thread locked until they exit (ownthread.Go). It is best
// effort: the reader thread's LockThreadNice already failed loudly if the
// value is not allowed.
func threadNice(nice int) {
	if nice != 0 {
		_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), nice)
	}
}
