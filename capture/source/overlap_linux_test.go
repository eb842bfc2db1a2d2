package source

import "testing"

// TestOverlap: a fingerprint is taken as many times as it was added, and
// a full set says so rather than keep more.
func TestOverlap(t *testing.T) {
	o := new(overlap)
	a, b := fingerprint([]byte("frame a"), 60, 2), fingerprint([]byte("frame b"), 60, 2)
	if a == b || fingerprint([]byte("frame a"), 61, 2) == a || fingerprint([]byte("frame a"), 60, 3) == a {
		t.Fatal("fingerprints of different frames are equal")
	}
	o.add(a)
	o.add(a)
	o.add(b)
	for i, want := range []bool{true, true, false} {
		if got := o.take(a); got != want {
			t.Fatalf("take %d of a copy added twice: %v", i+1, got)
		}
	}
	if !o.take(b) || o.take(b) || o.take(fingerprint(nil, 0, 0)) {
		t.Fatal("b taken wrong")
	}
	for i := range overlapSlots {
		o.add(uint64(i)<<20 | 1)
	}
	if !o.full || o.n != overlapSlots/2 {
		t.Fatalf("after %d fingerprints: full %v, %d kept", overlapSlots, o.full, o.n)
	}
}
