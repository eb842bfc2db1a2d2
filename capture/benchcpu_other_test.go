//go:build !linux

package capture

import "time"

// threadCPU is 0 where a thread's CPU time cannot be read: the benchmarks
// then report no cpu-ns/op.
func threadCPU() time.Duration { return 0 }
