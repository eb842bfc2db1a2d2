package capture

import "time"

// Record times: a sample is the difference of two records' capture times,
// so a record whose time is impossible makes an impossible sample (a
// flipped bit in a replayed record's seconds: 2^30 s of RTT; a capture
// clock stepped back: samples of zero or less). clockGuard keeps such
// records away from the flow table: they are counted (Stats.TimeBackwards,
// Stats.TimeForward) and skipped, as a frame the capture missed would be.
const (
	// MaxReorder: a record up to this much older than the newest one is
	// processed as usual. Captures on several CPUs or merged from several
	// interfaces interleave that closely; a sample it spoils is negative
	// and the estimator ignores it.
	MaxReorder = time.Millisecond
	// MaxTimeJump: in a replay, a record more than this after the newest
	// one is out of line (an hour without a packet in one capture file is
	// rarer than a corrupt record). A live capture's kernel timestamps
	// have no such limit: an idle interface may see nothing for days.
	MaxTimeJump = time.Hour
	// timeResync: after this many out-of-line records in a row that are in
	// line with each other, the capture's clock really moved (stepped back
	// by NTP, two captures concatenated, a long gap): the guard follows it
	// from the next such record on. A single corrupt record never does.
	timeResync = 4
)

// clockGuard decides, record by record, whether a record's time can be
// trusted. It is on the per-packet path: a few comparisons, no allocation.
type clockGuard struct {
	set     bool
	clock   int64 // the newest trusted record's time, ns
	maxJump int64 // MaxTimeJump (ns) for replays; 0: no forward limit
	cand    int64 // the latest out-of-line record's time
	run     int   // out-of-line records in a row in line with each other
}

// inLine reports whether ts is at most MaxReorder before ref and, with a
// forward limit, at most maxJump after it.
func (g *clockGuard) inLine(ts, ref int64) bool {
	d := ts - ref
	return d >= -int64(MaxReorder) && (g.maxJump == 0 || d <= g.maxJump)
}

// check reports whether the record stamped ts may be processed and, when
// not, whether it went backwards (else it jumped forward).
func (g *clockGuard) check(ts int64) (ok, backwards bool) {
	switch {
	case !g.set:
		g.set, g.clock = true, ts
		return true, false
	case g.inLine(ts, g.clock):
		g.clock, g.run = max(g.clock, ts), 0
		return true, false
	}
	if g.run > 0 && g.inLine(ts, g.cand) {
		g.run, g.cand = g.run+1, max(g.cand, ts)
	} else {
		g.run, g.cand = 1, ts
	}
	if g.run > timeResync {
		g.clock, g.run = ts, 0
		return true, false
	}
	return false, ts < g.clock
}
