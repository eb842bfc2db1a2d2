package flow

import "testing"

// TestCopiesOnAnotherInterface: where the capture knows each frame's
// interface (live "any", pcapng, Linux cooked v2), a segment of old
// sequence space seen on another interface than our newest new data is a
// copy (the same frame further along its path), and one seen on that
// interface a retransmission, however many frames and duplicate ACKs lie
// between and whatever their TSvals: IPv6 here, no IP ID, copies that
// follow one of the peer's duplicate ACKs within the TSval tick of our
// newest frame, beyond the ring of recent segments, where nothing else
// tells them from fast retransmissions. Interface 2 is the sending side
// (A's veth seen from the forwarding host M), 3 the far side.
func TestCopiesOnAnotherInterface(t *testing.T) {
	const isn = 1000
	var evs []hp
	// Ten segments, one TSval tick, seen as A sends them (interface 2).
	for i := uint32(0); i < 10; i++ {
		evs = append(evs, hp{out: true, flags: PA, seq: isn + 100*i, ack: 1, n: 100, tsval: 10, tsecr: 5, iface: 2, atMS: 0.01 * float64(i)})
	}
	evs = append(evs,
		// The peer acknowledges the first, then repeats its ACK: a hole
		// at isn+100, within the same tick (what fast retransmit acts on).
		hp{flags: A, seq: 1, ack: isn + 100, tsval: 6, tsecr: 10, atMS: 0.2, wantSample: 0.2},
		hp{flags: A, seq: 1, ack: isn + 100, tsval: 7, tsecr: 10, atMS: 0.25},
		// The segments come out on the far side (interface 3): copies,
		// although past the ring, after a SACK, with the newest TSval.
		hp{out: true, flags: PA, seq: isn, ack: 1, n: 100, tsval: 10, tsecr: 5, iface: 3, atMS: 0.3, wantDup: true},
		hp{out: true, flags: PA, seq: isn + 100, ack: 1, n: 100, tsval: 10, tsecr: 5, iface: 3, atMS: 0.31, wantDup: true},
		// A's fast retransmission of the hole, same tick, on interface 2:
		// a retransmission; its copy on interface 3 is a copy.
		hp{out: true, flags: PA, seq: isn + 100, ack: 1, n: 100, tsval: 10, tsecr: 5, iface: 2, atMS: 0.4, wantRetrans: true},
		hp{out: true, flags: PA, seq: isn + 100, ack: 1, n: 100, tsval: 10, tsecr: 5, iface: 3, atMS: 0.41, wantDup: true},
		hp{out: true, flags: PA, seq: isn + 900, ack: 1, n: 100, tsval: 10, tsecr: 5, iface: 3, atMS: 0.5, wantDup: true},
		// New data on interface 2, then its copy.
		hp{out: true, flags: PA, seq: isn + 1000, ack: 1, n: 100, tsval: 11, tsecr: 5, iface: 2, atMS: 1.2},
		hp{out: true, flags: PA, seq: isn + 1000, ack: 1, n: 100, tsval: 11, tsecr: 5, iface: 3, atMS: 1.21, wantDup: true},
		// An RTO retransmission, identical bytes but for the TSval.
		hp{out: true, flags: PA, seq: isn + 1000, ack: 1, n: 100, tsval: 210, tsecr: 5, iface: 2, atMS: 200, wantRetrans: true},
	)
	tb := playHealth(t, true, evs)
	var dups, retrans uint64
	for _, e := range evs {
		if e.wantDup {
			dups++
		}
		if e.wantRetrans {
			retrans++
		}
	}
	if s := firstFlow(tb).summary(); s.Health.Duplicates != dups || s.Retransmits != retrans {
		t.Fatalf("%d duplicates, %d retransmissions; want %d and %d", s.Health.Duplicates, s.Retransmits, dups, retrans)
	}
}
