// Package delayline is a userspace stand-in for netem: it bridges two layer-2
// ports and, per direction, delays every frame by a fixed one-way delay plus
// optional jitter, drops frames at random with a given probability, and never
// reorders (a frame is never released before the one ahead of it).
//
// The kernel this project is tested on has no netem qdisc, so the end-to-end
// lab (tests/lab) runs this between two network namespaces to give TCP a real
// round-trip time. It must not add loss of its own: queues are bounded but
// large, every drop is counted by cause, and release timing is measured
// (lateness against the scheduled release) so tests can ground their
// tolerances in what the line actually did.
package delayline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// ErrTimeout is returned by Port.ReadFrame when no frame arrived within the
// port's read timeout. It lets readers notice cancellation.
var ErrTimeout = errors.New("delayline: read timeout")

// Port is one side of the bridge. ReadFrame is only called from one goroutine
// and WriteFrame only from another, so implementations need no locking
// between them.
type Port interface {
	// ReadFrame reads one frame into buf and returns its full length, which
	// is larger than len(buf) if the frame was truncated, and the wall-clock
	// time (ns since the Unix epoch) the kernel received it, or 0 if the
	// port does not know. It returns ErrTimeout when idle.
	ReadFrame(buf []byte) (n int, rxWall int64, err error)
	// WriteFrame sends one frame.
	WriteFrame(frame []byte) error
	// KernelDrops returns frames the port's kernel queue dropped so far (0
	// for ports without such a queue).
	KernelDrops() uint64
}

// Dir is the impairment of one direction.
type Dir struct {
	Delay  time.Duration // fixed one-way delay added to every frame
	Jitter time.Duration // uniform extra delay in [-Jitter, +Jitter], clamped to keep order and >= 0
	Loss   float64       // probability in [0,1] that a frame is dropped
	// Burst, when positive, compresses the direction: a frame due at t is
	// held until the next multiple of Burst since the line started and
	// released then, back to back with every other frame held, as a busy
	// receive path or an aggregating link does to ACKs (ACK compression).
	Burst time.Duration
}

func (d Dir) validate(name string) error {
	switch {
	case d.Delay < 0:
		return fmt.Errorf("delayline: %s delay %v is negative", name, d.Delay)
	case d.Jitter < 0:
		return fmt.Errorf("delayline: %s jitter %v is negative", name, d.Jitter)
	case d.Loss < 0 || d.Loss > 1 || d.Loss != d.Loss:
		return fmt.Errorf("delayline: %s loss %v is not a probability in [0,1]", name, d.Loss)
	case d.Burst < 0:
		return fmt.Errorf("delayline: %s burst %v is negative", name, d.Burst)
	}
	return nil
}

// Config configures a Line. Zero values take the documented defaults.
type Config struct {
	AtoB, BtoA Dir
	// QueueLimit is the number of frames each direction may hold while they
	// wait for release; a frame arriving when it is full is dropped and
	// counted. Default 65536: 150 ms of one-way delay at over 400k frames/s.
	QueueLimit int
	// FrameSize is the largest frame kept; longer frames are dropped and
	// counted. Default 2048 (the lab's veths have offloads off, MTU 1500).
	FrameSize int
	// SpinMargin is how long before a release the sender stops sleeping and
	// spins on the clock. Sleeping alone overshoots by 50 us typically and by
	// milliseconds at worst on a busy VM. Default 200us.
	SpinMargin time.Duration
	// Seed makes loss and jitter reproducible; 0 picks a fixed default.
	Seed uint64
}

const (
	defaultQueueLimit = 65536
	defaultFrameSize  = 2048
	defaultSpinMargin = 200 * time.Microsecond
	maxSleep          = 50 * time.Millisecond
)

