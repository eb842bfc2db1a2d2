//go:build !linux

package ownthread

// onMainThread is false where go-metro does not tell threads apart: only
// Linux captures change their threads (namespaces, nice values).
func onMainThread() bool { return false }
