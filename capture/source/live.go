package source

import (
	"fmt"
	"net"
	"time"
)

// Live capture defaults.
const (
	// DefaultRingSize is the kernel ring of the afpacket backend: at 600k
	// packets/s on 2 busy cores an 8 MiB ring overflowed (~5 % dropped)
	// while the reader waited for a CPU; 32 MiB dropped nothing.
	DefaultRingSize    = 32 << 20
	DefaultPollTimeout = 100 * time.Millisecond // bounds how long Next blocks
	// DefaultSnaplen is room for a frame's headers: link, VLAN tags, IPv4
	// with options or IPv6 with extension headers, TCP with options.
	DefaultSnaplen = 512
)

// OpenLive opens a live capture with the given backend:
//
//   - "" or "afpacket": an AF_PACKET socket with a TPACKET_V3 memory-mapped
//     ring, in pure Go (no cgo, no libpcap at run time); the ring's
//     workings are described at the top of afpacket_linux.go.
//   - "pcap": libpcap, only in binaries built with -tags pcap (needs cgo and
//     libpcap); elsewhere it returns an error wrapping ErrUnsupportedBackend.
//
// Interface "any" (or "") captures on every interface of the current
// network namespace. With afpacket its frames start at the IP header
// (LinkTypeRaw: the socket is SOCK_DGRAM, so link headers of different
// devices never mix); outgoing copies on loopback devices are dropped, as
// libpcap does, because loopback traffic is otherwise seen twice. Traffic
// between two interfaces of the same host (a veth pair whose ends are both
// in this namespace, a bridge and its ports) is still seen once per
// interface it crosses. A named Ethernet or loopback interface yields
// Ethernet frames (LinkTypeEthernet); other devices (tun, WireGuard, GRE)
// yield LinkTypeRaw.
//
// Errors wrap ErrNoSuchInterface when the interface does not exist, and
// os.ErrPermission when the process lacks CAP_NET_RAW. An interface that is
// down can still be opened: Next reports ErrInterfaceDown and frames flow
// once it is brought up.
func OpenLive(backend string, opts Options) (Source, error) {
	if opts.Snaplen <= 0 {
		opts.Snaplen = DefaultSnaplen
	}
	if opts.PollTimeout <= 0 {
		opts.PollTimeout = DefaultPollTimeout
	}
	if opts.RingSize <= 0 {
		opts.RingSize = DefaultRingSize
	}
	switch backend {
	case "", "afpacket":
		return openAFPacket(opts)
	case "pcap":
		return openPcap(opts)
	}
	return nil, fmt.Errorf("capture: backend %q: %w (known: \"afpacket\", \"pcap\")", backend, ErrUnsupportedBackend)
}

// interfaceByName is net.InterfaceByName with a missing interface reported
// as ErrNoSuchInterface: the net package's own error for it is unexported,
// so only its text would tell it from a failure to list the interfaces.
func interfaceByName(name string) (*net.Interface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("capture: listing interfaces to find %q: %w", name, err)
	}
	for i := range ifs {
		if ifs[i].Name == name {
			return &ifs[i], nil
		}
	}
	return nil, fmt.Errorf("capture: interface %q: %w", name, ErrNoSuchInterface)
}
