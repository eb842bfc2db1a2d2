// Package rttcheck is the go-metro check without the Datadog agent: it parses
// and validates the check's YAML configuration (Agent v5 go-metro.yaml
// compatible), runs the packet capture in the background for the life of the
// check, and on every Run turns a snapshot of the flow table into metrics and
// a service check through a small Sender interface. The agent's core check
// (module check/) and the standalone binary (cmd/go-metro) both wrap it.
package rttcheck

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime/debug"
	"sync"
	"time"

	"github.com/gometro/go-metro/capture"
)

// ServiceCheckName is the service check telling whether capture runs.
const ServiceCheckName = "go_metro.can_capture"

// Sender is the subset of the Datadog agent's sender.Sender the check uses;
// the real sender satisfies it.
type Sender interface {
	Gauge(metric string, value float64, hostname string, tags []string)
	Count(metric string, value float64, hostname string, tags []string)
	MonotonicCount(metric string, value float64, hostname string, tags []string)
	Commit()
}

// ServiceCheckStatus numbers equal the agent's servicecheck.ServiceCheckStatus.
type ServiceCheckStatus int

// Service check statuses, numbered as the agent numbers them.
const (
	StatusOK       ServiceCheckStatus = 0
	StatusWarning  ServiceCheckStatus = 1
	StatusCritical ServiceCheckStatus = 2
	StatusUnknown  ServiceCheckStatus = 3
)

func (s ServiceCheckStatus) String() string {
	switch s {
	case StatusOK:
		return "OK"
	case StatusWarning:
		return "WARNING"
	case StatusCritical:
		return "CRITICAL"
	}
	return "UNKNOWN"
}

// ServiceCheckSender submits service checks (the agent's sender has this method).
type ServiceCheckSender interface {
	ServiceCheck(name string, status ServiceCheckStatus, hostname string, tags []string, message string)
}

// Logger is what the check logs through (the agent's log package fits).
type Logger interface {
	Debugf(string, ...any)
	Infof(string, ...any)
	Warnf(string, ...any)
	Errorf(string, ...any)
}

// Options tune a Check for its host program.
type Options struct {
	// AddInstanceTags adds the instance's `tags` to every submission. The
	// standalone binary needs it; inside the agent CheckBase's sender adds
	// them already.
	AddInstanceTags bool
	// Logger receives the check's logs; nil discards them.
	Logger Logger
}

// engine is what the check needs of *capture.Engine; tests substitute fakes.
type engine interface {
	Run(ctx context.Context) error
	Snapshot(ctx context.Context) (*capture.Snapshot, error)
	SetRemotes(remotes []netip.Prefix) error
	Opened() <-chan struct{} // closed once the source has opened
}

type engineFactory func(capture.Config) (engine, error)

// resolver is the subset of *net.Resolver used; tests substitute fakes.
type resolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

// Timing of the background work. Variables so tests can shorten them.
var (
	backoffMin      = time.Second
	backoffMax      = 30 * time.Second
	snapshotTimeout = time.Second
	cancelWait      = 2 * time.Second
	clearAfter      = 500 * time.Millisecond
	// firstOpenWait bounds how long a Run waits for a capture that has
	// neither opened nor failed yet (host resolution, a slow open).
	firstOpenWait = 2 * time.Second
	// replayWait bounds how long a Run waits for a replay to finish.
	replayWait = 30 * time.Second
	dnsTimeout = 3 * time.Second
)

// noMatch is a remote prefix that no TCP peer has. It stands for "hosts are
// configured but none resolved yet": an empty Remotes list would mean "every
// remote", the opposite of what the user asked for.
var noMatch = netip.MustParsePrefix("0.0.0.0/32")

// Check is one configured instance of the go-metro check.
type Check struct {
	opts      Options
	log       Logger
	newEngine engineFactory
	res       resolver

	cfg    *Config
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	mu          sync.Mutex
	configured  bool
	cancelled   bool
	eng         engine // created on the first capture attempt, kept for the check's life
	captureErr  error  // why capture is not running now; nil when it is (or will be)
	panicErr    error  // a background goroutine died; reported until the check is rescheduled
	remotes     []netip.Prefix
	hostAddr    map[netip.Addr]string // remote address -> configured host name
	unresolved  []string              // "host (reason)" for hosts with no address
	hostsReady  chan struct{}
	captureDone chan struct{}
	// attempted is closed once capture has either opened or failed, so
	// the first Run reports what is true, not an optimistic OK.
	attempted     chan struct{}
	attemptedOnce sync.Once
	rdns          *rdnsCache
	capturePass   int // engine runs started; for tests

	runMu      sync.Mutex         // Run is not reentrant: the agent never overlaps runs of one instance
	prevFlow   map[flowKey]uint64 // samples per flow at the previous Run
	nextFlow   map[flowKey]uint64 // reused for the current Run's counts
	prevLastAt map[tagKey]int64
}

