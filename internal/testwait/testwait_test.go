package testwait

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestForReturnsOnceCondHolds(t *testing.T) {
	var n atomic.Int32
	For(t, "three polls", time.Minute, func() bool { return n.Add(1) >= 3 })
	if got := n.Load(); got != 3 {
		t.Errorf("cond called %d times, want 3", got)
	}
}

// fatalRecorder records Fatalf instead of stopping the test.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = format
	panic(f)
}

func TestForFailsAfterLimit(t *testing.T) {
	f := &fatalRecorder{TB: t}
	func() {
		defer func() {
			if r := recover(); r != f {
				t.Fatalf("For did not fail: recovered %v", r)
			}
		}()
		For(f, "never", 5*time.Millisecond, func() bool { return false })
	}()
	if f.msg != "timed out waiting for %s" {
		t.Errorf("Fatalf(%q)", f.msg)
	}
}
