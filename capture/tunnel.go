package capture

import "github.com/gometro/go-metro/capture/packet"

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
