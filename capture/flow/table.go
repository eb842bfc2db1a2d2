package flow

import (
	"cmp"
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"unsafe"

	"github.com/gometro/go-metro/capture/packet"
)

// Locality tells which addresses are ours. Sides, called on the hot path
// for a packet's source and destination (16-byte form), must not allocate
// or lock. When its answers change, the table's owner calls
// LocalityChanged before the next Process.
type Locality interface {
	Sides(src, dst *[16]byte) (srcLocal, dstLocal bool)
}

// Monitored tells whether a remote endpoint is one we watch. It is only
// consulted when a flow would be created, never for a known flow.
type Monitored func(remote netip.AddrPort) bool

// TableConfig sizes a Table.
type TableConfig struct {
	MaxFlows int   // hard cap on tracked flows
	IdleTTL  int64 // ns: flows with no packet for this long are dropped
	ExpTTL   int64 // ns: closed flows with no packet for this long are dropped
	// MaxFlights and MaxRecents cap the flows that hold full-size rings
	// at once, for a large flight and for busy recent frames (rings.go);
	// 0 takes DefaultFlights(MaxFlows), DefaultRecents(MaxFlows).
	MaxFlights, MaxRecents int
}

// DefaultFlights is the number of full-size flight blocks a table of
// maxFlows flows hands out at most: one flow in 16 with a large flight at
// once, at least 16. DefaultRecents is the same for the recent frames: one
// flow in 4 busy at once. Past them, flows keep timing within their small
// rings (rings.go).
func DefaultFlights(maxFlows int) int { return max(maxFlows/16, 16) }
func DefaultRecents(maxFlows int) int { return max(maxFlows/4, 16) }

// ReservedBytes is the most memory a table of maxFlows flows with the
// default pools can come to hold: every flow, the index, every block.
func ReservedBytes(maxFlows int) int64 {
	return int64(maxFlows)*int64(FlowBytes) + int64(DefaultFlights(maxFlows))*int64(FlightBytes) +
		int64(DefaultRecents(maxFlows))*int64(RecentBytes)
}

// Table maps packets to flows. It is owned by one goroutine: Process,
// Sweep and Summaries must not be called concurrently. It allocates only in
// NewTable; Process never allocates.
//
// Memory: the flow slab, the pools of full-size rings and the index are
// sized from MaxFlows, MaxFlights and MaxRecents up front (FlowBytes per
// flow, its share of the index included, FlightBytes and RecentBytes per
// block: ReservedBytes), so memory is bounded whatever the traffic. All are mapped memory whose pages become
// resident only when used (slab.go), so a small workload keeps a small
// resident set.
//
// Eviction: when a new flow arrives and the table is full, the table looks
// at up to evictCandidates flows from a rotating hand and evicts the most
// expendable: a closed flow (FIN/RST) before a half-open one (never carried
// anything but SYN/RST in one direction, never timed) before an established
// one; among equals, the one idle longest. SYN floods and port scans thus
// recycle each other's slots and leave real connections alone.
type Table struct {
	cfg   TableConfig
	local Locality
	watch Monitored

	flows []Flow  // slab; flows[i].state&inUse marks live slots
	free  []int32 // free slab indexes (stack)
	used  int32   // slab high-water mark
	// The pools of full-size rings (rings.go).
	flights pool[flightRings]
	recents pool[recentRings]

	// index is open addressing with linear probing. A slot holds
	// (hash>>32)<<32 | (flowIndex+1); 0 is empty.
	index []uint64
	// mappings keep the memory of flows and rings, and of the index, mapped
	// while the table lives (slab.go).
	mappings [2]*mapping
	mask     uint64
	seed     uint64

	// lastIdx is the latest flow found: packets come in bursts of one
	// flow (both directions share a key), and comparing with its key is
	// cheaper than hashing and probing. Removing the flow resets it.
	lastIdx int32 // -1: none
	key     Key   // Process's scratch key
	// lastOneSided: the flow at lastIdx has one local end, its key's
	// Local, as Sides answered for the packet that found it last. A
	// packet between the same two endpoints gets the same answer, so
	// Process matches it to that flow without asking (see Process).
	lastOneSided bool

	hand     int32 // eviction clock hand
	counters Counters
	sc       sampleCounters
}

// evictCandidates bounds the work of one eviction.
const evictCandidates = 64

const flowSize = unsafe.Sizeof(Flow{})

// FlowBytes is the memory one tracked flow costs with its small rings:
// its slab entry plus its share of the index (two 8-byte slots per flow).
// A flow with a large flight costs FlightBytes more, a busy one
// RecentBytes more (rings.go).
const FlowBytes = int(flowSize) + 16

