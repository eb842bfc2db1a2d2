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
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/gometro/go-metro/capture/dns"
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

	MaxFlows int           // hard cap on tracked flows; default DefaultMaxFlows
	IdleTTL  time.Duration // drop flows idle this long; default 300s
	ExpTTL   time.Duration // drop closed (FIN/RST) flows this long after their last packet; default 60s

	PollTimeout time.Duration // how often an idle live capture does its housekeeping (Cancel and snapshots wake it); default DefaultPollTimeout
	RingSize    int           // bytes of kernel capture ring, fixed; 0: sized by need (source.Options.RingSize)

	// Workers is how many goroutines capture a live interface, each with
	// its own socket, ring and flow table, among which the kernel spreads
	// the frames so that every connection stays with one (source.Fanout).
	// MaxFlows is their total, split evenly, and each ring is fixed at
	// RingSize, or source.FanoutRingSize when RingSize is 0. 0 or 1: one
	// worker, the ring sized by need. A file is always read by one.
	Workers int

	// ReaderNice is the nice value (-20 to 19) of each live worker's
	// thread and of the threads that open its resized rings; 0 leaves the
	// process's. A ring holds a burst only as long as its reader can be
	// kept off a CPU: a small ring (source.InitialRingSize, about 25 ms at
	// 1 M packets/s) overflows at the onset of a burst on a host whose
	// CPUs are busy, where a reader at the same priority as the work
	// waits 40-160 ms for its turn. Negative values need CAP_SYS_NICE:
	// without it Run fails with source.ErrNicePermission.
	ReaderNice int
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
	// Workers is the number of capture workers whose tables the snapshot
	// merges (Config.Workers).
	Workers int

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
	DefaultSnaplen = source.DefaultSnaplen
	// DefaultMaxFlows is what a busy proxy or load balancer holds open
	// at once, a quarter of a million connections, within
	// flow.ReservedBytes(DefaultMaxFlows), 164 MiB, of which only what
	// the tracked flows use is resident: 480 bytes each with a handshake
	// or a request/response exchange, more for a large flight or a busy
	// connection (capture/flow/rings.go). A Snapshot copies the tracked
	// flows too (flow.Summary, about 330 bytes each); FlowPages lists
	// them a part at a time instead, as the check does.
	DefaultMaxFlows    = 1 << 18
	DefaultIdleTTL     = 300 * time.Second
	DefaultExpTTL      = 60 * time.Second
	DefaultPollTimeout = source.DefaultPollTimeout
	// MaxWorkers bounds Config.Workers: a worker per CPU is the most that
	// helps, and each costs a fixed ring.
	MaxWorkers = 64
	// MinNice and MaxNice bound Config.ReaderNice: Linux's nice values.
	MinNice, MaxNice = -20, 19

	// housekeepEvery is how many packets pass between checks for
	// cancellation, snapshot requests and expiry: rare enough to cost
	// nothing per packet, frequent enough to answer within microseconds.
	housekeepEvery  = 1024
	housekeepPeriod = int64(20 * time.Millisecond)
	sweepInterval   = int64(time.Second)
	localRefresh    = 5 * time.Second
)

// Engine reads a capture into flow tables: one source and one table, or,
// with Config.Workers, one of each per worker. Run owns the tables; all
// other methods are safe to call from any goroutine.
type Engine struct {
	cfg     Config
	tunnels packet.Encap // encapsulations decoded; see expectedTunnels
	workers []*worker
	// dns is the name cache of DNS answers (nil unless Config.DNSNames),
	// shared by the workers: any of them may see an answer that names the
	// remote of another's flow (dnsnames.go).
	dns *dnsNames

	opened   chan struct{} // closed once a source has opened
	openOnce sync.Once

	mu          sync.Mutex // guards running, runDone, the workers' sources and sourceOpens, and the tables while not running
	running     bool
	runDone     chan struct{}
	sourceOpens uint64
	inferred    bool
}

