// Package capture turns packets into per-flow RTT state: it reads frames from
// a live interface or a capture file, decodes them, finds their flow and
// updates the flow's RTT estimate. It knows nothing of metrics or agents;
// readers take consistent snapshots of the flow table.
package capture

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/gometro/go-metro/capture/filter"
	"github.com/gometro/go-metro/capture/flow"
	"github.com/gometro/go-metro/capture/localaddr"
	"github.com/gometro/go-metro/capture/packet"
	"github.com/gometro/go-metro/capture/source"
	"golang.org/x/net/bpf"
)

// Config configures an Engine. Zero values take the documented defaults.
type Config struct {
	Interface string // live interface name, or "any"; ignored when File is set
	File      string // pcap/pcapng file to replay instead of capturing live
	Backend   string // live capture backend: "afpacket" (default) or "pcap" (build tag pcap)
	Snaplen   int    // bytes kept per frame; default and maximum DefaultSnaplen

	// LocalIPs are addresses that count as "us" in addition to the
	// interface's own (mirrored ports, replays). For a file with no
	// LocalIPs the engine infers them (see Snapshot.InferredLocal).
	LocalIPs []netip.Prefix
	// Remotes restricts monitoring to these remote addresses (kernel filter
	// on live sources, user-space check everywhere). Empty: every remote.
	// When they do not fit a kernel filter a coarser one is used (see
	// Snapshot.Filter); monitoring stays exact.
	Remotes []netip.Prefix
	// Ports restricts monitoring to these remote ports. Empty: every port.
	Ports []uint16
	// Tunnels are the encapsulations whose inner TCP is timed (see
	// tunnel.go). Zero: none on a live interface, every one in a file.
	Tunnels packet.Encap
	// DNSNames reads the DNS answers the source carries and names remote
	// addresses by the name that was asked for (Snapshot.DNSNames; see
	// dnsnames.go); the kernel filter passes those answers whole.
	DNSNames bool

	MaxFlows int           // hard cap on tracked flows; default 16384
	IdleTTL  time.Duration // drop flows idle this long; default 300s
	ExpTTL   time.Duration // drop closed (FIN/RST) flows this long after their last packet; default 60s

	PollTimeout time.Duration // how often an idle live capture does its housekeeping (Cancel and snapshots wake it); default DefaultPollTimeout
	RingSize    int           // bytes of kernel capture ring, fixed; 0: sized by need (source.Options.RingSize)
}

// Stats are the engine's cumulative counters.
type Stats struct {
	Packets    uint64 // frames read from the source
	TCPPackets uint64 // frames that decoded as TCP
	// DecodeErrors counts the frames that did not decode by their
	// packet.Status (OK's count stays 0).
	DecodeErrors [packet.NumStatuses]uint64
	Kernel       source.Stats // from the live sources, since the first was opened
	Flow         flow.Counters
	SourceOpens  uint64 // times a source was opened (re-opens after interface loss count)
	// FilterFallbacks counts kernel filters installed coarser than the
	// remotes and ports asked for (at open or by SetRemotes); Snapshot.Filter
	// says whether one is in effect now.
	FilterFallbacks uint64
	// LinkDownEvents counts the interface going administratively down
	// while captured; capture resumes by itself when it comes back up.
	LinkDownEvents uint64

	// Tunnelled counts TCP segments decoded from inside an expected
	// encapsulation; TunnelSkipped those inside one the instance does not
	// expect, which are dropped and not in TCPPackets.
	Tunnelled, TunnelSkipped uint64

	// TimeBackwards counts the records skipped because their time went
	// back more than MaxReorder before the newest record's; TimeForward
	// those skipped because it jumped more than MaxTimeJump past it (in a
	// replay). No sample is taken from either (clock.go).
	TimeBackwards, TimeForward uint64

	// DNS counts the DNS messages read (Config.DNSNames).
	DNS DNSStats
}

// Malformed is the number of frames that failed to decode for a reason other
// than being valid non-TCP traffic.
func (s *Stats) Malformed() uint64 {
	var n uint64
	for k, v := range s.DecodeErrors {
		if st := packet.Status(k); st != packet.OK && st != packet.NotTCP && st != packet.DNS {
			n += v
		}
	}
	return n
}

