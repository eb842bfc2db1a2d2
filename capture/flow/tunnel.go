package flow

import (
	"bytes"
	"fmt"
	"net/netip"

	"github.com/gometro/go-metro/capture/packet"
)

// TunnelKey is the tunnel context of a flow's key, so that tenants whose
// inner addresses overlap (two VXLAN segments both using 10.0.0.0/24,
// two GTP-U tunnels between different endpoints) stay apart. It is fixed
// size and pointer-free like the rest of Key, and all zero for traffic that
// was not tunnelled.
//
// Both directions of a connection must map to the same key, so:
//   - the outer addresses are kept as an unordered pair (lower first): an
//     overlay sends A>B one way and B>A the other, a mirror session (VXLAN
//     traffic mirroring, ERSPAN) sends both directions A>B;
//   - the identifier is kept only where it is normally the same in both
//     directions: VXLAN and Geneve VNIs, the GRE key (ip-gre sets ikey =
//     okey unless told otherwise), the ERSPAN session, the PPPoE session
//     and the PBB I-SID. A GTP-U TEID is chosen by the receiving end of
//     each direction and an MPLS label by each direction's downstream
//     router, so those two would split every connection in half: they are
//     left out, and the outer addresses (GTP-U) or nothing (MPLS) tell
//     tunnels apart.
//
// Some deployments use a different VNI, key or session per direction all
// the same: EVPN asymmetric IRB, per-direction OVS tunnel keys (tcpdump's
// geneve.pcap), ERSPAN sessions that mirror each direction of a port apart
// (zeek's erspan.pcap: GRE keys 0 and 33554432). So the key keeps the
// identifier of each direction, ID for our segments and IDIn for the
// peer's, and the table indexes flows without them (see Table.join): a
// flow that has seen one direction only takes a segment of the other one
// with another identifier when that segment answers it exactly (it
// acknowledges the sequence space or echoes the TSval the flow sent, or
// the flow's ACKs acknowledge its sequence space), which a segment of
// another connection does with a chance of 2^-32 per segment at most, of
// the order of a window in 2^32 for an ACK of data in flight. A flow that
// has seen both directions under one identifier (a tenant using one each
// way) takes no other. Both are equal unless the connection uses two.
type TunnelKey struct {
	OuterA, OuterB [16]byte     // outer IP addresses, lower first; zero without an IP-borne tunnel
	ID             uint32       // tunnel identifier of our segments, see above; 0 if none
	IDIn           uint32       // tunnel identifier of the peer's segments: ID unless it uses another
	Encaps         packet.Encap // the encapsulations crossed
	IDOf           packet.Encap // which encapsulation ID belongs to
}

// symmetricIDs are the encapsulations whose identifier is normally the same
// in both directions of a connection (see TunnelKey for those where it is
// not).
const symmetricIDs = packet.EncapVXLAN | packet.EncapGeneve | packet.EncapGRE | packet.EncapERSPAN |
	packet.EncapPPPoE | packet.EncapPBB

func tunnelKey(t *packet.Tunnel) TunnelKey {
	k := TunnelKey{OuterA: t.OuterSrc, OuterB: t.OuterDst, Encaps: t.Encaps}
	if t.IDOf&symmetricIDs != 0 {
		k.ID, k.IDIn, k.IDOf = t.ID, t.ID, t.IDOf
	}
	if bytes.Compare(k.OuterA[:], k.OuterB[:]) > 0 {
		k.OuterA, k.OuterB = k.OuterB, k.OuterA
	}
	return k
}

// String describes the tunnel for replay output and logs, for instance
// "vxlan vni=42 outer=10.0.0.1,10.0.0.2" (the outer pair in numeric
// order, since both directions share it), or "geneve vni=11/10 ..." for a
// connection with an identifier per direction (ours/the peer's); "" when
// not tunnelled.
func (k TunnelKey) String() string {
	if k.Encaps == 0 {
		return ""
	}
	t := packet.Tunnel{Encaps: k.Encaps, ID: k.ID, IDOf: k.IDOf}
	s := t.String()
	if k.IDIn != k.ID {
		s += fmt.Sprintf("/%d", k.IDIn)
	}
	if k.OuterA != ([16]byte{}) || k.OuterB != ([16]byte{}) {
		s += fmt.Sprintf(" outer=%s,%s", netip.AddrFrom16(k.OuterA).Unmap(), netip.AddrFrom16(k.OuterB).Unmap())
	}
	return s
}
