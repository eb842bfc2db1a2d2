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
	"hash/maphash"
	"math/rand/v2"
	"net/netip"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/gometro/go-metro/capture"
	"github.com/gometro/go-metro/capture/flow"
)

// Sender is the subset of the Datadog agent's sender.Sender the check uses;
// the real sender satisfies it.
type Sender interface {
	Gauge(metric string, value float64, hostname string, tags []string)
	Count(metric string, value float64, hostname string, tags []string)
	MonotonicCount(metric string, value float64, hostname string, tags []string)
	Distribution(metric string, value float64, hostname string, tags []string)
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
	// Workloads are this host's containers and pods (workloads.go); nil
	// when the host program knows none, as the standalone binary.
	Workloads Workloads
}

// engine is what the check needs of *capture.Engine; tests substitute fakes.
type engine interface {
	Run(ctx context.Context) error
	Stats(ctx context.Context) (*capture.Snapshot, error)
	FlowPages(ctx context.Context, page []flow.Summary, takeSamples bool, partWait time.Duration, fn func(flows []flow.Summary, names map[netip.Addr]string)) error
	SetRemotes(remotes []netip.Prefix) error
	SetLocalIPs(local []netip.Prefix) error
	Opened() <-chan struct{} // closed once the source has opened
}

type engineFactory func(capture.Config) (engine, error)

// resolver is the subset of *net.Resolver used; tests substitute fakes.
type resolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

// Waits of the background work.
const (
	snapshotTimeout = time.Second
	// cancelWait bounds Cancel: the agent's scheduler must never hang on a
	// stuck capture (the engine stops as soon as Cancel wakes its source,
	// within 100 ms for libpcap, which cannot be woken).
	cancelWait = 500 * time.Millisecond
	// firstOpenWait bounds how long a Run waits for a capture that has
	// neither opened nor failed yet (host resolution, a slow open).
	firstOpenWait = 2 * time.Second
	// replayWait bounds how long a Run waits for a replay to finish.
	replayWait = 30 * time.Second
	dnsTimeout = 3 * time.Second
)

// timing is what the capture owner waits between attempts; tests shorten it.
type timing struct {
	backoffMin, backoffMax time.Duration // between failed captures, doubling
	// clearAfter: a capture error is cleared once the source has stayed
	// open this long, so an immediate failure does not flap to OK.
	clearAfter time.Duration
}

var defaultTiming = timing{backoffMin: time.Second, backoffMax: 30 * time.Second, clearAfter: 500 * time.Millisecond}

// noMatch is a remote prefix that no TCP peer has. It stands for "hosts are
// configured but none resolved yet": an empty Remotes list would mean "every
// remote", the opposite of what the user asked for.
var noMatch = netip.MustParsePrefix("0.0.0.0/32")

// captureState is where the capture owner goroutine is; Run reads it.
type captureState int

const (
	stateNew        captureState = iota // before Configure
	stateConfigured                     // resolving hosts; no engine has run yet
	stateOpening                        // an engine is opening its source
	stateCapturing                      // the source is open (a re-run: the engine opened before, see runEngineOnce)
	stateRetrying                       // the capture failed (status.err); waiting to retry
	stateIdle                           // between sample windows, or a replay that has ended
	stateCancelled
)

// status is what the background goroutines publish for Run, under Check.mu.
type status struct {
	state  captureState
	err    error  // why capture last failed; cleared when a source has stayed open clearAfter
	eng    engine // the current engine: nil before the first attempt and after a panic
	panics uint64 // engines abandoned after a panic
	// panicErr: a background goroutine died and does not come back;
	// reported until the check is rescheduled.
	panicErr error

	// From host resolution. The slices and the map are replaced, never
	// modified, so a copy of status can be read without the lock.
	remotes    []netip.Prefix        // engine's Remotes: ips plus resolved hosts
	hostAddr   map[netip.Addr]string // remote address -> configured host name
	unresolved []string              // "host (reason)" for hosts with no address

	// workloads are the container and pod addresses that count as local
	// (workloads.go), sorted; replaced, never modified, as the above.
	workloads []netip.Addr
}