// totals are the cumulative counters reported as monotonic counts.
type totals struct {
	packets, drops, decodeErrors, evicted uint64
}

func statsTotals(s *capture.Stats) totals {
	return totals{
		packets:      s.Packets,
		drops:        s.Kernel.Dropped,
		decodeErrors: s.Malformed(),
		evicted:      s.Flow.EvictedHalfOpen + s.Flow.EvictedClosed + s.Flow.EvictedActive,
	}
}

// New returns an unconfigured check.
func New(opts Options) *Check {
	l := opts.Logger
	if l == nil {
		l = discard{}
	}
	return &Check{
		opts:      opts,
		log:       l,
		newEngine: newCaptureEngine,
		res:       defaultResolver(),
	}
}

type discard struct{}

func (discard) Debugf(string, ...any) {}
func (discard) Infof(string, ...any)  {}
func (discard) Warnf(string, ...any)  {}
func (discard) Errorf(string, ...any) {}

// Config returns the parsed configuration (nil before Configure succeeds).
func (c *Check) Config() *Config { return c.cfg }

// Configure starts capture for cfg, from ParseConfig, in the background and
// returns without waiting for it. It may be called once per Check; the check
// keeps cfg, which must not change afterwards.
func (c *Check) Configure(cfg *Config) error {
	if cfg == nil {
		return errors.New("go-metro: Configure without a configuration")
	}
	c.mu.Lock()
	if c.configured || c.cancelled {
		c.mu.Unlock()
		return errors.New("go-metro: Configure called twice on one check")
	}
	c.configured = true
	c.cfg = cfg
	c.hostsReady = make(chan struct{})
	c.captureDone = make(chan struct{})
	c.attempted = make(chan struct{})
	c.remotes = remoteSet(cfg.Instance.IPs, nil, len(cfg.Instance.Hosts) > 0)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.mu.Unlock()

	for _, w := range cfg.Warnings {
		c.log.Warnf("go-metro: %s", w)
	}
	if cfg.Instance.ReverseDNS {
		c.rdns = newRDNSCache(c.res, 4*cfg.Init.MaxFlows+1024, c.log)
		c.goSafe("reverse DNS", func() { c.rdns.run(c.ctx) })
	}
	if len(cfg.Instance.Hosts) > 0 {
		c.goSafe("host resolution", func() { c.resolveLoop(c.ctx) })
	} else {
		close(c.hostsReady)
	}
	c.goSafe("capture", func() {
		defer close(c.captureDone)
		c.captureLoop(c.ctx)
	})
	return nil
}

// CaptureDone is closed when the capture goroutine has exited: a file
// replay has finished (or failed), or the check was cancelled. Live
// captures run until Cancel. Nil before Configure.
func (c *Check) CaptureDone() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.captureDone
}

// Cancel stops capture and every background goroutine; the capture handle
// is closed when it returns. It is safe to call more than once, and before
// or without Configure.
func (c *Check) Cancel() {
	c.once.Do(func() {
		c.mu.Lock()
		c.cancelled = true
		cancel := c.cancel
		c.mu.Unlock()
		if cancel == nil {
			return
		}
		cancel()
		done := make(chan struct{})
		go func() { c.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(cancelWait):
			// Never hang the agent's scheduler on a stuck capture.
			c.log.Errorf("go-metro: capture on %s did not stop within %s", c.iface(), cancelWait)
		}
	})
}

func (c *Check) iface() string {
	if c.cfg == nil {
		return "?"
	}
	return c.cfg.Instance.Interface
}

// goSafe runs f in a goroutine tracked by Cancel, recovering panics: a bug
// in the check must never take the agent down.
func (c *Check) goSafe(what string, f func()) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer func() {
			if r := recover(); r != nil {
				c.log.Errorf("go-metro: %s panicked: %v\n%s", what, r, debug.Stack())
				// A dead background goroutine does not come back: unlike
				// a capture error, this is never cleared.
				c.mu.Lock()
				c.panicErr = fmt.Errorf("%s panicked: %v", what, r)
				c.mu.Unlock()
			}
		}()
		f()
	}()
}

func (c *Check) setCaptureErr(err error) {
	c.mu.Lock()
	c.captureErr = err
	c.mu.Unlock()
	if err != nil {
		c.markAttempted()
	}
}

func (c *Check) markAttempted() {
	c.attemptedOnce.Do(func() { close(c.attempted) })
}