// worker is one source and its flow table. While Run is active, everything
// here is its goroutine's alone; other goroutines reach it through
// requests (Engine.call).
type worker struct {
	e  *Engine
	id int
	// firstSlot is where this worker's table starts among the engine's
	// slots (flow.Summary.Slot): the workers' tables follow each other.
	firstSlot int32
	// local is this worker's own set of local addresses, so that it alone
	// changes what its table's Sides answers, and tells the table before
	// its next packet (flow.Table.LocalityChanged).
	local *localaddr.Set
	table *flow.Table

	remotes []netip.Prefix // the monitored remotes
	filter  FilterStatus   // of the current live source
	// stale is set when the kernel refused every filter for new remotes:
	// the source still runs the old program, so Run ends with it and the
	// caller's reopen installs the new one before binding.
	stale    error
	requests chan request
	// localUpdates carries the addresses worker 0 read (only it reads
	// them: it runs on Run's goroutine, in the namespace Run was called
	// in) to the other workers; the latest replaces one not yet taken.
	localUpdates chan []netip.Addr
	dnsAnswer    *dns.Answer // scratch of the DNS answers this worker parses (dnsnames.go)

	src      source.Source // Run's, while running: call wakes it
	stats    Stats
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
	workers := max(cfg.Workers, 1)
	switch {
	case cfg.Workers < 0 || cfg.Workers > MaxWorkers:
		return nil, fmt.Errorf("capture: workers %d is out of range: must be between 1 and %d", cfg.Workers, MaxWorkers)
	case cfg.ReaderNice < MinNice || cfg.ReaderNice > MaxNice:
		return nil, fmt.Errorf("capture: reader nice %d is out of range: must be between %d and %d", cfg.ReaderNice, MinNice, MaxNice)
	case cfg.File != "":
		workers = 1 // a file has one reader
	case workers > 1 && cfg.Backend != "" && cfg.Backend != "afpacket":
		return nil, fmt.Errorf("capture: %d workers need the afpacket backend, not %q", workers, cfg.Backend)
	}
	remotes, err := checkRemotes(cfg.Remotes)
	if err != nil {
		return nil, err
	}
	e := &Engine{
		cfg:     cfg,
		tunnels: expectedTunnels(&cfg),
		opened:  make(chan struct{}),
	}
	if cfg.DNSNames {
		e.dns = newDNSNames()
	}
	perWorker := (cfg.MaxFlows + workers - 1) / workers
	for i := range workers {
		w := &worker{
			e:            e,
			id:           i,
			firstSlot:    int32(i * perWorker),
			local:        &localaddr.Set{},
			remotes:      remotes,
			requests:     make(chan request),
			localUpdates: make(chan []netip.Addr, 1),
		}
		if cfg.File != "" {
			w.clock.maxJump = int64(MaxTimeJump)
		}
		if e.dns != nil {
			w.dnsAnswer = &dns.Answer{}
		}
		if err := w.local.SetPrefixes(cfg.LocalIPs); err != nil {
			return nil, fmt.Errorf("capture: local IPs: %w", err)
		}
		w.table = flow.NewTable(flow.TableConfig{
			MaxFlows: perWorker,
			IdleTTL:  int64(cfg.IdleTTL),
			ExpTTL:   int64(cfg.ExpTTL),
		}, w.local, w.monitored)
		e.workers = append(e.workers, w)
	}
	return e, nil
}