// Check is one configured instance of the go-metro check. Configure starts
// one capture owner goroutine (captureLoop), which alone creates, runs and
// replaces the engine and moves status.state; host refresh and reverse DNS
// run beside it. Run reads a copy of status and reports.
//
// A panic never leaves the check, and each goroutine has one boundary that
// recovers it: goSafe for the goroutines it starts, the engine worker of
// runEngineOnce for the engine's, and, for the goroutines of the agent
// that call in, the entry points themselves (Run, Diagnose, Inventory).
type Check struct {
	opts      Options
	log       Logger
	newEngine engineFactory
	res       resolver
	timing    timing
	hostAddrs func() ([]netip.Addr, error) // never a workload's (workloads.go)

	cfg     *Config // set by Configure, read-only after
	rdns    *rdnsCache
	cancel  context.CancelFunc
	wg      sync.WaitGroup // every background goroutine
	done    chan struct{}  // closed when the capture owner has exited
	stopped chan struct{}  // made by the first Cancel, closed when wg is done

	mu      sync.Mutex
	st      status
	changed chan struct{} // closed and replaced whenever st changes

	shape  ReportOptions // series shape (report_options.go), from the config
	report reportState
	plan   filterPlan // Inventory's kernel filter (inventory.go)
}

// reportState is Run's memory between runs.
type reportState struct {
	mu sync.Mutex // Run is not reentrant: the agent never overlaps runs of one instance
	// marks holds what the previous Runs reported of each flow, by its
	// table slot (flow.Summary.Slot): an array as large as the tables
	// have slots in use, 80 bytes each, where a map keyed by the flows
	// took 415 (its key, and room for twice the entries).
	marks      []flowMark
	seed       maphash.Seed   // of flowID
	page       []flow.Summary // the flows listing's page (capture.Engine.FlowPages, pageFor)
	spread     []spreadPoint  // the second pass of the groups' rtt.Pool, reused
	prevLastAt map[tagKey]int64
	// timeSkips: packets skipped for an impossible time (capture/clock.go)
	// as of the previous Run, to warn about new ones.
	timeSkips uint64

	dstPins           map[netip.Addr]string // dst names pinned at first report (grouping.go)
	dnsNames          map[netip.Addr]string // this run's names from DNS answers (capture.Snapshot.DNSNames)
	admitted, demoted map[tagKey]bool       // max_host_pairs state
	rng               *rand.Rand            // distribution draws
}

// totals are the cumulative counters reported as monotonic counts.
type totals struct {
	packets, drops, decodeErrors, evicted, duplicates, dnsMalformed, ringsDenied uint64
}

func statsTotals(s *capture.Stats) totals {
	return totals{
		packets:      s.Packets,
		drops:        s.Kernel.Dropped,
		decodeErrors: s.Malformed(),
		evicted:      s.Flow.EvictedHalfOpen + s.Flow.EvictedClosed + s.Flow.EvictedActive,
		duplicates:   s.Flow.Duplicates,
		dnsMalformed: s.DNS.Malformed,
		ringsDenied:  s.Flow.RingsDenied,
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
		timing:    defaultTiming,
		hostAddrs: hostAddrs,
		changed:   make(chan struct{}),
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
	// Under the lock to the end, so that a concurrent Cancel sees either
	// nothing started or every goroutine counted in wg.
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st.state != stateNew {
		return errors.New("go-metro: Configure called twice on one check, or after Cancel")
	}
	// One capture per interface and filter, and a bound on what the
	// process's instances reserve together; released by Cancel.
	if err := c.claim(cfg); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cfg, c.cancel, c.done = cfg, cancel, make(chan struct{})
	c.st = status{state: stateConfigured, remotes: remoteSet(cfg.Instance.IPs, nil, len(cfg.Instance.Hosts) > 0)}
	c.shape = cfg.Instance.reportOptions()
	for _, w := range cfg.Warnings {
		c.log.Warnf("go-metro: %s", w)
	}
	if cfg.Instance.ReverseDNS {
		c.rdns = newRDNSCache(c.res, 4*cfg.Init.MaxFlows+1024, c.log)
		c.goSafe("reverse DNS", func() { c.rdns.run(ctx) })
	}
	if c.opts.Workloads != nil {
		// Read once before capture opens, so that the engine starts with
		// them; the goroutine follows their changes.
		var changed <-chan struct{}
		c.st.workloads, changed = c.readWorkloads()
		c.goSafe("workloads", func() { c.watchWorkloads(ctx, changed) })
	}
	c.goSafe("capture", func() { c.captureLoop(ctx) })
	return nil
}

// CaptureDone is closed when the capture goroutine has exited: a file
// replay has finished (or failed), or the check was cancelled. Live
// captures run until Cancel. Nil before Configure.
func (c *Check) CaptureDone() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.done
}

