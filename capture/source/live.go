package source

import (
	"fmt"
	"net"
	"time"

	"github.com/gometro/go-metro/capture/packet"
)

// Live capture defaults.
const (
	// DefaultRingSize is the most a ring sized by need grows to (it starts
	// at InitialRingSize), and libpcap's buffer: at 600k packets/s on 2 busy cores an 8 MiB ring
	// overflowed (~5 % dropped) while the reader waited for a CPU; 32 MiB
	// dropped nothing.
	DefaultRingSize = 32 << 20
	// DefaultPollTimeout is how long Next waits for a frame before
	// ErrTimeout when nothing wakes it (Source.Wake): Cancel and snapshots
	// wake it, so it only paces an idle capture's housekeeping (expiry,
	// the interface check). Each timeout costs wake-ups of the reader and
	// the Go runtime: at 100 ms an idle instance used 1.9 ms of CPU per
	// second, at 1 s 0.3 ms.
	DefaultPollTimeout = time.Second
	// unwakeableTimeout caps the wait of a source Wake cannot interrupt
	// (libpcap; afpacket if the netpoller refused the socket), so that
	// Cancel and snapshots still get an answer within it.
	unwakeableTimeout = 100 * time.Millisecond
	// DefaultSnaplen is the most of a frame go-metro reads, the decoder's
	// longest header stack with one encapsulation (packet.MaxTunnelHeaderLen:
	// up to IPv6 + GRE + ERSPAN III + Ethernet + VLAN tags + IPv6 + TCP with
	// options), so the kernel copies headers and no payload into the ring.
	// Lengths come from the IP header, so a larger snaplen only copies
	// payload: it is also the maximum (the engine caps a larger configured
	// value, such as Agent v5's 512). Compared with 512 it cuts the ring's
	// bytes per full-size frame from 594 to 302 (the kernel's 82-byte frame
	// header included) and the CPU of the copy.
	DefaultSnaplen = packet.MaxTunnelHeaderLen
)

// AFPacketLinkType is the framing the afpacket backend delivers for ifi
// (nil: interface "any"). Ethernet and loopback devices carry an Ethernet
// header: it is kept, as a pcap of the port would (the kernel usually
// moves the outer VLAN tag into metadata, so frames mostly arrive
// untagged). Devices without one (tun, WireGuard, GRE) and "any" are read
// from the IP header on.
func AFPacketLinkType(ifi *net.Interface) packet.LinkType {
	if ifi != nil && (len(ifi.HardwareAddr) == 6 || ifi.Flags&net.FlagLoopback != 0) {
		return packet.LinkTypeEthernet
	}
	return packet.LinkTypeRaw
}

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
// interface it crosses. A bridge is joined promiscuously (isBridge), so a
// capture on it sees the traffic between its ports, as between containers
// on docker0. A named Ethernet or loopback interface yields
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