// NewTable allocates a table for at most cfg.MaxFlows flows.
func NewTable(cfg TableConfig, local Locality, watch Monitored) *Table {
	if cfg.MaxFlows < 1 {
		cfg.MaxFlows = 1
	}
	slots := uint64(1) << bits.Len64(uint64(cfg.MaxFlows)*2-1)
	t := &Table{
		cfg:     cfg,
		local:   local,
		watch:   watch,
		free:    make([]int32, 0, cfg.MaxFlows),
		mask:    slots - 1,
		seed:    rand.Uint64() | 1, // random per table: crafted keys cannot aim at one chain
		lastIdx: -1,
	}
	// Mapped memory where possible: resident only as flows use it (slab.go).
	flights, recents := cfg.MaxFlights, cfg.MaxRecents
	if flights <= 0 {
		flights = DefaultFlights(cfg.MaxFlows)
	}
	if recents <= 0 {
		recents = DefaultRecents(cfg.MaxFlows)
	}
	var fb []flightRings
	var rb []recentRings
	t.flows, fb, rb, t.mappings[0] = makeRegion(cfg.MaxFlows, flights, recents)
	t.flights, t.recents = newPool(fb), newPool(rb)
	t.sc.flights, t.sc.recents = &t.flights, &t.recents
	t.index, t.mappings[1] = makeSlab[uint64](int(slots))
	return t
}

// LocalityChanged tells the table that Sides may answer differently from
// now on: the next packet asks it again.
func (t *Table) LocalityChanged() { t.lastOneSided = false }

// matches reports whether o, the key of a segment (ours if outgoing), is
// flow key k's: field by field, the tunnel part only for tunnelled keys
// (most traffic is not tunnelled, and comparing the whole key with
// memequal cost about a tenth of the per-packet time), and the segment's
// tunnel identifier (o's ID) against k's for its direction (see
// TunnelKey).
func (k *Key) matches(o *Key, outgoing bool) bool {
	if !k.ends(&o.Local, &o.Remote, o.LocalPort, o.RemotePort) || k.Tunnel.Encaps != o.Tunnel.Encaps {
		return false
	}
	if k.Tunnel.Encaps == 0 {
		return true
	}
	id := k.Tunnel.IDIn
	if outgoing {
		id = k.Tunnel.ID
	}
	return id == o.Tunnel.ID && k.Tunnel.sameTunnel(&o.Tunnel)
}

// sameTunnel compares tunnel keys but for their identifiers.
func (k *TunnelKey) sameTunnel(o *TunnelKey) bool {
	return k.OuterA == o.OuterA && k.OuterB == o.OuterB && k.Encaps == o.Encaps && k.IDOf == o.IDOf
}

// ends reports whether k's local and remote ends are these, the tunnel
// part aside.
func (k *Key) ends(local, remote *[16]byte, localPort, remotePort uint16) bool {
	return k.Local == *local && k.Remote == *remote && k.LocalPort == localPort && k.RemotePort == remotePort
}

// hash folds the key with two 64x64->128 multiplies (wyhash's mum), keyed
// by the table's random seed.
func (t *Table) hash(k *Key) uint64 {
	ports := uint64(k.LocalPort)<<16 | uint64(k.RemotePort)
	a := binary.LittleEndian.Uint64(k.Local[8:16]) ^ t.seed
	b := binary.LittleEndian.Uint64(k.Remote[8:16]) ^ 0xe7037ed1a0b428db
	c := binary.LittleEndian.Uint64(k.Local[0:8]) ^ binary.LittleEndian.Uint64(k.Remote[0:8])<<1 ^ ports ^ 0xa0761d6478bd642f
	if k.Tunnel.Encaps != 0 {
		c ^= t.hashTunnel(&k.Tunnel)
	}
	hi, lo := bits.Mul64(a, b)
	x := hi ^ lo ^ c
	hi, lo = bits.Mul64(x^t.seed, 0x8ebc6af09c88c6e3^ports)
	return hi ^ lo
}