func (c *Config) setDefaults() error {
	if err := c.AtoB.validate("a->b"); err != nil {
		return err
	}
	if err := c.BtoA.validate("b->a"); err != nil {
		return err
	}
	if c.QueueLimit < 0 || c.FrameSize < 0 || c.SpinMargin < 0 {
		return fmt.Errorf("delayline: negative queue limit %d, frame size %d or spin margin %v",
			c.QueueLimit, c.FrameSize, c.SpinMargin)
	}
	c.QueueLimit = cmp.Or(c.QueueLimit, defaultQueueLimit)
	c.FrameSize = cmp.Or(c.FrameSize, defaultFrameSize)
	c.SpinMargin = cmp.Or(c.SpinMargin, defaultSpinMargin)
	c.Seed = cmp.Or(c.Seed, 0x5eed_de1a_711e)
	return nil
}

// LateBuckets are the upper bounds of the release-lateness histogram; the
// last bucket counts everything later than the last bound.
var LateBuckets = [...]time.Duration{
	10 * time.Microsecond, 50 * time.Microsecond, 100 * time.Microsecond,
	250 * time.Microsecond, 500 * time.Microsecond, time.Millisecond,
	2 * time.Millisecond, 5 * time.Millisecond,
}

// Counters describe one direction. They are cumulative.
type Counters struct {
	Received        uint64 `json:"received"`         // frames read from the input port
	Forwarded       uint64 `json:"forwarded"`        // frames written to the output port
	DroppedLoss     uint64 `json:"dropped_loss"`     // dropped on purpose (Loss)
	DroppedQueue    uint64 `json:"dropped_queue"`    // dropped because QueueLimit frames were waiting
	DroppedOversize uint64 `json:"dropped_oversize"` // longer than FrameSize
	WriteErrors     uint64 `json:"write_errors"`     // output port refused the frame
	KernelDrops     uint64 `json:"kernel_drops"`     // dropped by the input port's kernel queue
	Queued          uint64 `json:"queued"`           // waiting at the time of the snapshot
	// ReadDelayMeanNs is the mean time from the kernel's receipt of a frame
	// to the reader handling it; frames are scheduled from the receipt, so
	// this delay is absorbed, not added.
	ReadDelayMeanNs int64 `json:"read_delay_mean_ns"`
	// Release lateness: how long after its scheduled release a frame was
	// actually written (write call returned), counted from the kernel's
	// receipt when the port reports it.
	LateMaxNs  int64                        `json:"late_max_ns"`
	LateMeanNs int64                        `json:"late_mean_ns"`
	LateHist   [len(LateBuckets) + 1]uint64 `json:"late_hist"`
}

// Dropped is every frame this direction lost, on purpose or not.
func (c Counters) Dropped() uint64 {
	return c.DroppedLoss + c.DroppedQueue + c.DroppedOversize + c.WriteErrors + c.KernelDrops
}

// Stats are both directions' counters.
type Stats struct {
	AtoB Counters `json:"a_to_b"`
	BtoA Counters `json:"b_to_a"`
}

// Line bridges two ports. Create it with New and run it with Run.
type Line struct {
	cfg  Config
	a, b Port
	ab   *pipe
	ba   *pipe
}

// New checks cfg and prepares a line between a and b. Memory for the queues
// is reserved up front (pages are touched only when used).
func New(cfg Config, a, b Port) (*Line, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	l := &Line{cfg: cfg, a: a, b: b}
	l.ab = newPipe(cfg, cfg.AtoB, a, b, cfg.Seed)
	l.ba = newPipe(cfg, cfg.BtoA, b, a, cfg.Seed^0x9e3779b97f4a7c15)
	return l, nil
}

// Run forwards frames in both directions until ctx is cancelled, then
// returns nil, or returns the first port error that is not a timeout.
// Frames still queued at cancellation are discarded (counted as Queued).
func (l *Line) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	start := func(f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if r := recover(); r != nil {
					errs <- fmt.Errorf("delayline: panic: %v", r)
					cancel()
				}
			}()
			if err := f(ctx); err != nil {
				errs <- err
				cancel()
			}
		}()
	}
	start(l.ab.readLoop)
	start(l.ab.sendLoop)
	start(l.ba.readLoop)
	start(l.ba.sendLoop)
	wg.Wait()
	close(errs)
	return <-errs // nil if none
}

