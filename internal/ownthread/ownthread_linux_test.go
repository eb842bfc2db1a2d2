package ownthread

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/gometro/go-metro/internal/testwait"
	"golang.org/x/sys/unix"
)

// threadNice is thread tid's nice value.
func threadNice(t *testing.T, tid int) int {
	t.Helper()
	raw, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	if err != nil {
		t.Fatal(err)
	}
	return 20 - raw // the raw system call returns 20 - nice
}

// runChanged runs Go with an fn that lowers its thread's priority, and
// returns the thread fn ran on, once fn has returned.
func runChanged(t *testing.T) (tid int) {
	t.Helper()
	got := make(chan int, 1)
	Go(func() {
		_ = unix.Setpriority(unix.PRIO_PROCESS, 0, 7) // 0: the calling thread
		got <- unix.Gettid()
	})
	return <-got
}

// checkEnded fails t unless thread tid is gone and the main thread kept
// nice value mainNice.
func checkEnded(t *testing.T, tid, mainNice int) {
	t.Helper()
	pid := unix.Getpid()
	if tid == pid {
		t.Fatalf("fn ran on the main thread %d", pid)
	}
	task := fmt.Sprintf("/proc/self/task/%d", tid)
	testwait.For(t, fmt.Sprintf("thread %d to end", tid), time.Minute, func() bool {
		_, err := os.Stat(task)
		return errors.Is(err, fs.ErrNotExist)
	})
	if got := threadNice(t, pid); got != mainNice {
		t.Errorf("the main thread's nice is %d, want %d as before", got, mainNice)
	}
}

// TestGo: fn runs on a thread other than the caller's and the main
// thread, and that thread ends with it. A caller that does not hold its
// thread leaves the main thread free, where the scheduler may start Go's
// goroutine (as it did in a CI run).
func TestGo(t *testing.T) {
	for _, tc := range []struct {
		name     string
		holdsOwn bool
	}{
		{"caller holds its thread", true},
		{"caller lets its thread go", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.holdsOwn {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
			}
			mainNice := threadNice(t, unix.Getpid())
			for range 20 {
				tid := runChanged(t)
				if tc.holdsOwn && tid == unix.Gettid() {
					t.Fatal("fn ran on the caller's thread")
				}
				checkEnded(t, tid, mainNice)
			}
		})
	}
}

// fromMainEnv marks the process TestGoFromMainThread starts.
const fromMainEnv = "GOMETRO_TEST_OWNTHREAD_FROM_MAIN"

func init() {
	if os.Getenv(fromMainEnv) != "" {
		// Locked during init, the main goroutine stays on the main
		// thread into main (the runtime package's documented way).
		runtime.LockOSThread()
	}
}

func TestMain(m *testing.M) {
	if os.Getenv(fromMainEnv) != "" {
		os.Exit(fromMainThread())
	}
	os.Exit(m.Run())
}

// TestGoFromMainThread: when Go's goroutine finds itself on the main
// thread, fn runs on another thread, which ends with it, and the main
// thread is left as it was. The check runs in a fresh process, on its
// main goroutine, which stays on the main thread (fromMainThread).
func TestGoFromMainThread(t *testing.T) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), fromMainEnv+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("the child process said:\n%s", out)
	if err != nil {
		t.Fatalf("the child process failed: %v", err)
	}
}

// fromMainThread is TestGoFromMainThread in the child process: it runs
// Go's goroutine body on the main thread, and returns the exit code.
func fromMainThread() int {
	pid := unix.Getpid()
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
		return 1
	}
	if unix.Gettid() != pid {
		return fail("the main goroutine runs on thread %d, not on the main thread %d: this test's premise no longer holds", unix.Gettid(), pid)
	}
	raw, err := unix.Getpriority(unix.PRIO_PROCESS, pid)
	if err != nil {
		return fail("%v", err)
	}
	got := make(chan int, 1)
	run(func() {
		_ = unix.Setpriority(unix.PRIO_PROCESS, 0, 7) // 0: the calling thread
		got <- unix.Gettid()
	})
	tid := <-got
	if tid == pid {
		return fail("fn ran on the main thread %d", pid)
	}
	if unix.Gettid() != pid {
		return fail("after run the main goroutine is on thread %d, not on the main thread %d", unix.Gettid(), pid)
	}
	task := fmt.Sprintf("/proc/self/task/%d", tid)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Millisecond) {
		if _, err := os.Stat(task); errors.Is(err, fs.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			return fail("thread %d still runs a minute after fn returned", tid)
		}
	}
	if now, err := unix.Getpriority(unix.PRIO_PROCESS, pid); err != nil || now != raw {
		return fail("the main thread's nice is %d (%v), want %d as before", 20-now, err, 20-raw)
	}
	fmt.Printf("fn ran on thread %d, which ended; the main thread %d kept its nice value\n", tid, pid)
	return 0
}
