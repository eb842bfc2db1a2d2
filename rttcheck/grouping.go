package rttcheck

import (
	"math/rand/v2"
	"net/netip"
	"sort"
	"strconv"
	"time"

	"github.com/gometro/go-metro/capture/flow"
)

// Series naming and cardinality.
//
// A host pair's src is its local address, or, for a container or pod of
// this host, the workload's name (workloadEnd). Its dst is, in this order:
// the configured `hosts` name its address resolved from; the workload's
// name when the remote is a container or pod of this host; its network
// when group_dst_ipv4_prefix / group_dst_ipv6_prefix group it; else
// (dstName) the name a DNS answer on the interface gave it, its
// reverse-DNS name, or its address.
// That last one is pinned: the value of a remote address's first report is
// kept for as long as the address has flows in the table, so a PTR answer
// that arrives later does not split the series in two (dst:127.0.0.1, then
// dst:localhost). A remote that leaves the table (idle_ttl) and comes back
// is named afresh, with the name by then cached.
//
// max_host_pairs caps the series: series keep their tags while they have
// flows; a new one takes a free place if there is one, else goes to
// dst:other (per src and role) and stays there while it has flows.

// nameGroups turns this run's host pairs into series.
func (c *Check) nameGroups(pairs map[pairKey]*group, hostAddr map[netip.Addr]string, now time.Time) map[tagKey]*group {
	opts := &c.shape
	if c.rdns != nil {
		c.awaitFirstNames(pairs, hostAddr, now)
	}
	pins := make(map[netip.Addr]string, len(pairs))
	groups := make(map[tagKey]*group, len(pairs))
	for p, pg := range pairs {
		k := tagKey{src: p.local.String(), dst: c.pairDst(p, hostAddr, now, pins), tunnel: p.tunnel}
		if p.lw != nil {
			k.src, k.srcTags = p.lw.name, p.lw.key
		}
		if p.rw != nil {
			k.dstTags = p.rw.key
		}
		if opts.TagDstPort {
			k.port = strconv.Itoa(int(p.port))
		}
		if opts.TagRole && p.role != flow.RoleUnknown {
			k.role = p.role.String()
		}
		if g := groups[k]; g != nil {
			g.merge(pg)
		} else {
			groups[k] = pg
		}
	}
	c.report.dstPins = pins
	if opts.MaxHostPairs > 0 {
		groups = c.capSeries(groups, opts.MaxHostPairs)
	}
	if c.report.rng == nil {
		c.report.rng = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	return groups
}

// pairDst is a host pair's dst tag value (see above).
func (c *Check) pairDst(p pairKey, hostAddr map[netip.Addr]string, now time.Time, pins map[netip.Addr]string) string {
	if _, host := hostAddr[p.remote]; !host && p.rw != nil {
		return p.rw.name
	}
	return c.pinnedDst(p.remote, hostAddr, now, pins)
}

// pinnedDst is a remote address's dst tag value when it is no workload's
// (see above); pins collects this run's pinned names.
func (c *Check) pinnedDst(a netip.Addr, hostAddr map[netip.Addr]string, now time.Time, pins map[netip.Addr]string) string {
	n, ok := c.settledDst(a, hostAddr)
	if !ok {
		if n, ok = pins[a]; ok {
			return n
		}
		n = c.dstName(a, now)
	}
	pins[a] = n
	return n
}

// settledDst is a remote address's dst tag value when no reverse-DNS
// answer can change it: its configured host's name, its group's prefix, or
// the name pinned at its first report.
func (c *Check) settledDst(a netip.Addr, hostAddr map[netip.Addr]string) (string, bool) {
	if h, ok := hostAddr[a]; ok {
		return h, true
	}
	if p, ok := c.shape.groupDst(a); ok {
		return p.String(), true
	}
	n, ok := c.report.dstPins[a]
	return n, ok
}

// rdnsFirstWait bounds how long a Run waits for the reverse-DNS answers of
// remotes about to be reported (and pinned) for the first time.
var rdnsFirstWait = time.Second

// awaitFirstNames queues the reverse-DNS lookups of remotes about to get
// their first report and gives them up to rdnsFirstWait to answer, so that
// the name a pair is pinned to is its PTR name when it has one. Only runs
// that see new remotes wait, and only while a lookup is in flight.
func (c *Check) awaitFirstNames(pairs map[pairKey]*group, hostAddr map[netip.Addr]string, now time.Time) {
	var fresh []netip.Addr
	seen := map[netip.Addr]bool{} // pairs of one remote differ by local side, port or role
	for p := range pairs {
		a := p.remote
		if seen[a] || p.rw != nil {
			continue
		}
		seen[a] = true
		if _, ok := c.settledDst(a, hostAddr); ok {
			continue
		}
		if _, ok := c.dnsName(a); !ok && c.rdns.name(a, now) == "" {
			fresh = append(fresh, a)
		}
	}
	deadline := time.Now().Add(rdnsFirstWait)
	for len(fresh) > 0 && time.Now().Before(deadline) && c.rdns.anyPending(fresh) {
		time.Sleep(5 * time.Millisecond)
	}
}

// capSeries keeps at most max series with their own tags (see above).
func (c *Check) capSeries(groups map[tagKey]*group, max int) map[tagKey]*group {
	admitted := make(map[tagKey]bool, min(len(groups), max))
	demoted := map[tagKey]bool{}
	var fresh []tagKey
	for k := range groups {
		switch {
		case c.report.admitted[k]:
			admitted[k] = true
		case c.report.demoted[k]:
			demoted[k] = true
		default:
			fresh = append(fresh, k)
		}
	}
	sort.Slice(fresh, func(i, j int) bool { return fresh[i].less(fresh[j]) })
	for _, k := range fresh {
		if len(admitted) < max {
			admitted[k] = true
		} else {
			demoted[k] = true
		}
	}
	out := make(map[tagKey]*group, len(admitted)+1)
	for k := range admitted {
		out[k] = groups[k]
	}
	for k := range demoted {
		o := tagKey{src: k.src, dst: OtherDst, role: k.role, srcTags: k.srcTags}
		if g := out[o]; g != nil {
			g.merge(groups[k])
		} else {
			out[o] = groups[k]
		}
	}
	c.report.admitted, c.report.demoted = admitted, demoted
	return out
}