// Stats returns a snapshot of the counters. It is safe to call while Run is
// running.
func (l *Line) Stats() Stats {
	return Stats{AtoB: l.ab.counters(), BtoA: l.ba.counters()}
}

// frame is a queued frame: a slot of the slab and when to release it.
type frame struct {
	slot    int32
	n       int32
	release int64 // ns since the pipe's epoch (monotonic)
}

// pipe is one direction: a reader that stamps, schedules and queues frames,
// and a sender that releases them on time. The free list and the queue are
// both channels sized QueueLimit, so neither blocks the reader: an empty free
// list means QueueLimit frames are waiting, and the frame is dropped.
type pipe struct {
	dir        Dir
	in, out    Port
	frameSize  int
	spinMargin int64
	slab       []byte
	free       chan int32
	queue      chan frame
	epoch      time.Time
	sched      scheduler

	received, enqueued, forwarded, lost, qdrop, oversize, werr atomic.Uint64
	lateMax, lateSum                                           atomic.Int64
	readDelaySum, readDelayN                                   atomic.Int64
	lateHist                                                   [len(LateBuckets) + 1]atomic.Uint64
}

func newPipe(cfg Config, dir Dir, in, out Port, seed uint64) *pipe {
	p := &pipe{
		dir: dir, in: in, out: out,
		frameSize:  cfg.FrameSize,
		spinMargin: int64(cfg.SpinMargin),
		slab:       make([]byte, cfg.QueueLimit*cfg.FrameSize),
		free:       make(chan int32, cfg.QueueLimit),
		queue:      make(chan frame, cfg.QueueLimit),
		epoch:      time.Now(),
		sched:      newScheduler(dir, seed),
	}
	for i := 0; i < cfg.QueueLimit; i++ {
		p.free <- int32(i)
	}
	return p
}

func (p *pipe) now() int64 { return int64(time.Since(p.epoch)) }

func (p *pipe) readLoop(ctx context.Context) error {
	scratch := make([]byte, p.frameSize)
	for ctx.Err() == nil {
		var slot int32 = -1
		buf := scratch
		select {
		case slot = <-p.free:
			buf = p.slab[int(slot)*p.frameSize : (int(slot)+1)*p.frameSize]
		default: // queue full: still read, to count and drop the frame
		}
		n, rxWall, err := p.in.ReadFrame(buf)
		if err != nil {
			if slot >= 0 {
				p.free <- slot
			}
			if errors.Is(err, ErrTimeout) {
				continue
			}
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("delayline: read: %w", err)
		}
		arrival := p.now()
		if rxWall > 0 {
			// Schedule from the kernel's receive time: time spent before
			// this goroutine ran is part of the delay, not added to it. The
			// epoch's wall and monotonic readings map one clock to the
			// other (a wall-clock step during a test would skew this).
			if k := rxWall - p.epoch.UnixNano(); k > 0 && k <= arrival {
				p.readDelaySum.Add(arrival - k)
				p.readDelayN.Add(1)
				arrival = k
			}
		}
		p.received.Add(1)
		drop := true
		switch {
		case n > len(buf):
			p.oversize.Add(1)
		case slot < 0:
			p.qdrop.Add(1)
		case p.sched.lose():
			p.lost.Add(1)
		default:
			drop = false
		}
		if drop {
			if slot >= 0 {
				p.free <- slot
			}
			continue
		}
		p.enqueued.Add(1)
		p.queue <- frame{slot: slot, n: int32(n), release: p.sched.release(arrival)}
	}
	return nil
}