// Cancel stops capture and every background goroutine; the capture handle
// is closed when it returns, within cancelWait. It is safe to call more
// than once, concurrently, and before or without Configure.
func (c *Check) Cancel() {
	c.mu.Lock()
	if c.stopped == nil {
		if c.cfg != nil {
			c.release(c.cfg)
		}
		c.setLocked(func(s *status) { s.state = stateCancelled })
		if c.cancel != nil {
			c.cancel()
		}
		c.stopped = make(chan struct{})
		go func(stopped chan struct{}) { c.wg.Wait(); close(stopped) }(c.stopped)
	}
	stopped := c.stopped
	c.mu.Unlock()
	t := time.NewTimer(cancelWait)
	defer t.Stop()
	select {
	case <-stopped:
	case <-t.C:
		c.log.Errorf("go-metro: capture on %s did not stop within %s", c.iface(), cancelWait)
	}
}

func (c *Check) iface() string {
	if c.cfg == nil {
		return "?"
	}
	return c.cfg.Instance.Interface
}

// update changes the status and wakes whoever waits for a change.
func (c *Check) update(f func(*status)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setLocked(f)
}

func (c *Check) setLocked(f func(*status)) {
	cancelled := c.st.state == stateCancelled
	f(&c.st)
	if cancelled {
		c.st.state = stateCancelled // the last word
	}
	close(c.changed)
	c.changed = make(chan struct{})
}

// status returns a copy of the status.
func (c *Check) status() status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st
}

// await waits at most d for done to hold of the status, and returns it.
func (c *Check) await(d time.Duration, done func(*status) bool) status {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		c.mu.Lock()
		st, changed := c.st, c.changed
		c.mu.Unlock()
		if done(&st) {
			return st
		}
		select {
		case <-changed:
		case <-t.C:
			return c.status()
		}
	}
}

// goSafe runs f in a goroutine that Cancel waits for, and is that
// goroutine's panic boundary: a panic is logged and kept as
// status.panicErr (a bug in the check must never take the agent down), and
// the goroutine ends.
func (c *Check) goSafe(what string, f func()) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer func() {
			if r := recover(); r != nil {
				c.log.Errorf("go-metro: %s panicked: %v\n%s", what, r, debug.Stack())
				c.update(func(s *status) { s.panicErr = fmt.Errorf("%s panicked: %v", what, r) })
			}
		}()
		f()
	}()
}

// captureConfig builds the engine configuration; remotes and workloads are
// read by the caller under c.mu so that updates are never lost between
// building an engine and publishing it.
func (c *Check) captureConfig(remotes []netip.Prefix, workloads []netip.Addr) capture.Config {
	in, ini := &c.cfg.Instance, &c.cfg.Init
	cc := capture.Config{
		Interface:  in.Interface,
		Backend:    in.Backend,
		Snaplen:    ini.Snaplen,
		LocalIPs:   localPrefixes(in.LocalIPs, workloads),
		Remotes:    append([]netip.Prefix(nil), remotes...),
		Ports:      append([]uint16(nil), in.Ports...),
		Tunnels:    in.Tunnels,
		DNSNames:   in.DNSNames,
		MaxFlows:   ini.MaxFlows,
		IdleTTL:    ini.IdleTTL,
		ExpTTL:     ini.ExpTTL,
		RingSize:   in.BufferMB << 20,
		Workers:    in.Workers,
		ReaderNice: in.Nice,
	}
	if in.Interface == FileInterface {
		cc.Interface = ""
		cc.File = in.Pcap
	}
	return cc
}

// captureLoop is the capture's owner for the life of the check: it resolves
// the hosts once before the first open (so the kernel filter starts with
// their addresses; a goroutine refreshes them after), runs the engine,
// restarts it with backoff when it fails (no CAP_NET_RAW, interface
// missing, down or deleted), opens and closes sampling windows, and is the
// only writer of status.state and status.eng.
func (c *Check) captureLoop(ctx context.Context) {
	defer close(c.done)
	in := &c.cfg.Instance
	if len(in.Hosts) > 0 {
		// The goroutine resolves once before capture opens, then every
		// HostsRefresh. A panic ends it (goSafe): capture goes on with the
		// remotes resolved so far.
		first := make(chan struct{})
		c.goSafe("host resolution", func() {
			known := map[string][]netip.Addr{}
			func() {
				defer close(first)
				c.resolveHosts(ctx, known)
			}()
			for sleepCtx(ctx, in.HostsRefresh) {
				c.resolveHosts(ctx, known)
			}
		})
		<-first
	}
	backoff := c.timing.backoffMin
	for ctx.Err() == nil {
		runCtx, stop := ctx, context.CancelFunc(func() {})
		if in.Sample {
			runCtx, stop = context.WithTimeout(ctx, in.SampleDuration)
		}
		settled, err := c.runEngineOnce(runCtx)
		windowEnded := in.Sample && runCtx.Err() != nil && ctx.Err() == nil
		stop()
		switch {
		case ctx.Err() != nil:
			return
		case err == nil && in.Interface == FileInterface:
			c.log.Infof("go-metro: replay of %s finished", in.Pcap)
			c.update(func(s *status) { s.state = stateIdle })
			return // a replay runs once; its engine stays current for reporting
		case err == nil && windowEnded:
			backoff = c.timing.backoffMin
			c.update(func(s *status) { s.state = stateIdle })
			c.log.Debugf("go-metro: sample window on %s closed; next in %s", in.Interface, in.SampleInterval)
			sleepCtx(ctx, in.SampleInterval)
			continue
		case err == nil:
			err = errors.New("capture stopped unexpectedly")
		}
		if in.Interface == FileInterface {
			c.update(func(s *status) { s.state, s.err = stateIdle, err })
			c.log.Errorf("go-metro: replay of %s failed: %v", in.Pcap, err)
			return
		}
		c.update(func(s *status) { s.state, s.err = stateRetrying, err })
		if settled {
			// Capture ran again (the source stayed open clearAfter) before
			// failing: a new outage, retried soon. A source that fails
			// within clearAfter of opening keeps the backoff growing, so a
			// flapping interface is not reopened in a tight loop.
			backoff = c.timing.backoffMin
		}
		c.log.Warnf("go-metro: capture on %s failed: %v; retrying in %s", in.Interface, err, backoff)
		sleepCtx(ctx, backoff)
		backoff = min(2*backoff, c.timing.backoffMax)
	}
}