// captureConfig builds the engine configuration; remotes are read by the
// caller under c.mu so that host updates are never lost between building an
// engine and publishing it.
func (c *Check) captureConfig(remotes []netip.Prefix) capture.Config {
	in, ini := &c.cfg.Instance, &c.cfg.Init
	cc := capture.Config{
		Interface: in.Interface,
		Backend:   in.Backend,
		Snaplen:   ini.Snaplen,
		LocalIPs:  append([]netip.Prefix(nil), in.LocalIPs...),
		Remotes:   append([]netip.Prefix(nil), remotes...),
		Ports:     append([]uint16(nil), in.Ports...),
		Tunnels:   in.Tunnels,
		MaxFlows:  ini.MaxFlows,
		IdleTTL:   ini.IdleTTL,
		ExpTTL:    ini.ExpTTL,
		RingSize:  in.BufferMB << 20,
	}
	if in.Interface == FileInterface {
		cc.Interface = ""
		cc.File = in.Pcap
	}
	return cc
}

// captureLoop owns the engine for the life of the check: it starts one,
// restarts it with backoff when it fails (no CAP_NET_RAW, interface missing,
// down or deleted), and opens and closes sampling windows.
func (c *Check) captureLoop(ctx context.Context) {
	select {
	case <-c.hostsReady:
	case <-ctx.Done():
		return
	}
	in := &c.cfg.Instance
	backoff := backoffMin
	for ctx.Err() == nil {
		runCtx, stop := ctx, context.CancelFunc(func() {})
		if in.Sample {
			runCtx, stop = context.WithTimeout(ctx, in.SampleDuration)
		}
		started := time.Now()
		err := c.runEngineOnce(runCtx)
		windowEnded := in.Sample && runCtx.Err() != nil && ctx.Err() == nil
		stop()
		if ctx.Err() != nil {
			return
		}
		switch {
		case err == nil && in.Interface == FileInterface:
			c.log.Infof("go-metro: replay of %s finished", in.Pcap)
			return // a replay runs once; its engine stays current for reporting
		case err == nil && windowEnded:
			backoff = backoffMin
			c.log.Debugf("go-metro: sample window on %s closed; next in %s", in.Interface, in.SampleInterval)
			if !sleepCtx(ctx, in.SampleInterval) {
				return
			}
			continue
		case err == nil:
			err = errors.New("capture stopped unexpectedly")
		}
		c.setCaptureErr(err)
		if in.Interface == FileInterface {
			c.log.Errorf("go-metro: replay of %s failed: %v", in.Pcap, err)
			return
		}
		if time.Since(started) > 2*backoffMax {
			// It ran for a while before failing: a new problem, retry soon.
			backoff = backoffMin
		}
		c.log.Warnf("go-metro: capture on %s failed: %v; retrying in %s", in.Interface, err, backoff)
		if !sleepCtx(ctx, backoff) {
			return
		}
		backoff *= 2
		if backoff > backoffMax {
			backoff = backoffMax
		}
	}
}

// runEngineOnce runs the check's engine (created on first use) until ctx
// ends or it fails. The engine keeps its flow table and counters across
// Runs, so a capture re-opened after an interface loss or between sampling
// windows loses nothing. Panics become errors so the loop retries.
func (c *Check) runEngineOnce(ctx context.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Errorf("go-metro: capture engine panicked: %v\n%s", r, debug.Stack())
			err = fmt.Errorf("capture engine panicked: %v", r)
		}
	}()
	c.mu.Lock()
	eng := c.eng
	cc := c.captureConfig(c.remotes)
	c.mu.Unlock()
	if eng == nil {
		eng, err = c.newEngine(cc)
		if err != nil {
			return fmt.Errorf("starting capture: %w", err)
		}
		c.mu.Lock()
		c.eng = eng
		// Hosts may have resolved differently since cc was built.
		if !samePrefixes(cc.Remotes, c.remotes) {
			if err := eng.SetRemotes(c.remotes); err != nil {
				c.log.Warnf("go-metro: updating monitored hosts: %v", err)
			}
		}
		c.mu.Unlock()
	}
	c.mu.Lock()
	c.capturePass++
	c.mu.Unlock()
	// Clear the error only once the source has stayed open a moment; an
	// immediate failure keeps reporting the previous one without a flap.
	runCtx, stop := context.WithCancel(ctx)
	cleared := make(chan struct{})
	go func() {
		defer close(cleared)
		select {
		case <-eng.Opened():
			c.markAttempted()
		case <-runCtx.Done():
			return
		}
		t := time.NewTimer(clearAfter)
		defer t.Stop()
		select {
		case <-t.C:
			c.setCaptureErr(nil)
		case <-runCtx.Done():
		}
	}()
	err = eng.Run(runCtx)
	stop()
	<-cleared
	return err
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func samePrefixes(a, b []netip.Prefix) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