// hashTunnel folds the tunnel part of a key, for tunnelled flows only:
// the untunnelled path pays one test. The identifiers are left out, so
// that both directions of a connection that uses one per direction land in
// one probe chain, where join finds them (see TunnelKey); tenants whose
// inner and outer addresses are all the same share a chain too, and are
// told apart by matches.
func (t *Table) hashTunnel(k *TunnelKey) uint64 {
	a := binary.LittleEndian.Uint64(k.OuterA[8:16]) ^ binary.LittleEndian.Uint64(k.OuterA[0:8])<<1 ^ t.seed
	b := binary.LittleEndian.Uint64(k.OuterB[8:16]) ^ binary.LittleEndian.Uint64(k.OuterB[0:8])<<1 ^
		(uint64(k.Encaps)<<16 | uint64(k.IDOf)) ^ 0x589965cc75374cc3
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// lookup finds the flow for k, the key of segment p (ours if outgoing),
// creating it if it is new and monitored.
func (t *Table) lookup(k *Key, p *packet.Packet, ts int64, outgoing bool) *Flow {
	if t.lastIdx >= 0 {
		if f := &t.flows[t.lastIdx]; f.key.matches(k, outgoing) {
			return f
		}
	}
	h := t.hash(k)
	tag := h &^ 0xffffffff
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		s := t.index[i]
		if s == 0 {
			break
		}
		if s&^0xffffffff == tag {
			idx := int32(uint32(s)) - 1
			if f := &t.flows[idx]; f.key.matches(k, outgoing) {
				t.lastIdx = idx
				return f
			}
		}
	}
	if k.Tunnel.IDOf != 0 {
		if idx := t.join(k, p, h, outgoing); idx >= 0 {
			t.lastIdx = idx
			return &t.flows[idx]
		}
	}
	if t.watch != nil && !t.watch(addrPort(k.Remote, k.RemotePort)) {
		t.counters.Filtered++
		return nil
	}
	idx := t.allocate(ts)
	f := &t.flows[idx]
	f.reset(*k, ts)
	t.insert(h, idx)
	t.lastIdx = idx
	t.counters.Created++
	t.counters.Flows++
	return f
}

// join looks in k's probe chain (hash h) for the flow of a connection
// whose segments carry one tunnel identifier each way: a flow of k's
// addresses and tunnel that has seen only the other direction, under
// another identifier, and that segment p (ours if outgoing) answers (see
// answers). It takes p's identifier for p's direction and returns the
// flow's index, or -1.
func (t *Table) join(k *Key, p *packet.Packet, h uint64, outgoing bool) int32 {
	tag := h &^ 0xffffffff
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		s := t.index[i]
		if s == 0 {
			return -1
		}
		if s&^0xffffffff != tag {
			continue
		}
		idx := int32(uint32(s)) - 1
		f := &t.flows[idx]
		if !f.key.ends(&k.Local, &k.Remote, k.LocalPort, k.RemotePort) || !f.key.Tunnel.sameTunnel(&k.Tunnel) || !f.answers(p, outgoing) {
			continue
		}
		if outgoing {
			f.key.Tunnel.ID = k.Tunnel.ID
		} else {
			f.key.Tunnel.IDIn = k.Tunnel.ID
		}
		return idx
	}
}

func (t *Table) insert(h uint64, idx int32) {
	tag := h &^ 0xffffffff
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		if t.index[i] == 0 {
			t.index[i] = tag | uint64(uint32(idx+1))
			return
		}
	}
}

// allocate returns a free slab index, evicting a flow if the table is full.
func (t *Table) allocate(ts int64) int32 {
	if n := len(t.free); n > 0 {
		idx := t.free[n-1]
		t.free = t.free[:n-1]
		return idx
	}
	if int(t.used) < len(t.flows) {
		t.used++
		return t.used - 1
	}
	victim := t.pickVictim(ts)
	f := &t.flows[victim]
	switch {
	case f.state&closed != 0:
		t.counters.EvictedClosed++
	case f.halfOpen():
		t.counters.EvictedHalfOpen++
	default:
		t.counters.EvictedActive++
	}
	t.unlink(victim)
	return victim
}

func evictClass(f *Flow) int {
	switch {
	case f.state&closed != 0:
		return 0
	case f.halfOpen():
		return 1
	default:
		return 2
	}
}

func (t *Table) pickVictim(ts int64) int32 {
	best := int32(-1)
	bestClass, bestSeen := 3, int64(0)
	n := t.used
	for k := 0; k < evictCandidates; k++ {
		i := t.hand
		t.hand++
		if t.hand >= n {
			t.hand = 0
		}
		f := &t.flows[i]
		if f.state&inUse == 0 {
			continue
		}
		c := evictClass(f)
		if best < 0 || c < bestClass || c == bestClass && f.lastSeen < bestSeen {
			best, bestClass, bestSeen = i, c, f.lastSeen
		}
		if bestClass == 0 && ts-bestSeen > 0 {
			// A closed flow is as expendable as it gets.
			break
		}
	}
	return best
}

// remove deletes flow idx and frees its slot.
func (t *Table) remove(idx int32) {
	t.unlink(idx)
	t.free = append(t.free, idx)
}

// unlink deletes flow idx from the index (backward-shift deletion keeps
// linear probing correct without tombstones); the caller owns the slot.
func (t *Table) unlink(idx int32) {
	f := &t.flows[idx]
	h := t.hash(&f.key)
	want := uint64(uint32(idx + 1))
	i := h & t.mask
	for t.index[i]&0xffffffff != want {
		i = (i + 1) & t.mask
	}
	for {
		t.index[i] = 0
		j := i
		for {
			j = (j + 1) & t.mask
			s := t.index[j]
			if s == 0 {
				goto done
			}
			home := t.hash(&t.flows[int32(uint32(s))-1].key) & t.mask
			// Move s back to i if its home is not in (i, j] cyclically.
			if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
				t.index[i] = s
				i = j
				break
			}
		}
	}
