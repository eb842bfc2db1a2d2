//go:build !pcap

package source

import "fmt"

func openPcap(Options) (Source, error) {
	return nil, fmt.Errorf("capture: backend \"pcap\": %w: this binary was built without libpcap support; rebuild with -tags pcap (needs cgo and libpcap-dev) or use the default \"afpacket\" backend", ErrUnsupportedBackend)
}