func (p *pipe) sendLoop(ctx context.Context) error {
	// Precise sleeps need a thread of our own with minimal timer slack.
	lockThreadForTiming()
	for {
		var f frame
		select {
		case <-ctx.Done():
			return nil
		case f = <-p.queue:
		}
		p.waitUntil(ctx, f.release)
		off := int(f.slot) * p.frameSize
		err := p.out.WriteFrame(p.slab[off : off+int(f.n)])
		late := p.now() - f.release
		p.free <- f.slot
		if err != nil {
			p.werr.Add(1)
			continue
		}
		p.forwarded.Add(1)
		p.recordLate(late)
	}
}

// waitUntil sleeps until spinMargin before t, then spins until t.
func (p *pipe) waitUntil(ctx context.Context, t int64) {
	for {
		d := t - p.now()
		if d <= 0 || ctx.Err() != nil {
			return
		}
		if d > p.spinMargin {
			// Sleep in bounded steps so cancellation is noticed.
			sleepPrecise(min(time.Duration(d-p.spinMargin), maxSleep))
			continue
		}
		// Spin for the last stretch. The sender holds a locked thread, so
		// yielding only lets other goroutines of this process run.
		yield()
	}
}

func (p *pipe) recordLate(late int64) {
	if late < 0 {
		late = 0
	}
	for {
		m := p.lateMax.Load()
		if late <= m || p.lateMax.CompareAndSwap(m, late) {
			break
		}
	}
	p.lateSum.Add(late)
	i := 0
	for i < len(LateBuckets) && time.Duration(late) > LateBuckets[i] {
		i++
	}
	p.lateHist[i].Add(1)
}

func (p *pipe) counters() Counters {
	c := Counters{
		Received:        p.received.Load(),
		Forwarded:       p.forwarded.Load(),
		DroppedLoss:     p.lost.Load(),
		DroppedQueue:    p.qdrop.Load(),
		DroppedOversize: p.oversize.Load(),
		WriteErrors:     p.werr.Load(),
		KernelDrops:     p.in.KernelDrops(),
		LateMaxNs:       p.lateMax.Load(),
	}
	// Frames the sender holds (waiting for their release) are no longer in
	// the channel, so count what went in minus what came out.
	c.Queued = p.enqueued.Load() - c.Forwarded - c.WriteErrors
	if n := p.readDelayN.Load(); n > 0 {
		c.ReadDelayMeanNs = p.readDelaySum.Load() / n
	}
	if c.Forwarded > 0 {
		c.LateMeanNs = p.lateSum.Load() / int64(c.Forwarded)
	}
	for i := range p.lateHist {
		c.LateHist[i] = p.lateHist[i].Load()
	}
	return c
}

// scheduler decides each frame's fate and release time. It is used by one
// goroutine only.
type scheduler struct {
	dir  Dir
	rng  *rand.Rand
	last int64 // release time of the previous frame
}

func newScheduler(dir Dir, seed uint64) scheduler {
	return scheduler{dir: dir, rng: rand.New(rand.NewPCG(seed, seed>>1|1))}
}

// lose reports whether the next frame is dropped on purpose.
func (s *scheduler) lose() bool {
	return s.dir.Loss > 0 && s.rng.Float64() < s.dir.Loss
}

// release returns when a frame that arrived at arrival (ns since the pipe's
// epoch) leaves: arrival plus delay plus uniform jitter, never before
// arrival, and never before the previous frame's release, which keeps order
// the way a link does (netem without reordering does the same); with Burst,
// rounded up to the next burst boundary.
func (s *scheduler) release(arrival int64) int64 {
	t := arrival + int64(s.dir.Delay)
	if j := int64(s.dir.Jitter); j > 0 {
		t += s.rng.Int64N(2*j+1) - j
	}
	if t < arrival {
		t = arrival
	}
	if t < s.last {
		t = s.last
	}
	s.last = t
	if b := int64(s.dir.Burst); b > 0 {
		// Rounding up keeps the order: release times stay non-decreasing.
		t += (b - t%b) % b
	}
	return t
}
