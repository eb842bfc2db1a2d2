//go:build !linux

package source

import "fmt"

// LockThreadNice sets a thread's nice value on Linux (nice_linux.go);
// elsewhere only 0, which changes nothing, is accepted.
func LockThreadNice(nice int) (restore func(), err error) {
	if nice != 0 {
		return nil, fmt.Errorf("capture: a reader thread's nice value can be set only on Linux")
	}
	return func() {}, nil
}
