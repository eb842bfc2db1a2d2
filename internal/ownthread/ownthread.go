// Package ownthread runs a function on an OS thread of its own that ends
// with it, for work that changes its thread (its network namespace, nice
// value or capabilities) or whose CPU time the scheduler should not carry
// into other goroutines.
package ownthread

import "runtime"

// Go runs fn on a new goroutine locked to its thread, which the runtime
// ends when fn returns, so that nothing fn does to the thread reaches
// another goroutine.
//
// The runtime ends such a thread unless it is the process's main thread,
// which it parks for good instead (runtime.mexit), with whatever fn
// changed: a network namespace, which then outlives its container, or a
// nice value, which ps and top show as the whole process's. The first
// goroutine a process starts often runs there. A goroutine that finds
// itself on the main thread therefore holds that thread, unchanged, while
// fn runs on another one, and lets it go afterwards.
func Go(fn func()) { go run(fn) }

// run is the goroutine Go starts.
func run(fn func()) {
	runtime.LockOSThread()
	if !onMainThread() {
		fn()
		return // never unlocked: the thread ends with the goroutine
	}
	// While this goroutine holds the main thread, no other runs on it.
	done := make(chan struct{})
	Go(func() { defer close(done); fn() })
	<-done
	runtime.UnlockOSThread()
}