// Snapshot is a consistent copy of the engine's state at one instant.
type Snapshot struct {
	Taken         time.Time // wall clock when the snapshot was made
	CaptureTime   int64     // capture timestamp of the latest packet, ns since epoch
	Stats         Stats
	Flows         []flow.Summary
	LocalIPs      []netip.Addr // addresses treated as local
	InferredLocal bool         // LocalIPs were inferred from the traffic (replay without LocalIPs)
	// LinkDown: the captured interface is down (no frame since it went
	// down). The engine keeps its socket and resumes when it comes up.
	LinkDown bool
	// Filter is the kernel filter of the live source (zero for files and
	// before the first open).
	Filter FilterStatus

	// DNSNames maps the remote addresses of Flows (IPv4 unmapped) to the
	// names DNS answers gave them (Config.DNSNames): the name that was
	// asked for, from an answer still live when one of the address's flows
	// began. DNSCached is the number of addresses the name cache holds.
	DNSNames  map[netip.Addr]string
	DNSCached int
}

// FilterStatus describes the kernel filter in effect on a live source.
type FilterStatus struct {
	// Level is filter.Exact unless the program for the configured remotes
	// and ports did not fit the kernel; monitoring stays exact either way
	// (user space checks every new flow), a coarser level only lets more
	// frames into the ring.
	Level        filter.Level
	Instructions int    // size of the installed program (0: none, every TCP frame and more)
	Detail       string // filter.Program.Describe: the level and, when coarser, why
}

// Coarse reports whether a coarser filter than configured is in effect.
func (f FilterStatus) Coarse() bool { return f.Level != filter.Exact }

// ErrCoarseFilter is wrapped by the error SetRemotes returns when it applied
// the new remotes but the kernel filter had to fall back to a coarser
// program: a warning (the capture is complete and monitoring exact), not a
// failure.
var ErrCoarseFilter = errors.New("capture: kernel filter is coarser than configured")

// Defaults for zero Config fields. The live capture's own (snaplen, poll
// timeout, ring size) belong to package source.
const (
	DefaultSnaplen     = source.DefaultSnaplen
	DefaultMaxFlows    = 16384
	DefaultIdleTTL     = 300 * time.Second
	DefaultExpTTL      = 60 * time.Second
	DefaultPollTimeout = source.DefaultPollTimeout

	// housekeepEvery is how many packets pass between checks for
	// cancellation, snapshot requests and expiry: rare enough to cost
	// nothing per packet, frequent enough to answer within microseconds.
	housekeepEvery  = 1024
	housekeepPeriod = int64(20 * time.Millisecond)
	sweepInterval   = int64(time.Second)
	localRefresh    = 5 * time.Second
)

// Engine reads one source into one flow table. Run owns the table; all
// other methods are safe to call from any goroutine.
type Engine struct {
	cfg   Config
	local *localaddr.Set
	table *flow.Table

	remotes []netip.Prefix // owned by the table's goroutine
	ports   []uint16
	filter  FilterStatus // of the current live source; owned like remotes
	// stale is set when the kernel refused every filter for new remotes:
	// the source still runs the old program, so Run ends with it and the
	// caller's reopen installs the new one before binding.
	stale   error
	tunnels packet.Encap // encapsulations decoded; see expectedTunnels
	dns     *dnsNames    // nil unless Config.DNSNames; owned like remotes

	requests chan request
	opened   chan struct{} // closed once a source has opened
	openOnce sync.Once

	mu       sync.Mutex // guards running/runDone/src and the table while not running
	running  bool
	runDone  chan struct{}
	src      source.Source // Run's, while running: call wakes it
	stats    Stats
	inferred bool
	linkDown bool // the interface went down and no frame arrived since

	lastTS    int64      // capture time of the latest packet
	clock     clockGuard // which packets' times can be trusted
	lastSweep int64
	kernel    source.Stats // counters of the current source
	kernelOld source.Stats // counters of sources closed before it
}

// Snaplen is the cut the engine uses for a configured snaplen: 0, or
// anything above DefaultSnaplen (such as Agent v5's 512), is DefaultSnaplen,
// since lengths come from the IP header and bytes past the headers are never
// read.
func Snaplen(configured int) int {
	if configured == 0 || configured > DefaultSnaplen {
		return DefaultSnaplen
	}
	return configured
}

