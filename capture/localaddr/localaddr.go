// Package localaddr holds the set of addresses that count as "us": the
// engine uses it to tell outgoing segments from incoming ones. Lookups are on
// the per-packet hot path, so they read an immutable snapshot through an
// atomic pointer (no lock, no allocation); updates, which happen rarely and
// off the hot path, build a new snapshot and swap it in.
package localaddr

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
)

// linearMax is the most exact addresses Sides scans linearly; a larger
// set (the addresses of a host's containers or pods, fed by the agent's
// workload metadata, up to Kubernetes' 110 pods per node and more) is
// looked up in a map. A scan of 8 takes as long as the two map lookups,
// about 50 ns here; of 16, twice that.
const linearMax = 8

// snapshot is never modified after it is published.
type snapshot struct {
	addrs    [][16]byte            // exact addresses, 16-byte (v4 as IPv4-mapped) form
	set      map[[16]byte]struct{} // addrs as a set, when there are more than linearMax
	prefixes []netip.Prefix        // configured prefixes, normalised to the 16-byte form
	list     []netip.Addr          // the addresses, unmapped, for Addrs
}

// Set is a concurrency-safe set of local addresses and prefixes. The zero
// value is empty and ready to use.
type Set struct {
	cur atomic.Pointer[snapshot]

	mu       sync.Mutex // serialises writers so that Set and SetPrefixes do not lose each other's update
	addrs    []netip.Addr
	prefixes []netip.Prefix
}

// Sides reports whether the source and the destination of a packet
// (16-byte form, IPv4 as ::ffff:a.b.c.d as in packet.Packet) are local
// addresses or fall in a configured prefix: both in one pass over one
// snapshot, as the hot path asks for both of every packet. It takes no lock
// and does not allocate.
func (s *Set) Sides(src, dst *[16]byte) (srcLocal, dstLocal bool) {
	sn := s.cur.Load()
	if sn == nil {
		return false, false
	}
	if sn.set != nil {
		_, srcLocal = sn.set[*src]
		_, dstLocal = sn.set[*dst]
	} else {
		// Hosts have a handful of addresses: a linear scan over 16-byte
		// arrays beats a map (no hashing) at these sizes.
		for i := range sn.addrs {
			a := &sn.addrs[i]
			srcLocal = srcLocal || *a == *src
			dstLocal = dstLocal || *a == *dst
		}
	}
	if len(sn.prefixes) > 0 {
		srcLocal = srcLocal || sn.inPrefixes(src)
		dstLocal = dstLocal || sn.inPrefixes(dst)
	}
	return srcLocal, dstLocal
}

func (sn *snapshot) inPrefixes(addr *[16]byte) bool {
	a := netip.AddrFrom16(*addr)
	for _, p := range sn.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Set replaces the exact addresses (typically the interfaces' addresses,
// refreshed periodically). Invalid addresses are ignored; zones are dropped.
func (s *Set) Set(addrs []netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addrs = slices.Clone(addrs)
	s.publish()
}

// SetPrefixes replaces the configured extra prefixes (mirrored ports,
// replays). A single-address prefix is treated as an exact address.
func (s *Set) SetPrefixes(prefixes []netip.Prefix) error {
	for _, p := range prefixes {
		if !p.IsValid() {
			return fmt.Errorf("localaddr: invalid prefix %v", p)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prefixes = slices.Clone(prefixes)
	s.publish()
	return nil
}

// Addrs returns the exact addresses and the single-address prefixes, sorted
// and without duplicates, IPv4 in 4-byte form. Wider prefixes are not
// expanded.
func (s *Set) Addrs() []netip.Addr {
	sn := s.cur.Load()
	if sn == nil {
		return nil
	}
	return slices.Clone(sn.list)
}

// publish builds a new snapshot from s.addrs and s.prefixes. Callers hold s.mu.
func (s *Set) publish() {
	sn := &snapshot{}
	add := func(a netip.Addr) {
		if !a.IsValid() {
			return
		}
		a = a.WithZone("").Unmap()
		if slices.Contains(sn.list, a) {
			return
		}
		sn.list = append(sn.list, a)
		sn.addrs = append(sn.addrs, a.As16())
	}
	for _, a := range s.addrs {
		add(a)
	}
	for _, p := range s.prefixes {
		p = p.Masked()
		addr := p.Addr().Unmap()
		bits := p.Bits()
		if p.Addr().Is4() || p.Addr().Is4In6() && bits >= 96 {
			if p.Addr().Is4In6() {
				bits -= 96
			}
			if bits == 32 {
				add(addr)
				continue
			}
			// Contains is given 16-byte addresses: express a v4 prefix in the
			// IPv4-mapped space so one comparison serves both families.
			sn.prefixes = append(sn.prefixes, netip.PrefixFrom(netip.AddrFrom16(addr.As16()), bits+96))
			continue
		}
		if bits == 128 {
			add(addr)
			continue
		}
		sn.prefixes = append(sn.prefixes, p)
	}
	slices.SortFunc(sn.list, func(a, b netip.Addr) int { return a.Compare(b) })
	for i, a := range sn.list {
		sn.addrs[i] = a.As16()
	}
	if len(sn.addrs) > linearMax {
		sn.set = make(map[[16]byte]struct{}, len(sn.addrs))
		for _, a := range sn.addrs {
			sn.set[a] = struct{}{}
		}
	}
	s.cur.Store(sn)
}

// InterfaceAddrs returns the addresses assigned to the named interface, or to
// every interface of the caller's network namespace when name is "" or
// "any": IPv4 unmapped, without duplicates. Link-local IPv6 addresses are
// included without their zone: TCP over them is rare but real, and an
// fe80:: address is "us" whichever link a frame crossed.
func InterfaceAddrs(name string) ([]netip.Addr, error) {
	var addrs []net.Addr
	if name == "" || name == "any" {
		a, err := net.InterfaceAddrs()
		if err != nil {
			return nil, fmt.Errorf("localaddr: listing interface addresses: %w", err)
		}
		addrs = a
	} else {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return nil, fmt.Errorf("localaddr: interface %q: %w", name, err)
		}
		a, err := ifi.Addrs()
		if err != nil {
			return nil, fmt.Errorf("localaddr: addresses of interface %q: %w", name, err)
		}
		addrs = a
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		var ip net.IP
		switch v := a.(type) {
		case *net.IPNet:
			ip = v.IP
		case *net.IPAddr:
			ip = v.IP
		default:
			continue
		}
		na, ok := netip.AddrFromSlice(ip)
		if !ok {
			continue
		}
		na = na.Unmap()
		if !slices.Contains(out, na) {
			out = append(out, na)
		}
	}
	return out, nil
}
