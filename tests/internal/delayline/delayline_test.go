package delayline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/gometro/go-metro/internal/testwait"
)

// memPort is an in-memory Port: frames pushed into in are read by the line,
// frames the line writes appear on out.
type memPort struct {
	in       chan []byte
	out      chan []byte
	writeErr error
}

func newMemPort() *memPort {
	return &memPort{in: make(chan []byte, 1024), out: make(chan []byte, 1024)}
}

func (m *memPort) ReadFrame(buf []byte) (int, int64, error) {
	select {
	case f := <-m.in:
		copy(buf, f)
		return len(f), 0, nil
	case <-time.After(5 * time.Millisecond):
		return 0, 0, ErrTimeout
	}
}

func (m *memPort) WriteFrame(f []byte) error {
	if m.writeErr != nil {
		return m.writeErr
	}
	m.out <- append([]byte(nil), f...)
	return nil
}

func (m *memPort) KernelDrops() uint64 { return 0 }

// startLine runs a line between two memPorts and stops it at test end.
func startLine(t *testing.T, cfg Config) (*Line, *memPort, *memPort) {
	t.Helper()
	a, b := newMemPort(), newMemPort()
	l, err := New(cfg, a, b)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return l, a, b
}

// waitFor polls cond until it holds; the deadline only guards against a
// hung test, it is not a timing assertion.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testwait.For(t, what, 10*time.Second, cond)
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{"zero is valid", Config{}, false},
		{"typical", Config{QueueLimit: 16, AtoB: Dir{Delay: 25 * time.Millisecond, Jitter: 5 * time.Millisecond, Loss: 0.01}}, false},
		{"loss one", Config{QueueLimit: 16, BtoA: Dir{Loss: 1}}, false},
		{"negative delay", Config{AtoB: Dir{Delay: -1}}, true},
		{"negative jitter", Config{BtoA: Dir{Jitter: -1}}, true},
		{"loss above one", Config{AtoB: Dir{Loss: 1.5}}, true},
		{"negative loss", Config{BtoA: Dir{Loss: -0.1}}, true},
		{"NaN loss", Config{AtoB: Dir{Loss: math.NaN()}}, true},
		{"negative queue", Config{QueueLimit: -1}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			if cfg.QueueLimit == 0 && tc.wantErr {
				cfg.QueueLimit = 16 // keep failing cases cheap
			}
			_, err := New(cfg, newMemPort(), newMemPort())
			if (err != nil) != tc.wantErr {
				t.Fatalf("New(%+v) error = %v, want error %v", tc.cfg, err, tc.wantErr)
			}
		})
	}
}

func TestSchedulerRelease(t *testing.T) {
	ms := int64(time.Millisecond)
	tests := []struct {
		name     string
		dir      Dir
		arrivals []int64
		// every release must be in [arrival+delay-jitter, arrival+delay+jitter]
		// unless raised to the previous release (order) or to the arrival.
	}{
		{"fixed delay", Dir{Delay: 10 * time.Millisecond}, []int64{0, 1, 2, 100 * ms, 100*ms + 1}},
		{"jitter, sparse", Dir{Delay: 50 * time.Millisecond, Jitter: 5 * time.Millisecond}, spaced(1000, 20*ms)},
		{"jitter, dense: order clamps", Dir{Delay: 50 * time.Millisecond, Jitter: 5 * time.Millisecond}, spaced(1000, 10_000)},
		{"jitter larger than delay", Dir{Delay: time.Millisecond, Jitter: 5 * time.Millisecond}, spaced(1000, ms)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newScheduler(tc.dir, 42)
			var prev int64
			clamped := 0
			for i, a := range tc.arrivals {
				r := s.release(a)
				if r < prev {
					t.Fatalf("frame %d released at %d before the previous frame (%d): reordered", i, r, prev)
				}
				if r < a {
					t.Fatalf("frame %d released at %d before it arrived (%d)", i, r, a)
				}
				lo, hi := a+int64(tc.dir.Delay-tc.dir.Jitter), a+int64(tc.dir.Delay+tc.dir.Jitter)
				if r > hi && r != prev && r != a {
					t.Fatalf("frame %d released at %d, after the jitter window [%d,%d]", i, r, lo, hi)
				}
				if r < lo {
					t.Fatalf("frame %d released at %d, before the jitter window [%d,%d]", i, r, lo, hi)
				}
				if r == prev && i > 0 {
					clamped++
				}
				prev = r
			}
			if tc.dir.Jitter == 0 && clamped > 0 {
				t.Errorf("fixed delay clamped %d frames; want none", clamped)
			}
			t.Logf("%d of %d releases raised to keep order", clamped, len(tc.arrivals))
		})
	}
}

// TestSchedulerBurst checks ACK compression: releases fall on burst
// boundaries only, never before arrival plus delay nor more than one burst
// after it, in order; frames due within one interval leave together.
func TestSchedulerBurst(t *testing.T) {
	ms := int64(time.Millisecond)
	dir := Dir{Delay: 10 * time.Millisecond, Burst: 25 * time.Millisecond}
	s := newScheduler(dir, 42)
	var prev int64
	bursts := map[int64]int{}
	for i, a := range spaced(1000, ms/10) {
		r := s.release(a)
		due := a + int64(dir.Delay)
		switch {
		case r%int64(dir.Burst) != 0:
			t.Fatalf("frame %d released at %d, not on a burst boundary", i, r)
		case r < due || r >= due+int64(dir.Burst):
			t.Fatalf("frame %d due at %d released at %d: outside [due, due+burst)", i, due, r)
		case r < prev:
			t.Fatalf("frame %d released before the previous frame: reordered", i)
		}
		prev = r
		bursts[r]++
	}
	// 100 ms of arrivals, 10 per ms: 250 frames per full 25 ms burst.
	if len(bursts) > 5 {
		t.Fatalf("%d distinct release instants for 100 ms of frames; want at most 5 bursts", len(bursts))
	}
	if err := dir.validate("x"); err != nil {
		t.Fatal(err)
	}
	if err := (Dir{Burst: -1}).validate("x"); err == nil {
		t.Fatal("negative burst accepted")
	}
}

