//go:build !linux

package source

import "fmt"

func openAFPacket(Options) (Source, error) {
	return nil, fmt.Errorf("capture: backend \"afpacket\": %w: AF_PACKET exists only on Linux", ErrUnsupportedBackend)
}

// isBridge is Linux's bridge test (bridge_linux.go); elsewhere no
// interface is treated as one.
func isBridge(string) bool { return false }
