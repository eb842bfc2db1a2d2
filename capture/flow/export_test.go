package flow

import "net/netip"

// Hooks for the external tests (rings_synth_test.go).

// GrowLastForTest gives the flow found last full-size rings.
func GrowLastForTest(t *Table) bool {
	f := &t.flows[t.lastIdx]
	return f.growFlight(&t.sc) && f.growRecent(&t.sc)
}

// FlightsUsedForTest is how many flight blocks the table ever handed out
// at once (the pool's high-water mark).
func FlightsUsedForTest(t *Table) int { return int(t.flights.used) }

// BigFlowsForTest tells, for each live flow by its ends, whether it holds
// a full-size flight block.
func BigFlowsForTest(t *Table) map[[2]netip.AddrPort]bool {
	m := map[[2]netip.AddrPort]bool{}
	for i := int32(0); i < t.used; i++ {
		if f := &t.flows[i]; f.state&inUse != 0 {
			m[[2]netip.AddrPort{addrPort(f.key.Local, f.key.LocalPort), addrPort(f.key.Remote, f.key.RemotePort)}] = f.flight() != nil
		}
	}
	return m
}
