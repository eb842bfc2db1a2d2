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
	var out Estimator
	var total float64
	var srttSum float64
	for i := range flows {
		f := &flows[i]
		if f.Samples == 0 {
			continue
		}
		w := float64(f.Samples)
		total += w
		srttSum += w * float64(f.SRTT)
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
	if out.Samples == 0 {
		return Estimator{}
	}
	mean := srttSum / total
	var varSum float64
	for i := range flows {
		f := &flows[i]
		if f.Samples == 0 {
			continue
		}
		spread := float64(f.SRTT) - mean
		if spread < 0 {
			spread = -spread
		}
		varSum += float64(f.Samples) * (float64(f.RTTVAR) + spread)
	}
	out.SRTT = int64(mean + 0.5)
	out.RTTVAR = int64(varSum/total + 0.5)
	return out
}