// monitored is the user-space remote filter, consulted only when a flow
// would be created.
func (w *worker) monitored(remote netip.AddrPort) bool {
	if ports := w.e.cfg.Ports; len(ports) > 0 && !slices.Contains(ports, remote.Port()) {
		return false
	}
	if len(w.remotes) == 0 {
		return true
	}
	a := remote.Addr()
	for _, p := range w.remotes {
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
// swaps its kernel filters before SetRemotes returns (each worker's
// goroutine does it between two packets, waking a waiting source), so
// traffic of the new addresses is captured from then on. Otherwise the
// remotes apply from the next open.
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
	errs := make([]error, len(e.workers)) // each worker writes its own
	if err := e.call(context.Background(), func(w *worker) {
		w.remotes = cp
		if w.src != nil && e.cfg.File == "" {
			errs[w.id] = w.installFilter(w.src.LinkType(), w.src.SetFilter)
			if errs[w.id] != nil && !errors.Is(errs[w.id], ErrCoarseFilter) {
				w.stale = errs[w.id]
			}
		}
	}); err != nil {
		return err
	}
	// Every worker builds the same program for the same kernel: they
	// succeed or fail alike, and one error says it.
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
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
	return e.call(context.Background(), func(w *worker) {
		_ = w.local.SetPrefixes(cp) // checked above
		w.table.LocalityChanged()
	})
}

// installFilter builds the finest kernel filter for the current remotes and
// ports that attach accepts (filter.Fit) and records it. It returns an
// error wrapping ErrCoarseFilter when that is coarser than asked, and a
// plain error when none was accepted (attach left the previous program).
func (w *worker) installFilter(link packet.LinkType, attach func([]bpf.RawInstruction) error) error {
	e := w.e
	pass := filter.Pass{Tunnels: e.tunnels, DNS: e.dns != nil}
	if len(w.remotes) == 0 && len(e.cfg.Ports) == 0 {
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
		w.filter = FilterStatus{Instructions: len(prog)}
		return nil
	}
	p, err := filter.Fit(link, w.remotes, e.cfg.Ports, e.cfg.Snaplen, pass, attach)
	if err != nil {
		return fmt.Errorf("capture: kernel filter on %s: %w", e.cfg.Interface, err)
	}
	w.filter = FilterStatus{Level: p.Level, Instructions: len(p.Instructions), Detail: p.Describe()}
	if p.Level == filter.Exact {
		return nil
	}
	w.stats.FilterFallbacks++
	return fmt.Errorf("%w on %s: %d remotes and %d ports; using %s", ErrCoarseFilter, e.cfg.Interface, len(w.remotes), len(e.cfg.Ports), p.Describe())
}

// PanicError is the error Run returns when a worker other than the first
// panicked: its goroutine is Run's own, so Run is its panic boundary (the
// first worker runs on the caller's goroutine, whose boundary is the
// caller's). The engine's tables may be half-updated: drop the engine.
type PanicError struct {
	Worker int
	Value  any
	Stack  []byte
}

func (p *PanicError) Error() string {
	return fmt.Sprintf("capture worker %d panicked: %v", p.Worker, p.Value)
}

// Run opens the sources and processes packets until ctx is done (nil), the
// end of a file (nil), or a source failure (the error). Flow state survives
// across Runs, so a caller can re-open a lost interface without losing it.
//
// The first worker runs on the caller's goroutine, the others on goroutines
// of their own; when one stops, with an error or at the end of a file, all
// stop, and Run returns the first error. Run does not recover panics of the
// first worker: a panic is a bug (bad packets are counted, never fatal),
// and the goroutine's owner is its one panic boundary (for the check,
// rttcheck's engine worker); those of the others come back as a
// *PanicError. Run still closes every source on the way out; the flow
// tables may be half-updated, so the owner drops the engine and starts
// from a fresh one.
func (e *Engine) Run(ctx context.Context) (err error) {
	e.mu.Lock()
	if e.running {
		e.mu.Unlock()
		return errors.New("capture: engine is already running")
	}
	srcs, err := e.open()
	if err != nil {
		e.mu.Unlock()
		return err
	}
	e.sourceOpens++
	e.openOnce.Do(func() { close(e.opened) })
	e.running = true
	e.runDone = make(chan struct{})
	for i, w := range e.workers {
		w.src = srcs[i]
	}
	e.mu.Unlock()
	// A live source waits up to PollTimeout for a frame: stopping ends the
	// wait instead of waiting it out.
	runCtx, stop := context.WithCancel(ctx)
	var stopWaking []func() bool
	for _, src := range srcs {
		stopWaking = append(stopWaking, context.AfterFunc(runCtx, src.Wake))
	}
	errs := make([]error, len(e.workers))
	var wg sync.WaitGroup
	for _, w := range e.workers[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer stop() // one worker stopping stops them all
			defer func() {
				if r := recover(); r != nil {
					errs[w.id] = &PanicError{Worker: w.id, Value: r, Stack: debug.Stack()}
				}
			}()
			errs[w.id] = w.run(runCtx)
		}()
	}

	defer func() {
		stop()
		wg.Wait() // before the sources close, even while the first worker panics
		for _, f := range stopWaking {
			f()
		}
		for i, w := range e.workers {
			w.collectKernelStats(srcs[i])
			w.kernelOld = w.kernelOld.Then(w.kernel)
			w.kernel = source.Stats{}
			if cerr := srcs[i].Close(); cerr != nil && err == nil && ctx.Err() == nil {
				err = fmt.Errorf("capture: close: %w", cerr)
			}
		}
		e.mu.Lock()
		e.running = false
		for _, w := range e.workers {
			w.src = nil
		}
		close(e.runDone)
		e.mu.Unlock()
	}()
	errs[0] = e.workers[0].run(runCtx)
	stop()
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// run is the worker's loop on its thread, at Config.ReaderNice when it
// reads a live interface.
func (w *worker) run(ctx context.Context) error {
	if nice := w.e.cfg.ReaderNice; nice != 0 && w.e.cfg.File == "" {
		restore, err := source.LockThreadNice(nice)
		if err != nil {
			return err
		}
		defer restore()
	}
	return w.loop(ctx)
}

func (w *worker) loop(ctx context.Context) error {
	e := w.e
	live := e.cfg.File == ""
	var pkt packet.Packet
	nextLocalRefresh := time.Now().Add(localRefresh)
	countdown := housekeepEvery
	var nextHousekeep int64
	done := ctx.Done()
	src := w.src
	for {
		data, ts, wireLen, err := src.Next()
		if err == nil {
			pkt.IfIndex = uint32(src.Interface())
			w.handle(&pkt, src.LinkType(), data, ts, wireLen)
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
			w.table.Sweep(w.lastTS)
			if err == io.EOF {
				return nil
			}
			return err
		} else if errors.Is(err, source.ErrInterfaceDown) {
			// The socket stays bound and frames resume when the link
			// comes back up: report it, keep going.
			w.stats.LinkDownEvents++
			w.linkDown = true
		} else if !errors.Is(err, source.ErrTimeout) {
			return err // sources name themselves and the failure
		} else if live {
			// Idle: expiry runs on the wall clock so idle flows still age.
			w.lastTS = max(w.lastTS, time.Now().UnixNano())
		}

		// Housekeeping, between packets.
		select {
		case <-done:
			return nil
		case req := <-w.requests:
			req.fn(w)
			close(req.done)
			if err := w.stale; err != nil {
				w.stale = nil
				return err
			}
		case addrs := <-w.localUpdates:
			w.setLocal(addrs)
		default:
		}
		if w.lastTS-w.lastSweep >= sweepInterval {
			w.table.Sweep(w.lastTS)
			w.lastSweep = w.lastTS
		}
		if live && w.id == 0 && time.Now().After(nextLocalRefresh) {
			nextLocalRefresh = time.Now().Add(localRefresh)
			e.refreshLocal()
		}
	}
}

// handle is the per-packet hot path: decode, flow lookup, RTT update.
// It allocates nothing and takes no lock.
func (w *worker) handle(pkt *packet.Packet, link packet.LinkType, data []byte, ts int64, wireLen int) {
	w.stats.Packets++
	if ok, backwards := w.clock.check(ts); !ok {
		if backwards {
			w.stats.TimeBackwards++
		} else {
			w.stats.TimeForward++
		}
		return
	}
	if ts > w.lastTS {
		w.lastTS = ts
	}
	w.linkDown = false
	if st := pkt.Decode(link, data, wireLen); st != packet.OK {
		if st == packet.DNS && w.e.dns != nil {
			w.dnsDatagram(pkt, data, ts)
		}
		w.stats.DecodeErrors[st]++
		return
	}
	if pkt.Tunnel.Encaps != 0 {
		if !pkt.Tunnel.Encaps.Within(w.e.tunnels) {
			w.stats.TunnelSkipped++
			return
		}
		w.stats.Tunnelled++
	}
	w.stats.TCPPackets++
	w.table.Process(pkt, ts)
	if pkt.SrcPort == packet.PortDNS && w.e.dns != nil {
		w.dnsSegment(pkt, data, ts)
	}
}

// handle is the first worker's, for tests and benchmarks that feed frames
// without a source.
func (e *Engine) handle(pkt *packet.Packet, link packet.LinkType, data []byte, ts int64, wireLen int) {
	e.workers[0].handle(pkt, link, data, ts, wireLen)
}

// open opens a source for every worker; callers hold e.mu. Several
// workers share the interface through a fanout group (source.Fanout): the
// members join rejecting every frame, and the filters go on once all have
// joined.
func (e *Engine) open() ([]source.Source, error) {
	if e.cfg.File != "" {
		if len(e.cfg.LocalIPs) == 0 && !e.inferred {
			addrs, err := InferLocal(e.cfg.File)
			if err != nil {
				return nil, err
			}
			e.workers[0].setLocal(addrs)
			e.inferred = true
		}
		// Source errors already say "capture:" and name the file.
		src, err := source.OpenFile(e.cfg.File)
		if err != nil {
			return nil, err
		}
		return []source.Source{src}, nil
	}
	if addrs, err := localaddr.InterfaceAddrs(e.cfg.Interface); err == nil {
		for _, w := range e.workers {
			w.setLocal(addrs)
		}
	}
	opts := source.Options{
		Interface:   e.cfg.Interface,
		Snaplen:     e.cfg.Snaplen,
		PollTimeout: e.cfg.PollTimeout,
		RingSize:    e.cfg.RingSize,
		Nice:        e.cfg.ReaderNice,
	}
	if e.dns != nil {
		opts.WholeLen = filter.DNSSnaplen
	}
	if len(e.workers) == 1 {
		w := e.workers[0]
		// Installed before the socket binds: no frame reaches the ring
		// unfiltered. A coarser program is a warning (Snapshot.Filter),
		// not a reason to capture nothing.
		opts.Filter = func(link packet.LinkType, attach func([]bpf.RawInstruction) error) error {
			if err := w.installFilter(link, attach); err != nil && !errors.Is(err, ErrCoarseFilter) {
				return err
			}
			return nil
		}
		// Errors already say "capture:" and name the interface.
		src, err := source.OpenLive(e.cfg.Backend, opts)
		if err != nil {
			return nil, err
		}
		return []source.Source{src}, nil
	}
	opts.Fanout = source.NewFanout(len(e.workers))
	srcs := make([]source.Source, 0, len(e.workers))
	fail := func(err error) ([]source.Source, error) {
		for _, src := range srcs {
			src.Close()
		}
		return nil, err
	}
	for range e.workers {
		src, err := source.OpenLive(e.cfg.Backend, opts)
		if err != nil {
			return fail(err)
		}
		srcs = append(srcs, src)
	}
	for i, w := range e.workers {
		if err := w.installFilter(srcs[i].LinkType(), srcs[i].SetFilter); err != nil && !errors.Is(err, ErrCoarseFilter) {
			return fail(err)
		}
	}
	return srcs, nil
}

// refreshLocal re-reads the interface's addresses and hands them to every
// worker; on failure the old set stays. Only the first worker calls it,
// on Run's goroutine: the addresses are those of the namespace Run was
// called in.
func (e *Engine) refreshLocal() {
	addrs, err := localaddr.InterfaceAddrs(e.cfg.Interface)
	if err != nil {
		return
	}
	e.workers[0].setLocal(addrs)
	for _, w := range e.workers[1:] {
		select {
		case <-w.localUpdates: // replaced by the newer list
		default:
		}
		w.localUpdates <- addrs // buffered, and only this goroutine sends
	}
}

// setLocal replaces the worker's local addresses, and tells its table,
// whose fast path reuses what the old set answered
// (flow.Table.LocalityChanged).
func (w *worker) setLocal(addrs []netip.Addr) {
	w.local.Set(addrs)
	w.table.LocalityChanged()
}

func (w *worker) collectKernelStats(src source.Source) {
	if src == nil {
		return
	}
	if st, err := src.Stats(); err == nil {
		w.kernel = st
	}
}

// Snapshot returns a consistent copy of the flow tables and counters,
// merged over the workers. While Run is active each worker's part is made
// by its goroutine between two packets, so the packet path needs no lock;
// ctx bounds the wait.
func (e *Engine) Snapshot(ctx context.Context) (*Snapshot, error) {
	parts := make([]*Snapshot, len(e.workers)) // each worker writes its own
	if err := e.call(ctx, func(w *worker) {
		w.collectKernelStats(w.src)
		parts[w.id] = w.snapshot()
	}); err != nil {
		return nil, fmt.Errorf("capture: snapshot: %w", err)
	}
	return e.withNames(e.merge(parts)), nil
}

// withNames adds to s the DNS names of its flows' remotes.
func (e *Engine) withNames(s *Snapshot) *Snapshot {
	if e.dns != nil {
		s.DNSNames, s.DNSCached = e.dns.names(s.Flows), e.dns.cached()
	}
	return s
}

// Stats is Snapshot without the flows (FlowPages lists them): the
// counters, the local addresses, the filter, the size of the DNS name
// cache. It costs nothing per flow.
func (e *Engine) Stats(ctx context.Context) (*Snapshot, error) {
	parts := make([]*Snapshot, len(e.workers))
	if err := e.call(ctx, func(w *worker) {
		w.collectKernelStats(w.src)
		parts[w.id] = w.counters()
	}); err != nil {
		return nil, fmt.Errorf("capture: snapshot: %w", err)
	}
	s := e.merge(parts)
	if e.dns != nil {
		s.DNSCached = e.dns.cached()
	}
	return s, nil
}

// FlowPages calls fn with the summaries of every tracked flow, of every
// worker, at most len(page) at a time, in page, which fn must not keep;
// names are the DNS names of the part's remotes (nil without dns_names).
// Snapshot copies every flow at once, a few hundred bytes each (82 MiB
// at 262,144 flows), and keeps a worker from its ring while it copies
// them all (tens of milliseconds); here each worker copies one part
// between two packets and reads on while fn runs. Each part is
// consistent; a flow that starts while the listing runs may be left to
// the next one (flow.Table.AppendSummariesFrom). takeSamples takes the
// flows' RTT samples as Snapshot does, for the one reader that reports
// them; others leave them. partWait bounds each part's wait for its worker
// (0: ctx alone does), ctx the whole listing; after an error a worker may
// still write to page, so the caller must not use it again.
func (e *Engine) FlowPages(ctx context.Context, page []flow.Summary, takeSamples bool, partWait time.Duration, fn func(flows []flow.Summary, names map[netip.Addr]string)) error {
	if len(page) == 0 {
		return errors.New("capture: FlowPages needs a page of at least one flow")
	}
	for i := range e.workers {
		for from := int32(0); from >= 0; {
			var part []flow.Summary
			pctx, cancel := ctx, context.CancelFunc(func() {})
			if partWait > 0 {
				pctx, cancel = context.WithTimeout(ctx, partWait)
			}
			err := e.callOn(pctx, i, func(w *worker) {
				part, from = w.summaries(page[:0], from, len(page), takeSamples)
			})
			cancel()
			if err != nil {
				return fmt.Errorf("capture: listing flows: %w", err)
			}
			var names map[netip.Addr]string
			if e.dns != nil {
				names = e.dns.names(part)
			}
			fn(part, names)
		}
	}
	return nil
}

// ErrRunning is returned by EachFlow while Run is active.
var ErrRunning = errors.New("capture: the engine is running")

// EachFlow calls fn with the summary of every tracked flow, of every
// worker, in the order flow.Order lists them, one at a time and never all
// at once: listing millions of flows (a replay) costs four bytes per flow
// beyond the tables, where Snapshot's copy costs a few hundred. It takes
// the flows' samples as Snapshot does. The engine must not be running.
func (e *Engine) EachFlow(fn func(*flow.Summary)) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.running {
		return ErrRunning
	}
	// Each worker's flows in order, then a merge of the workers' heads
	// (a file has one worker: no merge).
	ids := make([][]int32, len(e.workers))
	heads := make([]flow.Summary, len(e.workers))
	for i, w := range e.workers {
		ids[i] = w.table.Sorted(nil)
		if len(ids[i]) > 0 {
			heads[i] = w.summaryOf(ids[i][0])
		}
	}
	for {
		next := -1
		for i := range e.workers {
			if len(ids[i]) > 0 && (next < 0 || flow.Order(&heads[i], &heads[next]) < 0) {
				next = i
			}
		}
		if next < 0 {
			return nil
		}
		fn(&heads[next])
		if ids[next] = ids[next][1:]; len(ids[next]) > 0 {
			heads[next] = e.workers[next].summaryOf(ids[next][0])
		}
	}
}

