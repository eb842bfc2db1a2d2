// Package testwait bounds a test's wait for background work: it polls a
// condition until it holds, and fails the test if it never does. The
// bound only guards against a hung test; it is not a timing assertion.
package testwait

import (
	"testing"
	"time"
)

// For polls cond every millisecond until it holds, and fails t with
// "timed out waiting for what" once limit has passed.
func For(t testing.TB, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