// New validates cfg, applies defaults and allocates the flow table.
// It opens nothing: Run does.
func New(cfg Config) (*Engine, error) {
	cfg.Snaplen = Snaplen(cfg.Snaplen)
	cfg.MaxFlows = cmp.Or(cfg.MaxFlows, DefaultMaxFlows)
	cfg.IdleTTL = cmp.Or(cfg.IdleTTL, DefaultIdleTTL)
	cfg.ExpTTL = cmp.Or(cfg.ExpTTL, DefaultExpTTL)
	cfg.PollTimeout = cmp.Or(cfg.PollTimeout, DefaultPollTimeout)
	switch {
	case cfg.File == "" && cfg.Interface == "":
		return nil, errors.New("capture: no interface and no file to read")
	case cfg.Snaplen < 0:
		return nil, fmt.Errorf("capture: snaplen %d is negative", cfg.Snaplen)
	case cfg.MaxFlows < 0:
		return nil, fmt.Errorf("capture: max_flows %d is negative", cfg.MaxFlows)
	case cfg.RingSize < 0:
		return nil, fmt.Errorf("capture: ring size %d is negative", cfg.RingSize)
	case cfg.IdleTTL < 0 || cfg.ExpTTL < 0:
		return nil, errors.New("capture: idle_ttl and exp_ttl must be positive")
	}
	e := &Engine{
		cfg:      cfg,
		local:    &localaddr.Set{},
		ports:    cfg.Ports,
		tunnels:  expectedTunnels(&cfg),
		requests: make(chan request),
		opened:   make(chan struct{}),
	}
	if cfg.File != "" {
		e.clock.maxJump = int64(MaxTimeJump)
	}
	if err := e.local.SetPrefixes(cfg.LocalIPs); err != nil {
		return nil, fmt.Errorf("capture: local IPs: %w", err)
	}
	var err error
	if e.remotes, err = checkRemotes(cfg.Remotes); err != nil {
		return nil, err
	}
	if cfg.DNSNames {
		e.dns = newDNSNames()
	}
	e.table = flow.NewTable(flow.TableConfig{
		MaxFlows: cfg.MaxFlows,
		IdleTTL:  int64(cfg.IdleTTL),
		ExpTTL:   int64(cfg.ExpTTL),
	}, e.local, e.monitored)
	return e, nil
}

