package capture

import (
	"fmt"
	"net/netip"

	"github.com/gometro/go-metro/capture/filter"
	"github.com/gometro/go-metro/capture/packet"
	"golang.org/x/net/bpf"
)

// Tunnelled traffic.
//
// The decoder always looks inside every encapsulation it knows; the engine
// then keeps only the segments whose encapsulations the instance expects
// (Config.Tunnels) and counts the others as Stats.TunnelSkipped. What is
// expected by default depends on the source:
//
//   - A file decodes every encapsulation. Someone replaying a capture wants
//     the connections in it, and nothing in a file is seen twice.
//   - A live interface decodes none unless told. A host on an overlay
//     (Kubernetes with VXLAN or Geneve, an IPsec-free GRE mesh) sees each
//     connection twice when capturing on "any": bare on the pod or tunnel
//     device and encapsulated on the uplink; timing both would double every
//     host pair's samples. And the kernel filter would have to pass every
//     overlay packet to user space. A tunnel endpoint or mirror collector
//     lists what it receives (tunnels: [vxlan] or tunnels: all).
//
// Addresses: Src/Dst of a tunnelled packet are the inner (tenant's) ones, so
// local addresses, ips, hosts and ports all apply to the inner connection,
// exactly as for bare traffic. The outer addresses are never matched
// against them: they only tell tunnels apart in the flow key. The kernel
// filter (when ips, hosts or ports make one) cannot reach inner headers
// within its budget, so it passes every packet of an expected encapsulation
// whatever its inner addresses, and user space filters those exactly.
func expectedTunnels(cfg *Config) packet.Encap {
	if cfg.Tunnels == 0 && cfg.File != "" {
		return packet.EncapAll
	}
	return cfg.Tunnels & packet.EncapAll
}

// FitFilter is the kernel filter the engine installs on a source of link
// type link: filter.Fit's finest program for remotes and ports that fits,
// each level with the outer packets of the tunnels let through as well
// (filter.WithTunnels; a level that outgrows the kernel's limit with them
// gives way to a coarser one). attach installs a program, as for Fit;
// nil plans without a kernel (the agent's diagnosis and inventory).
func FitFilter(link packet.LinkType, remotes []netip.Prefix, ports []uint16, snaplen int, tunnels packet.Encap,
	attach func([]bpf.RawInstruction) error) (filter.Program, error) {
	return filter.Fit(link, remotes, ports, snaplen, func(prog []bpf.RawInstruction) error {
		if tunnels != 0 {
			var err error
			if prog, err = filter.WithTunnels(prog, link, tunnels, snaplen); err != nil {
				return fmt.Errorf("tunnels: %w", err)
			}
			if len(prog) > filter.MaxInstructions {
				return fmt.Errorf("tunnels: %w", filter.ErrTooLarge)
			}
		}
		if attach == nil {
			return nil
		}
		return attach(prog)
	})
}