// request is work for the goroutine that owns a worker's table.
type request struct {
	fn   func(w *worker)
	done chan struct{} // closed once fn has returned
}

// call runs fn once for every worker on the goroutine that owns its table:
// the worker's own, between two packets, with its source, or, while Run is
// not active, the caller's, under e.mu, with a nil source. ctx bounds the
// wait; fn may still run after call returned ctx's error, so it must only
// write what the caller reads on success.
func (e *Engine) call(ctx context.Context, fn func(w *worker)) error {
	return e.callOn(ctx, -1, fn)
}

// callOn is call for worker only, or for every worker when only is -1.
func (e *Engine) callOn(ctx context.Context, only int, fn func(w *worker)) error {
	done := make([]bool, len(e.workers))
	for i := range done {
		done[i] = only >= 0 && i != only
	}
	for {
		e.mu.Lock()
		if !e.running {
			for i, w := range e.workers {
				if !done[i] {
					fn(w)
				}
			}
			e.mu.Unlock()
			return nil
		}
		runDone := e.runDone
		srcs := make([]source.Source, len(e.workers))
		for i, w := range e.workers {
			srcs[i] = w.src
		}
		e.mu.Unlock()

		// Hand every worker its request, then wait for each it took.
		reqs := make([]request, len(e.workers))
		for i, w := range e.workers {
			if done[i] {
				continue
			}
			reqs[i] = request{fn: fn, done: make(chan struct{})}
			if !e.send(ctx, w, reqs[i], srcs[i], runDone) {
				reqs[i].done = nil // Run ended, or ctx
			}
		}
		for i := range e.workers {
			if reqs[i].done == nil {
				continue
			}
			select {
			case <-reqs[i].done:
				done[i] = true
			case <-runDone:
				// The worker stopped before it ran fn (it failed while
				// another took its request): its table is free once
				// Run has returned.
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if !slices.Contains(done, false) {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// Run ended meanwhile: the tables it did not reach are free to
		// use directly.
	}
}

// wakeRetry spaces send's wake-ups of the source.
const wakeRetry = 10 * time.Millisecond

// send hands req to w's loop, waking src so that a loop waiting for a
// frame takes it now rather than at its poll timeout. The loop only takes
// requests between two waits, and a wake that came before this goroutine
// was ready to hand over is spent: it wakes src again every wakeRetry
// until the loop takes req. It reports false if Run ended or ctx was done
// first.
func (e *Engine) send(ctx context.Context, w *worker, req request, src source.Source, runDone chan struct{}) bool {
	retry := time.NewTimer(0)
	defer retry.Stop()
	for {
		select {
		case w.requests <- req:
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

// snapshot is the worker's part of a snapshot; merge adds the engine's.
func (w *worker) snapshot() *Snapshot {
	s := w.counters()
	s.Flows, _ = w.summaries(make([]flow.Summary, 0, s.Stats.Flow.Flows), 0, s.Stats.Flow.Flows, true)
	return s
}

// summaryOf is the summary of the flow at slab position id, with its
// engine-wide slot.
func (w *worker) summaryOf(id int32) flow.Summary {
	s := w.table.SummaryOf(id)
	s.Slot += w.firstSlot
	return s
}

// summaries appends the summaries of at most n flows of the worker's
// table, from slab position from on, with their engine-wide slots (see
// flow.Table.AppendSummariesFrom).
func (w *worker) summaries(dst []flow.Summary, from int32, n int, takeSamples bool) (_ []flow.Summary, next int32) {
	start := len(dst)
	dst, next = w.table.AppendSummariesFrom(dst, from, n, takeSamples)
	for i := range dst[start:] {
		dst[start+i].Slot += w.firstSlot
	}
	return dst, next
}

// counters is the worker's part of a snapshot without the flows.
func (w *worker) counters() *Snapshot {
	s := &Snapshot{
		CaptureTime: w.lastTS,
		Stats:       w.stats,
		LocalIPs:    w.local.Addrs(),
		LinkDown:    w.linkDown,
		Filter:      w.filter,
	}
	s.Stats.Kernel = w.kernelOld.Then(w.kernel)
	s.Stats.Flow = w.table.Counters()
	return s
}

// snapshot is Snapshot made on the caller's goroutine, for tests and
// benchmarks that feed frames without Run.
func (e *Engine) snapshot() *Snapshot {
	parts := make([]*Snapshot, len(e.workers))
	for i, w := range e.workers {
		parts[i] = w.snapshot()
	}
	return e.withNames(e.merge(parts))
}

// merge sums the workers' parts into one snapshot. The counters add up;
// the filter and the local addresses are the first worker's (all install
// the same program and see the same addresses), and its count of filter
// fallbacks stands for the instance's.
func (e *Engine) merge(parts []*Snapshot) *Snapshot {
	s := parts[0]
	s.Taken = time.Now()
	s.Workers = len(parts)
	e.mu.Lock()
	s.Stats.SourceOpens = e.sourceOpens
	s.InferredLocal = e.inferred
	e.mu.Unlock()
	if len(parts) == 1 {
		return s
	}
	n := len(s.Flows)
	for _, p := range parts[1:] {
		n += len(p.Flows)
	}
	s.Flows = slices.Grow(s.Flows, n-len(s.Flows))
	for _, p := range parts[1:] {
		s.CaptureTime = max(s.CaptureTime, p.CaptureTime)
		s.LinkDown = s.LinkDown || p.LinkDown
		s.Flows = append(s.Flows, p.Flows...)
		s.Stats.add(&p.Stats)
	}
	return s
}

// add sums o's counters into s: every count of the workers' parts but
// FilterFallbacks and SourceOpens, which are the instance's.
func (s *Stats) add(o *Stats) {
	s.Packets += o.Packets
	s.TCPPackets += o.TCPPackets
	for k := range s.DecodeErrors {
		s.DecodeErrors[k] += o.DecodeErrors[k]
	}
	s.LinkDownEvents = max(s.LinkDownEvents, o.LinkDownEvents)
	s.Tunnelled += o.Tunnelled
	s.TunnelSkipped += o.TunnelSkipped
	s.TimeBackwards += o.TimeBackwards
	s.TimeForward += o.TimeForward
	s.DNS.Answers += o.DNS.Answers
	s.DNS.Malformed += o.DNS.Malformed
	s.DNS.Cut += o.DNS.Cut
	s.Kernel = s.Kernel.Plus(o.Kernel)
	s.Flow = s.Flow.Plus(o.Flow)
}
