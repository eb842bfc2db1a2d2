package capture

import (
	"net/netip"

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

// dnsNames is the engine's reader of DNS answers and its name cache; Run's
// goroutine owns it, as it owns the flow table.
type dnsNames struct {
	cache  *dns.Cache
	answer dns.Answer
}

func newDNSNames() *dnsNames { return &dnsNames{cache: dns.NewCache()} }

// dnsDatagram reads the DNS message of a UDP datagram Decode classified as
// packet.DNS.
func (e *Engine) dnsDatagram(pkt *packet.Packet, data []byte, ts int64) {
	msg := pkt.Payload(data)
	if uint64(len(msg)) < uint64(pkt.PayloadLen) {
		e.stats.DNS.Cut++
		return
	}
	e.dnsMessage(msg, ts)
}

// dnsSegment reads the DNS messages of a TCP segment from port 53.
func (e *Engine) dnsSegment(pkt *packet.Packet, data []byte, ts int64) {
	if pkt.PayloadLen == 0 || pkt.Tunnel.Encaps != 0 {
		return // the handshake, ACKs, FIN; or inside a tunnel, never read
	}
	p := pkt.Payload(data)
	if uint64(len(p)) < uint64(pkt.PayloadLen) || !dns.WholeTCP(p) {
		e.stats.DNS.Cut++
		return
	}
	for len(p) > 0 {
		var msg []byte
		msg, p = dns.NextTCP(p)
		e.dnsMessage(msg, ts)
	}
}

// dnsMessage parses one DNS message seen at capture time ts and caches the
// names it gives.
func (e *Engine) dnsMessage(msg []byte, ts int64) {
	a := &e.dns.answer
	switch a.Parse(msg) {
	case dns.Malformed:
		e.stats.DNS.Malformed++
		return
	case dns.Unnamed:
		return
	}
	e.stats.DNS.Answers++
	for i := range a.N {
		if e.nameable(a.Addrs[i]) {
			e.dns.cache.Put(a.Addrs[i], a.Name(), a.TTLs[i], ts)
		}
	}
}

// nameable reports whether a name for addr could be reported: addr is a
// monitored remote (any, when no remotes are configured).
func (e *Engine) nameable(addr [16]byte) bool {
	if len(e.remotes) == 0 {
		return true
	}
	a := netip.AddrFrom16(addr).Unmap()
	for _, p := range e.remotes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// names returns the DNS names of the remotes of flows (see
// Snapshot.DNSNames).
func (d *dnsNames) names(flows []flow.Summary) map[netip.Addr]string {
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