done:
	if t.lastIdx == idx {
		t.lastIdx, t.lastOneSided = -1, false
	}
	f.release(&t.sc)
	f.state = 0
	t.counters.Flows--
}

// Sweep drops idle flows (no packet for IdleTTL) and closed flows (no
// packet for ExpTTL) as of capture time now (ns), and moves the rings of
// flows that no longer need full-size ones back into them (rings.go).
func (t *Table) Sweep(now int64) {
	for i := int32(0); i < t.used; i++ {
		f := &t.flows[i]
		if f.state&inUse == 0 {
			continue
		}
		idle := now - f.lastSeen
		switch {
		case idle > t.cfg.IdleTTL || f.state&closed != 0 && idle > t.cfg.ExpTTL:
			t.remove(i)
			t.counters.Expired++
		case f.flightOff|f.recentOff != 0:
			f.shrink(now, &t.sc)
		}
	}
}

// Counters returns the table's counters.
func (t *Table) Counters() Counters {
	c := t.counters
	c.Samples = t.sc.samples
	c.KarnSkipped = t.sc.karnSkipped
	c.Retransmits = t.sc.retransmits
	c.Decimations = t.sc.decimations
	c.FlightsInUse, c.RecentsInUse = t.flights.inUse, t.recents.inUse
	c.RingsDenied = t.sc.ringsDenied
	return c
}

// AppendSummaries appends a summary of every live flow to dst.
func (t *Table) AppendSummaries(dst []Summary) []Summary {
	dst, _ = t.AppendSummariesFrom(dst, 0, int(t.used), true)
	return dst
}

// AppendSummariesFrom is AppendSummaries for a part of the table: the
// summaries of at most n live flows, from slab position from on. next is
// where the following part starts, or -1 once the table's end is reached.
// takeSamples hands the flows' RTT samples over (Health.RTTSampled), as
// the one reader that reports them does; without it they stay for it.
// Parts taken between packets are each consistent, and a flow is in at
// most one part of a listing; one that starts meanwhile at a position
// already passed is in the next listing.
func (t *Table) AppendSummariesFrom(dst []Summary, from int32, n int, takeSamples bool) (_ []Summary, next int32) {
	i := from
	for ; i < t.used && n > 0; i++ {
		if f := &t.flows[i]; f.state&inUse != 0 {
			dst = append(dst, f.summarize(takeSamples))
			dst[len(dst)-1].Slot = i
			n--
		}
	}
	if i >= t.used {
		return dst, -1
	}
	return dst, i
}

// Sorted appends to ids the slab positions of the live flows, in the
// order flows are listed in (see Order), for SummaryOf. The positions stay
// valid until the table next processes a packet or sweeps.
func (t *Table) Sorted(ids []int32) []int32 {
	start := len(ids)
	for i := int32(0); i < t.used; i++ {
		if t.flows[i].state&inUse != 0 {
			ids = append(ids, i)
		}
	}
	part := ids[start:]
	slices.SortFunc(part, func(a, b int32) int {
		fa, fb := &t.flows[a], &t.flows[b]
		return compareOrder(fa.order(), fb.order())
	})
	return ids
}

// SummaryOf is the summary of the flow at slab position id (from Sorted),
// taken as AppendSummaries takes it.
func (t *Table) SummaryOf(id int32) Summary {
	s := t.flows[id].summary()
	s.Slot = id
	return s
}

// order is a flow's place in a listing (see Order).
type order struct {
	local, remote netip.AddrPort
	firstSeen     int64
	tunnel        *TunnelKey
}

func (f *Flow) order() order {
	return order{addrPort(f.key.Local, f.key.LocalPort), addrPort(f.key.Remote, f.key.RemotePort), f.firstSeen, &f.key.Tunnel}
}

// Order compares two flows for a listing: by local end, remote end, first
// packet, then tunnel (as TunnelKey.String spells it), as replay lists
// them; negative when a comes first.
func Order(a, b *Summary) int {
	return compareOrder(order{a.Local, a.Remote, a.FirstSeen, &a.Tunnel}, order{b.Local, b.Remote, b.FirstSeen, &b.Tunnel})
}

func compareOrder(a, b order) int {
	if c := a.local.Compare(b.local); c != 0 {
		return c
	}
	if c := a.remote.Compare(b.remote); c != 0 {
		return c
	}
	if c := cmp.Compare(a.firstSeen, b.firstSeen); c != 0 {
		return c
	}
	if *a.tunnel == *b.tunnel {
		return 0
	}
	return strings.Compare(a.tunnel.String(), b.tunnel.String())
}

func addrPort(a [16]byte, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom16(a).Unmap(), port)
}