func spaced(n int, gap int64) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(i) * gap
	}
	return out
}

func TestSchedulerLoss(t *testing.T) {
	const n = 200_000
	tests := []struct {
		loss float64
	}{{0}, {0.01}, {0.1}, {1}}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.loss), func(t *testing.T) {
			s := newScheduler(Dir{Loss: tc.loss}, 7)
			lost := 0
			for i := 0; i < n; i++ {
				if s.lose() {
					lost++
				}
			}
			// Binomial: 6 standard deviations, so only a broken sampler fails.
			want := tc.loss * n
			tol := 6 * math.Sqrt(n*tc.loss*(1-tc.loss))
			if math.Abs(float64(lost)-want) > tol {
				t.Fatalf("lost %d of %d at p=%v, want %.0f +- %.0f", lost, n, tc.loss, want, tol)
			}
		})
	}
}

func TestForwardsInOrderBothWays(t *testing.T) {
	// The queue holds every frame: memPorts read faster than the sender
	// writes, and queue drops are tested in TestDrops.
	l, a, b := startLine(t, Config{QueueLimit: 1024, FrameSize: 128})
	const n = 500
	go func() {
		for i := 0; i < n; i++ {
			a.in <- []byte(fmt.Sprintf("ab-%04d", i))
			b.in <- []byte(fmt.Sprintf("ba-%04d", i))
		}
	}()
	for _, tc := range []struct {
		name   string
		out    chan []byte
		prefix string
	}{{"a->b", b.out, "ab"}, {"b->a", a.out, "ba"}} {
		for i := 0; i < n; i++ {
			got := <-tc.out
			want := fmt.Sprintf("%s-%04d", tc.prefix, i)
			if !bytes.Equal(got, []byte(want)) {
				t.Fatalf("%s frame %d = %q, want %q", tc.name, i, got, want)
			}
		}
	}
	waitFor(t, "counters", func() bool { st := l.Stats(); return st.AtoB.Forwarded == n && st.BtoA.Forwarded == n })
	st := l.Stats()
	for _, c := range []Counters{st.AtoB, st.BtoA} {
		if c.Received != n || c.Dropped() != 0 || c.Queued != 0 {
			t.Errorf("counters %+v: want %d received, 0 dropped, 0 queued", c, n)
		}
		var hist uint64
		for _, h := range c.LateHist {
			hist += h
		}
		if hist != n {
			t.Errorf("lateness histogram holds %d frames, want %d", hist, n)
		}
	}
}

func TestDrops(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		sizes []int // frame sizes sent A->B
		want  Counters
	}{
		{
			name:  "queue full",
			cfg:   Config{QueueLimit: 4, FrameSize: 64, AtoB: Dir{Delay: time.Hour}},
			sizes: []int{10, 10, 10, 10, 10, 10, 10, 10, 10, 10},
			want:  Counters{Received: 10, DroppedQueue: 6, Queued: 4},
		},
		{
			name:  "all lost",
			cfg:   Config{QueueLimit: 4, FrameSize: 64, AtoB: Dir{Loss: 1}},
			sizes: []int{10, 10, 10, 10, 10, 10, 10},
			want:  Counters{Received: 7, DroppedLoss: 7},
		},
		{
			name:  "oversize",
			cfg:   Config{QueueLimit: 4, FrameSize: 64},
			sizes: []int{64, 65, 10, 1000},
			want:  Counters{Received: 4, DroppedOversize: 2, Forwarded: 2},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, a, _ := startLine(t, tc.cfg)
			for _, s := range tc.sizes {
				a.in <- make([]byte, s)
			}
			// Wait until every frame has reached its final place.
			waitFor(t, "frames settled", func() bool {
				c := l.Stats().AtoB
				return c.Received == uint64(len(tc.sizes)) &&
					c.Forwarded+c.Dropped()+c.Queued == c.Received
			})
			got := l.Stats().AtoB
			got.LateMaxNs, got.LateMeanNs, got.LateHist = 0, 0, tc.want.LateHist
			if got != tc.want {
				t.Fatalf("counters %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestWriteErrorsCounted(t *testing.T) {
	a, b := newMemPort(), newMemPort()
	b.writeErr = errors.New("link down")
	l, err := New(Config{QueueLimit: 8, FrameSize: 64}, a, b)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	for i := 0; i < 3; i++ {
		a.in <- []byte("x")
	}
	waitFor(t, "write errors", func() bool { return l.Stats().AtoB.WriteErrors == 3 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v (a refused write is counted, not fatal)", err)
	}
	if c := l.Stats().AtoB; c.Forwarded != 0 {
		t.Fatalf("forwarded %d frames through a failing port", c.Forwarded)
	}
}

// failPort fails reads with a real error, which must end Run.
type failPort struct{ memPort }

func (f *failPort) ReadFrame([]byte) (int, int64, error) { return 0, 0, errors.New("socket gone") }

func TestReadErrorStopsRun(t *testing.T) {
	l, err := New(Config{QueueLimit: 8, FrameSize: 64}, &failPort{*newMemPort()}, newMemPort())
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Run(context.Background()); err == nil {
		t.Fatal("Run returned nil after a port read error")
	}
}
