package source

import (
	"testing"
	"time"
)

// TestRingSizer walks the sizer through a sequence of observations, each
// with the size it must answer. blocks is what ringGeometry gives the ring
// in use (4 MiB: 8 of 512 KiB; 8, 16, 32 MiB: 8, 16, 32 of 1 MiB).
func TestRingSizer(t *testing.T) {
	const MiB = 1 << 20
	t0 := time.Unix(1e9, 0)
	type step struct {
		at             time.Duration // since t0
		behind, blocks int           // blocks waiting past the one just taken, of blocks
		rate           float64       // MB/s at which the kernel filled it
		dropped        bool
		want           int  // what observe answers
		resize         bool // then the source resizes to want
		fail           bool // then the resize fails
	}
	tests := []struct {
		name  string
		max   int
		steps []step
	}{
		{"keeps up: stays small", 32 * MiB, []step{
			{at: 0, behind: 0, blocks: 8, want: 4 * MiB},
			{at: time.Second, behind: 1, blocks: 8, want: 4 * MiB},
			{at: time.Hour, behind: 0, blocks: 8, want: 4 * MiB}, // never below the start
		}},
		{"a quarter behind: grows fourfold, then to the cap", 32 * MiB, []step{
			{at: 0, behind: 2, blocks: 8, want: 16 * MiB, resize: true},
			{at: time.Second, behind: 3, blocks: 16, want: 16 * MiB},
			{at: 2 * time.Second, behind: 4, blocks: 16, want: 32 * MiB, resize: true},
			{at: 3 * time.Second, behind: 31, blocks: 32, want: 32 * MiB}, // at the cap
		}},
		{"a fill rate the ring holds less than holdTarget of: grows to the power of two that holds it", 32 * MiB, []step{
			{at: 0, blocks: 8, rate: 16, want: 4 * MiB},                              // 4 MB in 250 ms: fits
			{at: time.Second, blocks: 8, rate: 20, want: 8 * MiB},                    // 5 MB
			{at: 2 * time.Second, blocks: 8, rate: 60, want: 16 * MiB, resize: true}, // 15 MB
			{at: 3 * time.Second, blocks: 16, rate: 1000, want: 32 * MiB},            // more than the cap needs: the cap
		}},
		{"a rate that keeps needing the size keeps it; when it falls, the ring shrinks", 32 * MiB, []step{
			{at: 0, blocks: 8, rate: 60, want: 16 * MiB, resize: true},
			{at: time.Minute, blocks: 16, rate: 60, want: 16 * MiB},
			{at: shrinkAfter, blocks: 16, rate: 10, want: 16 * MiB},    // the window needed 15 MB > 8 MiB/2
			{at: 2 * shrinkAfter, blocks: 16, rate: 10, want: 8 * MiB}, // 2.5 MB <= 4 MiB
		}},
		{"kernel drops grow it whatever the backlog", 32 * MiB, []step{
			{at: 0, blocks: 8, dropped: true, want: 16 * MiB},
		}},
		{"calm for shrinkAfter: halves, down to the start", 32 * MiB, []step{
			{at: 0, behind: 2, blocks: 8, want: 16 * MiB, resize: true},
			{at: time.Minute, behind: 1, blocks: 16, want: 16 * MiB},
			{at: shrinkAfter - time.Second, behind: 0, blocks: 16, want: 16 * MiB},
			{at: shrinkAfter, behind: 0, blocks: 16, want: 8 * MiB, resize: true},
			{at: 2 * shrinkAfter, behind: 0, blocks: 8, want: 4 * MiB, resize: true},
			{at: 3 * shrinkAfter, behind: 0, blocks: 8, want: 4 * MiB},
		}},
		{"not calm enough: a window with a backlog the half would grow on keeps the size", 32 * MiB, []step{
			{at: 0, behind: 2, blocks: 8, want: 16 * MiB, resize: true},
			{at: time.Minute, behind: 2, blocks: 16, want: 16 * MiB},
			{at: shrinkAfter, behind: 0, blocks: 16, want: 16 * MiB},    // the window saw 2 of 16
			{at: 2 * shrinkAfter, behind: 0, blocks: 16, want: 8 * MiB}, // the next one did not
		}},
		{"a failed resize waits retryAfter", 32 * MiB, []step{
			{at: 0, behind: 2, blocks: 8, want: 16 * MiB, fail: true},
			{at: retryAfter - time.Second, behind: 7, blocks: 8, want: 4 * MiB},
			{at: retryAfter, behind: 2, blocks: 8, want: 16 * MiB},
		}},
		{"a fixed size (capture_buffer_mb) is the only size", 2 * MiB, []step{
			{at: 0, behind: 7, blocks: 8, dropped: true, want: 2 * MiB},
			{at: time.Hour, blocks: 8, want: 2 * MiB},
		}},
		{"a cap between sizes is reached exactly", 6 * MiB, []step{
			{at: 0, behind: 2, blocks: 8, want: 6 * MiB},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			z := newRingSizer(min(InitialRingSize, tc.max), tc.max, t0)
			for i, st := range tc.steps {
				now := t0.Add(st.at)
				got := z.observe(now, st.behind, st.blocks, st.rate*1e6, st.dropped)
				if got != st.want {
					t.Fatalf("step %d (%+v): observe = %d MiB, want %d MiB", i, st, got/MiB, st.want/MiB)
				}
				switch {
				case st.resize:
					z.resized(got, now)
				case st.fail:
					z.failed(now)
				}
			}
		})
	}
}

// TestRingGeometry: the sizes the sizer asks for divide into blocks the
// kernel takes (a power of two, at least a frame), ringBlocks of them or
// more, and add up to the size asked.
func TestRingGeometry(t *testing.T) {
	const MiB = 1 << 20
	for _, tc := range []struct{ size, block, blocks int }{
		{1 * MiB, 256 << 10, 4},
		{2 * MiB, 256 << 10, 8},
		{4 * MiB, 512 << 10, 8},
		{6 * MiB, 512 << 10, 12},
		{16 * MiB, MiB, 16},
		{32 * MiB, MiB, 32},
		{1024 * MiB, MiB, 1024},
	} {
		b, n := ringGeometry(tc.size, 256)
		if b != tc.block || n != tc.blocks || b*n != tc.size {
			t.Errorf("ringGeometry(%d MiB) = %d blocks of %d KiB, want %d of %d KiB", tc.size/MiB, n, b>>10, tc.blocks, tc.block>>10)
		}
	}
}
