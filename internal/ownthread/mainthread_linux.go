package ownthread

import "golang.org/x/sys/unix"

// onMainThread tells whether the calling thread is the process's main
// thread, whose thread id is the process id.
func onMainThread() bool { return unix.Gettid() == unix.Getpid() }
