package source

import (
	"errors"
	"testing"

	"github.com/gometro/go-metro/internal/ownthread"
	"github.com/gometro/go-metro/tests/lab"
	"golang.org/x/sys/unix"
)

// threadNiceNow is the calling thread's nice value.
func threadNiceNow(t *testing.T) int {
	t.Helper()
	raw, err := unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
	if err != nil {
		t.Fatal(err)
	}
	return 20 - raw
}

// dropCapability removes capability bit c from the calling thread's
// effective set (Linux keeps capabilities per thread): the caller keeps
// the thread locked until its goroutine exits, so that the runtime never
// reuses it.
func dropCapability(t *testing.T, c uint) {
	t.Helper()
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		t.Fatal(err)
	}
	data[c/32].Effective &^= 1 << (c % 32)
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		t.Fatal(err)
	}
}

// TestLockThreadNice sets the reader thread's nice value and restores it,
// and fails naming the missing privilege when the thread may not lower it.
// Each case runs on a thread of its own that ends with it.
func TestLockThreadNice(t *testing.T) {
	lab.RequireRoot(t)
	for _, tc := range []struct {
		name      string
		nice      int
		noSysNice bool // the thread lacks CAP_SYS_NICE
		wantErr   error
	}{
		{"higher priority", -7, false, nil},
		{"lower priority", 5, false, nil},
		{"higher without CAP_SYS_NICE", -7, true, ErrNicePermission},
		{"lower without CAP_SYS_NICE", 5, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan struct{})
			ownthread.Go(func() { // no other goroutine runs with its capabilities and nice
				defer close(done)
				before := threadNiceNow(t)
				if tc.noSysNice {
					dropCapability(t, unix.CAP_SYS_NICE)
				}
				restore, err := LockThreadNice(tc.nice)
				if !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
					t.Errorf("LockThreadNice(%d) = %v, want %v", tc.nice, err, tc.wantErr)
					return
				}
				if err != nil {
					if got := threadNiceNow(t); got != before {
						t.Errorf("after the failure the thread's nice is %d, want %d as before", got, before)
					}
					return
				}
				if got := threadNiceNow(t); got != tc.nice {
					t.Errorf("nice while locked = %d, want %d", got, tc.nice)
				}
				restore()
				// Without CAP_SYS_NICE the thread may not lower the value
				// again: it stays at tc.nice, locked.
				want := before
				if tc.noSysNice && tc.nice > before {
					want = tc.nice
				}
				if got := threadNiceNow(t); got != want {
					t.Errorf("nice after restore = %d, want %d", got, want)
				}
			})
			<-done
		})
	}
}
