package rttcheck

import (
	"math/rand/v2"

	"github.com/gometro/go-metro/capture/flow"
)

// RTT distribution: each flow hands over, per run, a uniform random subset
// of its samples (flow.ReservoirSize of them, reservoir sampling in the
// engine, a few ns per sample). A series' values are drawn from its flows'
// subsets so that every RTT sample of the run had the same chance to be
// sent: a kept value of a flow that took seen samples and kept k stands for
// seen/k of them. Systematic sampling over those weights picks at most
// ReportOptions.DistributionValues values; when nothing was subsampled
// (every flow kept all its samples, as request/response connections do)
// the values are sent as they are. A value that stands for more samples
// than one draw step can be sent twice: the agent's Distribution takes no
// weight, and repeating it is what keeps the percentiles unbiased.
//
// Percentiles over one series are therefore those of its samples. Over
// several series (all hosts, a service) each series weighs as at most
// DistributionValues values per run: a busy host pair weighs less than its
// sample count. That is the price of a bounded cost; it is stated in the
// README.

// distFlow is one flow's part of a series' distribution.
type distFlow struct {
	seen uint64
	vals [flow.ReservoirSize]uint32 // µs; the first min(seen, ReservoirSize)
}

func (d *distFlow) kept() int { return int(min(d.seen, flow.ReservoirSize)) }

// pickDistribution appends to dst at most max values (ms) drawn from flows
// as described above.
func pickDistribution(dst []float64, flows []distFlow, max int, rng *rand.Rand) []float64 {
	if max <= 0 {
		return dst
	}
	var total uint64
	kept, exact := 0, true
	for i := range flows {
		f := &flows[i]
		total += f.seen
		kept += f.kept()
		exact = exact && f.seen == uint64(f.kept())
	}
	if kept == 0 {
		return dst
	}
	if exact && kept <= max {
		for i := range flows {
			for _, v := range flows[i].vals[:flows[i].kept()] {
				dst = append(dst, float64(v)/1e3)
			}
		}
		return dst
	}
	n := uint64(max)
	if total < n {
		n = total
	}
	// Points u, u+step, ... over the cumulative weight [0, total): each
	// lands in exactly one kept value's share of it.
	step := float64(total) / float64(n)
	next := rng.Float64() * step
	var cum float64
	picked := uint64(0)
	for i := range flows {
		f := &flows[i]
		k := f.kept()
		w := float64(f.seen) / float64(k)
		for _, v := range f.vals[:k] {
			cum += w
			for picked < n && next < cum {
				dst = append(dst, float64(v)/1e3)
				picked++
				next += step
			}
		}
	}
	return dst
}
