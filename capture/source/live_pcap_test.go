//go:build pcap

package source

func init() { backends = append(backends, "pcap") }
