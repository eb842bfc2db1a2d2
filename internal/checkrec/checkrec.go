// Package checkrec records what a run of an rttcheck check submits, for the
// programs that run the check outside the agent and then show or send on
// what it submitted: `go-metro check` prints it, the lab's probe child
// (tests/internal/probe) reports it to the test.
package checkrec

import (
	"sync"

	"github.com/gometro/go-metro/rttcheck"
)

// Metric is one metric submission.
type Metric struct {
	Name  string
	Type  string // gauge, count, monotonic_count or distribution
	Value float64
	Tags  []string
}

// ServiceCheck is one service check submission.
type ServiceCheck struct {
	Name    string
	Status  rttcheck.ServiceCheckStatus
	Tags    []string
	Message string
}

// Recorder is an rttcheck.Sender and rttcheck.ServiceCheckSender that keeps
// every submission in order, with a copy of its tags (never nil, so that
// JSON shows [] rather than null). The hostname is not kept: the check
// submits none. The zero value is ready to use and safe for concurrent use.
type Recorder struct {
	mu      sync.Mutex
	metrics []Metric
	checks  []ServiceCheck
}

var (
	_ rttcheck.Sender             = (*Recorder)(nil)
	_ rttcheck.ServiceCheckSender = (*Recorder)(nil)
)

func (r *Recorder) add(typ, name string, v float64, tags []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.metrics = append(r.metrics, Metric{Name: name, Type: typ, Value: v, Tags: append([]string{}, tags...)})
}

// Gauge records a gauge.
func (r *Recorder) Gauge(m string, v float64, _ string, t []string) { r.add("gauge", m, v, t) }

// Count records a count.
func (r *Recorder) Count(m string, v float64, _ string, t []string) { r.add("count", m, v, t) }

// MonotonicCount records a monotonic count.
func (r *Recorder) MonotonicCount(m string, v float64, _ string, t []string) {
	r.add("monotonic_count", m, v, t)
}

// Distribution records a distribution value.
func (r *Recorder) Distribution(m string, v float64, _ string, t []string) {
	r.add("distribution", m, v, t)
}

// Commit does nothing: the submissions are kept, not sent.
func (r *Recorder) Commit() {}

// ServiceCheck records a service check.
func (r *Recorder) ServiceCheck(name string, st rttcheck.ServiceCheckStatus, _ string, tags []string, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checks = append(r.checks, ServiceCheck{Name: name, Status: st, Tags: append([]string{}, tags...), Message: msg})
}

// Metrics returns the metric submissions so far, in order.
func (r *Recorder) Metrics() []Metric {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Metric(nil), r.metrics...)
}

// ServiceChecks returns the service check submissions so far, in order.
func (r *Recorder) ServiceChecks() []ServiceCheck {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]ServiceCheck(nil), r.checks...)
}