// enginePanic is a panic of the engine's Run, recovered by the engine
// worker, the one panic boundary of the goroutine that runs the engine.
// The engine's flow table may be half-updated, so the engine is dropped:
// the next attempt starts from a fresh one.
type enginePanic struct{ value any }

func (e *enginePanic) Error() string { return fmt.Sprintf("capture engine panicked: %v", e.value) }

// runEngineOnce runs the engine until ctx ends or it fails, and reports
// whether the source stayed open clearAfter (capture ran). The engine keeps
// its flow table and counters across runs, so a capture re-opened after an
// interface loss or between sampling windows loses nothing; after a panic it
// is replaced.
func (c *Check) runEngineOnce(ctx context.Context) (settled bool, err error) {
	eng, err := c.engine()
	if err != nil {
		return false, fmt.Errorf("starting capture: %w", err)
	}
	c.update(func(s *status) { s.state = stateOpening })
	// The engine runs in a worker this function always waits for; here it
	// only watches the source open and stay open. Opened is closed from an
	// engine's first open on, so a re-run counts as capturing from its
	// start; one that fails within clearAfter still reports the old error.
	ran := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				c.log.Errorf("go-metro: capture engine panicked: %v\n%s", r, debug.Stack())
				ran <- &enginePanic{r}
			}
		}()
		ran <- eng.Run(ctx)
	}()
	opened := eng.Opened()
	var stayedOpen <-chan time.Time
	for {
		select {
		case <-opened:
			opened = nil
			c.update(func(s *status) { s.state = stateCapturing })
			t := time.NewTimer(c.timing.clearAfter)
			defer t.Stop()
			stayedOpen = t.C
		case <-stayedOpen:
			stayedOpen, settled = nil, true
			c.update(func(s *status) { s.err = nil })
		case err := <-ran:
			var p *enginePanic
			var wp *capture.PanicError
			if errors.As(err, &wp) {
				// One of Run's own workers, whose panic boundary is Run's:
				// the engine is dropped all the same.
				c.log.Errorf("go-metro: %v\n%s", wp, wp.Stack)
			}
			if wp != nil || errors.As(err, &p) {
				c.update(func(s *status) { s.eng = nil; s.panics++ })
			}
			return settled, err
		}
	}
}

// engine returns the current engine, creating one if there is none.
func (c *Check) engine() (engine, error) {
	c.mu.Lock()
	eng := c.st.eng
	var cc capture.Config
	if eng == nil {
		cc = c.captureConfig(c.st.remotes, c.st.workloads)
	}
	c.mu.Unlock()
	if eng != nil {
		return eng, nil
	}
	eng, err := c.newEngine(cc)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setLocked(func(s *status) { s.eng = eng })
	// Hosts may have resolved differently since cc was built, and
	// workloads come and go.
	if !slices.Equal(cc.Remotes, c.st.remotes) {
		if err := eng.SetRemotes(c.st.remotes); err != nil {
			c.log.Warnf("go-metro: updating monitored hosts: %v", err)
		}
	}
	if local := localPrefixes(c.cfg.Instance.LocalIPs, c.st.workloads); !slices.Equal(cc.LocalIPs, local) {
		if err := eng.SetLocalIPs(local); err != nil {
			c.log.Warnf("go-metro: updating the workload addresses: %v", err)
		}
	}
	return eng, nil
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
