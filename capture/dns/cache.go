package dns

import (
	"hash/maphash"
	"time"
)

// Bounds of the Cache.
const (
	// CacheSize is the number of addresses a Cache holds. An entry holds
	// a name of up to MaxName bytes in place: 288 bytes, 1.1 MiB in all,
	// allocated once and touched page by page as it fills.
	CacheSize = 4096
	// MinTTL is the least time a name is kept for: an answer with TTL 0
	// or 1 (some load balancers send them) still names the connection
	// its client opens right after it, whose first packet may come a few
	// seconds later (TCP SYN retries, Happy Eyeballs).
	MinTTL = 5 * time.Second
	// MaxTTL is the most: an address that a record gave a name a day ago
	// may belong to someone else by now (cloud addresses are reused), so
	// a long TTL is cut to an hour.
	MaxTTL = time.Hour

	// probes is the window of slots where an address may sit, from its
	// hash on: lookups read at most this many slots, and a full window
	// evicts the entry that expires first.
	probes = 8
)

// Cache maps addresses to the names that DNS answers gave them, for as
// long as the answers' TTLs (within MinTTL and MaxTTL) last. It has a fixed
// size (CacheSize) and never allocates after NewCache; it is not safe for
// concurrent use (the capture engine's goroutine owns it).
//
// Slots are open-addressed: an address lives in one of the probes slots
// from its hash on. A new address takes the first empty or expired slot of
// its window, else the one that expires first. An expired entry stays until
// its slot is needed, because a connection that began while it was live
// keeps its name (Lookup).
type Cache struct {
	slots []entry
	seed  maphash.Seed
	used  int
}

type entry struct {
	addr    [16]byte
	expires int64 // capture time, ns; 0: a free slot
	nameLen uint8
	name    [MaxName]byte
}

// NewCache returns an empty cache of CacheSize slots.
func NewCache() *Cache {
	return &Cache{slots: make([]entry, CacheSize), seed: maphash.MakeSeed()}
}

// Put names addr (IPv4 in IPv4-mapped form) name, from an answer seen at
// capture time now (ns) with a TTL in seconds. A name an address already
// has is kept at least as long as before; a different name replaces it.
func (c *Cache) Put(addr [16]byte, name []byte, ttl uint32, now int64) {
	if len(name) == 0 || len(name) > MaxName {
		return
	}
	life := min(max(time.Duration(ttl)*time.Second, MinTTL), MaxTTL)
	expires := now + int64(life)
	first := int(maphash.Bytes(c.seed, addr[:]) & uint64(CacheSize-1))
	victim := -1
	for k := range probes {
		i := (first + k) & (CacheSize - 1)
		e := &c.slots[i]
		if e.expires == 0 {
			// Slots are taken in window order and never freed, so the
			// address is in no later slot; a free slot costs no name.
			victim = i
			break
		}
		if e.addr == addr {
			if string(e.name[:e.nameLen]) == string(name) {
				e.expires = max(e.expires, expires)
				return
			}
			victim = i
			break
		}
		if victim < 0 || e.expires < c.slots[victim].expires {
			victim = i
		}
	}
	e := &c.slots[victim]
	if e.expires == 0 {
		c.used++
	}
	e.addr, e.expires, e.nameLen = addr, expires, uint8(len(name))
	copy(e.name[:], name)
}

// Lookup returns addr's name for a connection whose first packet was seen
// at capture time since (ns): the name of an answer that was live then or
// later, ok false when there is none.
func (c *Cache) Lookup(addr [16]byte, since int64) (name []byte, ok bool) {
	first := int(maphash.Bytes(c.seed, addr[:]) & uint64(CacheSize-1))
	for k := range probes {
		e := &c.slots[(first+k)&(CacheSize-1)]
		if e.expires == 0 {
			return nil, false
		}
		if e.addr == addr {
			if since >= e.expires {
				return nil, false
			}
			return e.name[:e.nameLen], true
		}
	}
	return nil, false
}

// Len is the number of addresses held, live or expired: at most CacheSize.
func (c *Cache) Len() int { return c.used }
