package source

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// niceOf is the nice value of the calling thread.
func niceOf(t *testing.T) int {
	t.Helper()
	p, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
	if err != nil {
		t.Fatal(err)
	}
	return 20 - p
}

// TestGoBackground: fn runs backgroundNice below the caller's priority,
// and the caller's thread keeps its own.
func TestGoBackground(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before := niceOf(t)
	got := make(chan int, 1)
	goBackground(func() { got <- niceOf(t) })
	if want, n := min(before+backgroundNice, 19), <-got; n != want {
		t.Errorf("fn ran at nice %d, want %d", n, want)
	}
	if after := niceOf(t); after != before {
		t.Errorf("the caller's thread went from nice %d to %d", before, after)
	}
}
