package source

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestGoOwnThread: fn runs on a thread other than the caller's, and that
// thread exits with it.
func TestGoOwnThread(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	got := make(chan int, 1)
	goOwnThread(func() { got <- unix.Gettid() })
	tid := <-got
	if tid == unix.Gettid() {
		t.Fatal("fn ran on the caller's thread")
	}
	task := fmt.Sprintf("/proc/self/task/%d", tid)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(task); errors.Is(err, fs.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("thread %d still runs after fn returned", tid)
		}
	}
}
