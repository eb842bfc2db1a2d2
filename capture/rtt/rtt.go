// Package rtt keeps round-trip-time statistics the way a TCP stack does:
// RFC 6298 smoothed RTT (alpha 1/8) and RTT variation (beta 1/4), plus the
// last, minimum and maximum sample and a sample count. Times are nanoseconds.
//
// An Estimator is a plain value with no pointers so that flow state can hold
// it inline and copy it into snapshots without allocating.
package rtt

// Estimator accumulates RTT samples for one flow (or, after Combine, for
// several flows of one host pair). The zero value has no samples.
type Estimator struct {
	Samples uint64 // samples taken
	Last    int64  // last sample, ns
	Min     int64  // smallest sample, ns
	Max     int64  // largest sample, ns
	SRTT    int64  // RFC 6298 smoothed RTT, ns
	RTTVAR  int64  // RFC 6298 RTT variation, ns
	LastAt  int64  // capture time of the last sample, ns since the Unix epoch
}

// Add folds one sample (ns) taken at capture time at (ns) into the estimate.
// Non-positive samples are ignored: a capture clock that steps backwards must
// not produce a negative RTT.
func (e *Estimator) Add(sample, at int64) { e.AddBounded(sample, sample, at) }

// AddBounded folds in a sample whose true value is known only to lie at or
// below ceiling (ns): estimate, the best guess of it, moves SRTT and RTTVAR
// as a sample of Add does, so that they follow a TCP stack that times
// every ACK; Last, Min and Max take ceiling, so that no figure of one
// sample is ever below the truth (readers take Min, above all, for the
// path's floor, and no packet crosses a path faster than that). A
// non-positive estimate or ceiling is ignored, as in Add.
func (e *Estimator) AddBounded(estimate, ceiling, at int64) {
	if estimate <= 0 || ceiling <= 0 {
		return
	}
	sample := estimate
	if e.Samples == 0 {
		// RFC 6298 2.2: SRTT <- R, RTTVAR <- R/2.
		e.SRTT = sample
		e.RTTVAR = sample / 2
		e.Min, e.Max = ceiling, ceiling
	} else {
		// RFC 6298 2.3: RTTVAR <- (1-beta)*RTTVAR + beta*|SRTT-R'| uses the
		// OLD SRTT, so it is updated first.
		dev := e.SRTT - sample
		if dev < 0 {
			dev = -dev
		}
		e.RTTVAR += (dev - e.RTTVAR) / 4
		e.SRTT += (sample - e.SRTT) / 8
		e.Min = min(e.Min, ceiling)
		e.Max = max(e.Max, ceiling)
	}
	e.Samples++
	e.Last = ceiling
	e.LastAt = at
}

// Combine merges the estimators of several flows of one host pair into one.
//
// SRTT is the sample-weighted mean of the flows' SRTTs, so a flow that was
// timed once does not weigh as much as one timed thousands of times. RTTVAR is
// pooled the way a mean deviation pools: the weighted mean of the flows' own
// RTTVARs plus the weighted mean distance of each flow's SRTT from the pooled
// SRTT, so flows that disagree with each other raise the jitter. Last is the
// most recent sample across flows; Min, Max and Samples are what they say.
func Combine(flows []Estimator) Estimator {
	var p Pool
	for i := range flows {
		p.Add(&flows[i])
	}
	for i := range flows {
		p.Spread(flows[i].Samples, flows[i].SRTT, flows[i].RTTVAR)
	}
	return p.Estimator()
}

// Pool is Combine for estimators that come one at a time and are not kept
// together: Add takes each once, then Spread takes the samples, SRTT and
// RTTVAR of each again, since the RTTVAR pools each flow's distance from
// the pooled SRTT, known only once every flow was added. A reader of a
// million flows keeps 24 bytes of each for the second pass instead of its
// estimator.
type Pool struct {
	out                    Estimator
	total, srttSum, varSum float64
}

// Add is the first pass over one flow's estimator.
func (p *Pool) Add(f *Estimator) {
	if f.Samples == 0 {
		return
	}
	w := float64(f.Samples)
	p.total += w
	p.srttSum += w * float64(f.SRTT)
	out := &p.out
	if out.Samples == 0 || f.Min < out.Min {
		out.Min = f.Min
	}
	if f.Max > out.Max {
		out.Max = f.Max
	}
	if out.Samples == 0 || f.LastAt > out.LastAt {
		out.Last, out.LastAt = f.Last, f.LastAt
	}
	out.Samples += f.Samples
}

// Merge adds to p the flows another pool has added, before either spreads
// any: two host pairs that turn out to be one series.
func (p *Pool) Merge(o *Pool) {
	if o.out.Samples == 0 {
		return
	}
	if p.out.Samples == 0 {
		*p = *o
		return
	}
	p.total += o.total
	p.srttSum += o.srttSum
	p.varSum += o.varSum
	out := &p.out
	out.Min = min(out.Min, o.out.Min)
	out.Max = max(out.Max, o.out.Max)
	if o.out.LastAt > out.LastAt {
		out.Last, out.LastAt = o.out.Last, o.out.LastAt
	}
	out.Samples += o.out.Samples
}

// Spread is the second pass over one flow: its samples, SRTT and RTTVAR,
// as Add took them.
func (p *Pool) Spread(samples uint64, srtt, rttvar int64) {
	if samples == 0 {
		return
	}
	spread := float64(srtt) - p.srttSum/p.total
	if spread < 0 {
		spread = -spread
	}
	p.varSum += float64(samples) * (float64(rttvar) + spread)
}

// Estimator is the pooled estimate, once every flow was added and spread.
func (p *Pool) Estimator() Estimator {
	if p.out.Samples == 0 {
		return Estimator{}
	}
	out := p.out
	out.SRTT = int64(p.srttSum/p.total + 0.5)
	out.RTTVAR = int64(p.varSum/p.total + 0.5)
	return out
}