// monitored is the user-space remote filter, consulted only when a flow
// would be created.
func (e *Engine) monitored(remote netip.AddrPort) bool {
	if len(e.ports) > 0 && !slices.Contains(e.ports, remote.Port()) {
		return false
	}
	if len(e.remotes) == 0 {
		return true
	}
	a := remote.Addr()
	for _, p := range e.remotes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Opened is closed the first time Run has opened its source, so a caller
// can tell "not started yet" from "capturing".
func (e *Engine) Opened() <-chan struct{} { return e.opened }

// checkRemotes copies remotes, rejecting invalid prefixes.
func checkRemotes(remotes []netip.Prefix) ([]netip.Prefix, error) {
	for _, p := range remotes {
		if !p.IsValid() {
			return nil, fmt.Errorf("capture: remotes: invalid prefix %v", p)
		}
	}
	return slices.Clone(remotes), nil
}

// SetRemotes replaces the monitored remote addresses (hosts re-resolved);
// flows already tracked are kept until they expire. A running live engine
// swaps its kernel filter before SetRemotes returns (Run's goroutine does
// it between two packets, waking a waiting source), so traffic of the new
// addresses is captured from then on. Otherwise the remotes apply from the
// next open.
//
// The error is nil when the remotes are in effect with an exact kernel
// filter. It wraps ErrCoarseFilter when they are in effect with a coarser
// one (a warning: see Snapshot.Filter). Any other error means they are not
// in effect: an invalid prefix (nothing changed), or a kernel that refused
// every filter level, in which case Run ends with the same error, so that
// the caller reopens the source, which then starts with the new remotes.
func (e *Engine) SetRemotes(remotes []netip.Prefix) error {
	cp, err := checkRemotes(remotes)
	if err != nil {
		return err
	}
	var ferr error
	if err := e.call(context.Background(), func(src source.Source) {
		e.remotes = cp
		if src != nil && e.cfg.File == "" {
			ferr = e.installFilter(src.LinkType(), src.SetFilter)
			if ferr != nil && !errors.Is(ferr, ErrCoarseFilter) {
				e.stale = ferr
			}
		}
	}); err != nil {
		return err
	}
	return ferr
}

// SetLocalIPs replaces Config.LocalIPs, the addresses that count as local
// besides the interface's own: the agent's containers and pods come and go
// while the engine runs. Tracked flows keep their direction; a new flow's
// is decided by the set in effect at its first packet. A running engine
// applies the set between two packets, before SetLocalIPs returns.
func (e *Engine) SetLocalIPs(local []netip.Prefix) error {
	for _, p := range local {
		if !p.IsValid() {
			return fmt.Errorf("capture: local IPs: invalid prefix %v", p)
		}
	}
	cp := slices.Clone(local)
	return e.call(context.Background(), func(source.Source) {
		_ = e.local.SetPrefixes(cp) // checked above
		e.table.LocalityChanged()
	})
}

// installFilter builds the finest kernel filter for the current remotes and
// ports that attach accepts (filter.Fit) and records it. It returns an
// error wrapping ErrCoarseFilter when that is coarser than asked, and a
// plain error when none was accepted (attach left the previous program).
func (e *Engine) installFilter(link packet.LinkType, attach func([]bpf.RawInstruction) error) error {
	pass := filter.Pass{Tunnels: e.tunnels, DNS: e.dns != nil}
	if len(e.remotes) == 0 && len(e.ports) == 0 {
		// Every frame, up to snaplen; DNS answers whole.
		var prog []bpf.RawInstruction
		if pass.DNS {
			var err error
			if prog, err = filter.WithDNS(nil, link, e.cfg.Snaplen); err != nil {
				return fmt.Errorf("capture: kernel filter on %s: %w", e.cfg.Interface, err)
			}
		}
		if err := attach(prog); err != nil {
			return fmt.Errorf("capture: kernel filter on %s: %w", e.cfg.Interface, err)
		}
		e.filter = FilterStatus{Instructions: len(prog)}
		return nil
	}
	p, err := filter.Fit(link, e.remotes, e.ports, e.cfg.Snaplen, pass, attach)
	if err != nil {
		return fmt.Errorf("capture: kernel filter on %s: %w", e.cfg.Interface, err)
	}
	e.filter = FilterStatus{Level: p.Level, Instructions: len(p.Instructions), Detail: p.Describe()}
	if p.Level == filter.Exact {
		return nil
	}
	e.stats.FilterFallbacks++
	return fmt.Errorf("%w on %s: %d remotes and %d ports; using %s", ErrCoarseFilter, e.cfg.Interface, len(e.remotes), len(e.ports), p.Describe())
}

// Run opens the source and processes packets until ctx is done (nil), the
// end of a file (nil), or a source failure (the error). Flow state survives
// across Runs, so a caller can re-open a lost interface without losing it.
//
// Run does not recover panics: a panic is a bug (bad packets are counted,
// never fatal), and the goroutine's owner is its one panic boundary (for
// the check, rttcheck's engine worker). Run still closes the source on the
// way out; the flow table may be half-updated, so the owner drops the
// engine and starts from a fresh one.
func (e *Engine) Run(ctx context.Context) (err error) {
	e.mu.Lock()
	if e.running {
		e.mu.Unlock()
		return errors.New("capture: engine is already running")
	}
	src, err := e.open()
	if err != nil {
		e.mu.Unlock()
		return err
	}
	e.stats.SourceOpens++
	e.openOnce.Do(func() { close(e.opened) })
	e.running = true
	e.runDone = make(chan struct{})
	e.src = src
	e.mu.Unlock()
	// A live source waits up to PollTimeout for a frame: Cancel ends the
	// wait instead of waiting it out.
	stopWaking := context.AfterFunc(ctx, src.Wake)

	defer func() {
		stopWaking()
		e.collectKernelStats(src)
		e.kernelOld = e.kernelOld.Then(e.kernel)
		e.kernel = source.Stats{}
		if cerr := src.Close(); cerr != nil && err == nil && ctx.Err() == nil {
			err = fmt.Errorf("capture: close: %w", cerr)
		}
		e.mu.Lock()
		e.running, e.src = false, nil
		close(e.runDone)
		e.mu.Unlock()
	}()
	return e.loop(ctx, src)
}

func (e *Engine) loop(ctx context.Context, src source.Source) error {
	live := e.cfg.File == ""
	var pkt packet.Packet
	nextLocalRefresh := time.Now().Add(localRefresh)
	countdown := housekeepEvery
	var nextHousekeep int64
	done := ctx.Done()
	for {
		data, ts, wireLen, err := src.Next()
		if err == nil {
			pkt.IfIndex = uint32(src.Interface())
			e.handle(&pkt, src.LinkType(), data, ts, wireLen)
			// Housekeeping every housekeepEvery packets, or sooner when
			// capture time moved on (a slow trickle of packets that never
			// lets the poll time out must not stall snapshots or Cancel).
			if countdown--; countdown > 0 && ts < nextHousekeep {
				continue
			}
			countdown = housekeepEvery
			nextHousekeep = ts + housekeepPeriod
		} else if err == io.EOF || errors.Is(err, source.ErrTruncated) {
			// A file cut inside a record ends like one that does not,
			// and says so: its flows stand.
			e.table.Sweep(e.lastTS)
			if err == io.EOF {
				return nil
			}
			return err
		} else if errors.Is(err, source.ErrInterfaceDown) {
			// The socket stays bound and frames resume when the link
			// comes back up: report it, keep going.
			e.stats.LinkDownEvents++
			e.linkDown = true
		} else if !errors.Is(err, source.ErrTimeout) {
			return err // sources name themselves and the failure
		} else if live {
			// Idle: expiry runs on the wall clock so idle flows still age.
			e.lastTS = max(e.lastTS, time.Now().UnixNano())
		}

		// Housekeeping, between packets.
		select {
		case <-done:
			return nil
		case req := <-e.requests:
			req.fn(src)
			close(req.done)
			if err := e.stale; err != nil {
				e.stale = nil
				return err
			}
		default:
		}
		if e.lastTS-e.lastSweep >= sweepInterval {
			e.table.Sweep(e.lastTS)
			e.lastSweep = e.lastTS
		}
		if live && time.Now().After(nextLocalRefresh) {
			nextLocalRefresh = time.Now().Add(localRefresh)
			e.refreshLocal()
		}
	}
}

// handle is the per-packet hot path: decode, flow lookup, RTT update.
// It allocates nothing and takes no lock.
func (e *Engine) handle(pkt *packet.Packet, link packet.LinkType, data []byte, ts int64, wireLen int) {
	e.stats.Packets++
	if ok, backwards := e.clock.check(ts); !ok {
		if backwards {
			e.stats.TimeBackwards++
		} else {
			e.stats.TimeForward++
		}
		return
	}
	if ts > e.lastTS {
		e.lastTS = ts
	}
	e.linkDown = false
	if st := pkt.Decode(link, data, wireLen); st != packet.OK {
		if st == packet.DNS && e.dns != nil {
			e.dnsDatagram(pkt, data, ts)
		}
		e.stats.DecodeErrors[st]++
		return
	}
	if pkt.Tunnel.Encaps != 0 {
		if !pkt.Tunnel.Encaps.Within(e.tunnels) {
			e.stats.TunnelSkipped++
			return
		}
		e.stats.Tunnelled++
	}
	e.stats.TCPPackets++
	e.table.Process(pkt, ts)
	if pkt.SrcPort == packet.PortDNS && e.dns != nil {
		e.dnsSegment(pkt, data, ts)
	}
}

func (e *Engine) open() (source.Source, error) {
	if e.cfg.File != "" {
		if len(e.cfg.LocalIPs) == 0 && !e.inferred {
			addrs, err := InferLocal(e.cfg.File)
			if err != nil {
				return nil, err
			}
			e.setLocal(addrs)
			e.inferred = true
		}
		// Source errors already say "capture:" and name the file.
		return source.OpenFile(e.cfg.File)
	}
	e.refreshLocal()
	opts := source.Options{
		Interface:   e.cfg.Interface,
		Snaplen:     e.cfg.Snaplen,
		PollTimeout: e.cfg.PollTimeout,
		RingSize:    e.cfg.RingSize,
		// Installed before the socket binds: no frame reaches the ring
		// unfiltered. A coarser program is a warning (Snapshot.Filter),
		// not a reason to capture nothing.
		Filter: func(link packet.LinkType, attach func([]bpf.RawInstruction) error) error {
			if err := e.installFilter(link, attach); err != nil && !errors.Is(err, ErrCoarseFilter) {
				return err
			}
			return nil
		},
	}
	if e.dns != nil {
		opts.WholeLen = filter.DNSSnaplen
	}
	// Errors already say "capture:" and name the interface.
	return source.OpenLive(e.cfg.Backend, opts)
}

// refreshLocal re-reads the interface's addresses; on failure the old set stays.
func (e *Engine) refreshLocal() {
	if addrs, err := localaddr.InterfaceAddrs(e.cfg.Interface); err == nil {
		e.setLocal(addrs)
	}
}

// setLocal replaces the local addresses, and tells the table, whose fast
// path reuses what the old set answered (flow.Table.LocalityChanged).
func (e *Engine) setLocal(addrs []netip.Addr) {
	e.local.Set(addrs)
	e.table.LocalityChanged()
}

func (e *Engine) collectKernelStats(src source.Source) {
	if src == nil {
		return
	}
	if st, err := src.Stats(); err == nil {
		e.kernel = st
	}
}

// Snapshot returns a consistent copy of the flow table and counters. While
// Run is active the copy is made by Run's goroutine between two packets, so
// the packet path needs no lock; ctx bounds the wait.
func (e *Engine) Snapshot(ctx context.Context) (*Snapshot, error) {
	var s *Snapshot
	if err := e.call(ctx, func(src source.Source) {
		e.collectKernelStats(src)
		s = e.snapshot()
	}); err != nil {
		return nil, fmt.Errorf("capture: snapshot: %w", err)
	}
	return s, nil
}

// request is work for the goroutine that owns the table.
type request struct {
	fn   func(src source.Source)
	done chan struct{} // closed once fn has returned
}

// call runs fn on the goroutine that owns the table: Run's, between two
// packets, with its source, or, while Run is not active, the caller's,
// under e.mu, with a nil source. ctx bounds the wait; fn may still run
// after call returned ctx's error, so it must only write what the caller
// reads on success.
func (e *Engine) call(ctx context.Context, fn func(src source.Source)) error {
	for {
		e.mu.Lock()
		if !e.running {
			fn(nil)
			e.mu.Unlock()
			return nil
		}
		runDone, src := e.runDone, e.src
		e.mu.Unlock()

		req := request{fn: fn, done: make(chan struct{})}
		if e.send(ctx, req, src, runDone) {
			select {
			case <-req.done:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// Run ended meanwhile: the table is free to use directly.
	}
}

// wakeRetry spaces send's wake-ups of the source.
const wakeRetry = 10 * time.Millisecond

// send hands req to Run's loop, waking src so that a loop waiting for a
// frame takes it now rather than at its poll timeout. The loop only takes
// requests between two waits, and a wake that came before this goroutine
// was ready to hand over is spent: it wakes src again every wakeRetry
// until the loop takes req. It reports false if Run ended or ctx was done
// first.
func (e *Engine) send(ctx context.Context, req request, src source.Source, runDone chan struct{}) bool {
	retry := time.NewTimer(0)
	defer retry.Stop()
	for {
		select {
		case e.requests <- req:
			return true
		case <-retry.C:
			src.Wake()
			retry.Reset(wakeRetry)
		case <-runDone:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

func (e *Engine) snapshot() *Snapshot {
	s := &Snapshot{
		Taken:         time.Now(),
		CaptureTime:   e.lastTS,
		Stats:         e.stats,
		LocalIPs:      e.local.Addrs(),
		InferredLocal: e.inferred,
		LinkDown:      e.linkDown,
		Filter:        e.filter,
	}
	s.Stats.Kernel = e.kernelOld.Then(e.kernel)
	s.Stats.Flow = e.table.Counters()
	s.Flows = e.table.AppendSummaries(make([]flow.Summary, 0, s.Stats.Flow.Flows))
	if e.dns != nil {
		s.DNSNames, s.DNSCached = e.dns.names(s.Flows), e.dns.cache.Len()
	}
	return s
}
