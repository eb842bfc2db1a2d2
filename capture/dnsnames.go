package capture

import (
	"net/netip"
	"sync"

	"github.com/gometro/go-metro/capture/dns"
	"github.com/gometro/go-metro/capture/flow"
	"github.com/gometro/go-metro/capture/packet"
)

// Names from DNS answers (Config.DNSNames).
//
// The kernel filter passes UDP and TCP from port 53 whole (filter.WithDNS);
// those are the only payload bytes go-metro reads. The engine's goroutine
// parses each answer (dns.Answer, no allocation) and puts its addresses in
// a fixed cache (dns.Cache) under the name that was asked for, for the
// answer's TTL within dns.MinTTL and dns.MaxTTL. With remotes configured,
// only their addresses are kept. Readers get the names of the flows'
// remotes in each snapshot.
//
// What is read: answers over UDP outside tunnels (fragmented ones are
// skipped with every IP fragment), and over TCP the segments that hold
// whole length-prefixed answers (dns.WholeTCP); an answer split across
// segments is not reassembled. Both are counted as cut when they are not
// read whole, and a message that does not parse is counted as malformed
// and skipped.

// DNSStats count the DNS messages the engine read.
type DNSStats struct {
	// Answers counts the messages that named addresses.
	Answers uint64
	// Malformed counts the messages that did not parse (dns.Malformed):
	// skipped.
	Malformed uint64
	// Cut counts the messages not read because the capture holds only
	// part of them: cut by a file's snaplen, or split across TCP segments.
	Cut uint64
}

// dnsNames is the engine's name cache, shared by its workers: the worker
// that parses an answer may not be the one whose flow the name is for (each
// worker parses the answers it captures, in its own dns.Answer). mu guards
// the cache: it is taken once per DNS answer and once per snapshot, never
// on the TCP path.
type dnsNames struct {
	mu    sync.Mutex
	cache *dns.Cache
}

func newDNSNames() *dnsNames { return &dnsNames{cache: dns.NewCache()} }

// dnsDatagram reads the DNS message of a UDP datagram Decode classified as
// packet.DNS.
func (w *worker) dnsDatagram(pkt *packet.Packet, data []byte, ts int64) {
	msg := pkt.Payload(data)
	if uint64(len(msg)) < uint64(pkt.PayloadLen) {
		w.stats.DNS.Cut++
		return
	}
	w.dnsMessage(msg, ts)
}

// dnsSegment reads the DNS messages of a TCP segment from port 53.
func (w *worker) dnsSegment(pkt *packet.Packet, data []byte, ts int64) {
	if pkt.PayloadLen == 0 || pkt.Tunnel.Encaps != 0 {
		return // the handshake, ACKs, FIN; or inside a tunnel, never read
	}
	p := pkt.Payload(data)
	if uint64(len(p)) < uint64(pkt.PayloadLen) || !dns.WholeTCP(p) {
		w.stats.DNS.Cut++
		return
	}
	for len(p) > 0 {
		var msg []byte
		msg, p = dns.NextTCP(p)
		w.dnsMessage(msg, ts)
	}
}

// dnsMessage parses one DNS message seen at capture time ts and caches the
// names it gives.
func (w *worker) dnsMessage(msg []byte, ts int64) {
	a := w.dnsAnswer
	switch a.Parse(msg) {
	case dns.Malformed:
		w.stats.DNS.Malformed++
		return
	case dns.Unnamed:
		return
	}
	w.stats.DNS.Answers++
	d := w.e.dns
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range a.N {
		if w.nameable(a.Addrs[i]) {
			d.cache.Put(a.Addrs[i], a.Name(), a.TTLs[i], ts)
		}
	}
}

// nameable reports whether a name for addr could be reported: addr is a
// monitored remote (any, when no remotes are configured).
func (w *worker) nameable(addr [16]byte) bool {
	if len(w.remotes) == 0 {
		return true
	}
	a := netip.AddrFrom16(addr).Unmap()
	for _, p := range w.remotes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// names returns the DNS names of the remotes of flows (see
// Snapshot.DNSNames).
func (d *dnsNames) names(flows []flow.Summary) map[netip.Addr]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[netip.Addr]string{}
	for i := range flows {
		f := &flows[i]
		a := f.Remote.Addr().Unmap()
		if _, ok := out[a]; ok {
			continue
		}
		if name, ok := d.cache.Lookup(a.As16(), f.FirstSeen); ok {
			out[a] = string(name)
		}
	}
	return out
}

// cached is the number of addresses the cache holds (Snapshot.DNSCached).
func (d *dnsNames) cached() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cache.Len()
}
