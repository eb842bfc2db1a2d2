package rttcheck

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

func defaultResolver() resolver { return net.DefaultResolver }

// remoteSet is the engine's Remotes: the configured ips plus the addresses
// hosts resolved to. With hosts configured and nothing to match yet it is
// noMatch rather than empty, because empty means "every remote".
func remoteSet(ips []netip.Prefix, hostAddrs []netip.Addr, haveHosts bool) []netip.Prefix {
	out := append([]netip.Prefix(nil), ips...)
	for _, a := range hostAddrs {
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	sort.Slice(out, func(i, j int) bool {
		if c := out[i].Addr().Compare(out[j].Addr()); c != 0 {
			return c < 0
		}
		return out[i].Bits() < out[j].Bits()
	})
	// Drop duplicates (a host listed under ips and hosts).
	dedup := out[:0]
	for i, p := range out {
		if i == 0 || p != out[i-1] {
			dedup = append(dedup, p)
		}
	}
	if len(dedup) == 0 && haveHosts {
		return []netip.Prefix{noMatch}
	}
	return dedup
}

// resolveHosts resolves the configured hosts once and publishes the remote
// set, pushing it to the engine when it changed. known holds each host's
// last addresses: a host that fails to resolve keeps them, because a DNS
// hiccup must not stop monitoring.
func (c *Check) resolveHosts(ctx context.Context, known map[string][]netip.Addr) {
	in := &c.cfg.Instance
	var unresolved []string
	for _, h := range in.Hosts {
		addrs, err := c.lookupHost(ctx, h)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			unresolved = append(unresolved, fmt.Sprintf("%s (%v)", h, err))
			continue
		}
		known[h] = addrs
	}
	hostAddr := map[netip.Addr]string{}
	var all []netip.Addr
	// Configuration order decides which name an address shared by two
	// hosts gets.
	for _, h := range in.Hosts {
		for _, a := range known[h] {
			if _, dup := hostAddr[a]; !dup {
				hostAddr[a] = h
				all = append(all, a)
			}
		}
	}
	remotes := remoteSet(in.IPs, all, true)

	var changed bool
	var eng engine
	c.update(func(s *status) {
		changed = !slices.Equal(remotes, s.remotes)
		s.remotes, s.hostAddr, s.unresolved = remotes, hostAddr, unresolved
		eng = s.eng
	})
	if changed && eng != nil {
		if err := eng.SetRemotes(remotes); err != nil {
			c.log.Warnf("go-metro: updating monitored hosts on %s: %v", in.Interface, err)
		}
	}
	if len(unresolved) > 0 {
		c.log.Warnf("go-metro: hosts did not resolve: %s", strings.Join(unresolved, ", "))
	}
}

func (c *Check) lookupHost(ctx context.Context, host string) ([]netip.Addr, error) {
	ctx, cancel := context.WithTimeout(ctx, dnsTimeout)
	defer cancel()
	names, err := c.res.LookupHost(ctx, host)
	if err != nil {
		var de *net.DNSError
		if errors.As(err, &de) && de.IsNotFound {
			return nil, fmt.Errorf("no such host")
		}
		return nil, err
	}
	var out []netip.Addr
	for _, n := range names {
		if a, err := netip.ParseAddr(n); err == nil {
			out = append(out, a.Unmap().WithZone(""))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no addresses")
	}
	return out, nil
}

// rdnsCache maps remote addresses to reverse-DNS names. Lookups happen in
// one background goroutine; Run only reads the cache and queues misses, so
// a slow DNS server never delays a collection.
type rdnsCache struct {
	res   resolver
	log   Logger
	max   int
	queue chan netip.Addr

	mu      sync.Mutex
	entries map[netip.Addr]rdnsEntry
	pending map[netip.Addr]bool
}

type rdnsEntry struct {
	name    string // "" when the address has no PTR record
	expires time.Time
}

// Cache lifetimes: names change rarely; failures are retried sooner.
const (
	rdnsTTL         = time.Hour
	rdnsNegativeTTL = 10 * time.Minute
)

func newRDNSCache(res resolver, max int, log Logger) *rdnsCache {
	return &rdnsCache{
		res:     res,
		log:     log,
		max:     max,
		queue:   make(chan netip.Addr, 1024),
		entries: map[netip.Addr]rdnsEntry{},
		pending: map[netip.Addr]bool{},
	}
}

// name returns the cached name of a, or "" when none is known yet, in
// which case a is queued for lookup. It never blocks.
func (r *rdnsCache) name(a netip.Addr, now time.Time) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.entries[a]
	if ok && now.Before(e.expires) {
		return e.name
	}
	if !r.pending[a] {
		select {
		case r.queue <- a:
			r.pending[a] = true
		default: // queue full: try again next run
		}
	}
	return e.name // a stale name is better than flapping to the IP
}

// anyPending reports whether a lookup of any of addrs is queued or in
// flight.
func (r *rdnsCache) anyPending(addrs []netip.Addr) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range addrs {
		if r.pending[a] {
			return true
		}
	}
	return false
}

func (r *rdnsCache) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case a := <-r.queue:
			r.lookup(ctx, a)
		}
	}
}

func (r *rdnsCache) lookup(ctx context.Context, a netip.Addr) {
	lctx, cancel := context.WithTimeout(ctx, dnsTimeout)
	names, err := r.res.LookupAddr(lctx, a.String())
	cancel()
	if ctx.Err() != nil {
		return
	}
	e := rdnsEntry{expires: time.Now().Add(rdnsNegativeTTL)}
	if err == nil && len(names) > 0 {
		e = rdnsEntry{name: strings.TrimSuffix(names[0], "."), expires: time.Now().Add(rdnsTTL)}
	} else if err != nil {
		r.log.Debugf("go-metro: reverse DNS for %s: %v", a, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.pending, a)
	if len(r.entries) >= r.max {
		// Bounded memory whatever the traffic: drop expired entries, and if
		// that is not enough, do not cache (the IP is used as the tag).
		now := time.Now()
		for k, v := range r.entries {
			if now.After(v.expires) {
				delete(r.entries, k)
			}
		}
		if len(r.entries) >= r.max {
			return
		}
	}
	r.entries[a] = e
}
