package flow

import (
	"reflect"
	"runtime"
	"testing"
	"unsafe"

	"github.com/gometro/go-metro/capture/packet"
	"golang.org/x/sys/unix"
)

// residentPages counts the pages of s that are in memory (mincore).
func residentPages[T any](t *testing.T, s []T) (resident, total int) {
	t.Helper()
	page := unix.Getpagesize()
	size := len(s) * int(unsafe.Sizeof(s[0]))
	start := uintptr(unsafe.Pointer(&s[0]))
	base := start &^ uintptr(page-1)
	n := (int(start-base) + size + page - 1) / page
	vec := make([]byte, n)
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, base, uintptr(n*page), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatalf("mincore: %v", e)
	}
	for _, v := range vec {
		resident += int(v & 1)
	}
	return resident, n
}

// TestSlabResidentByUse: a default-sized table on a heap that has just
// freed more than the slab's size holds only the pages its flows use. A
// heap allocation there would be zeroed and resident in full.
func TestSlabResidentByUse(t *testing.T) {
	if !pointerFree(reflect.TypeFor[Flow]()) {
		t.Fatal("Flow holds Go pointers: the slab falls back to the heap, where it is resident in full (see slab.go)")
	}
	garbage := make([][]byte, 48)
	for i := range garbage {
		garbage[i] = make([]byte, 1<<20)
		for j := range garbage[i] {
			garbage[i][j] = 1
		}
	}
	garbage = nil
	runtime.GC()

	locals := localSet{v4(localIP): true}
	tb := NewTable(TableConfig{MaxFlows: 16384, IdleTTL: 1e18, ExpTTL: 1e18}, locals, nil)
	if r, n := residentPages(t, tb.flows); r != 0 {
		t.Fatalf("a new table has %d of its %d slab pages resident, want 0", r, n)
	}
	const flows = 100
	for port := uint16(1); port <= flows; port++ {
		syn := synTo(port)
		tb.Process(&syn, int64(port))
	}
	if got := tb.Counters().Flows; got != flows {
		t.Fatalf("flows = %d, want %d", got, flows)
	}
	want := (flows*int(unsafe.Sizeof(Flow{})))/unix.Getpagesize() + 2
	if r, n := residentPages(t, tb.flows); r > want {
		t.Fatalf("%d flows made %d of %d slab pages resident, want at most %d", flows, r, n, want)
	}
	runtime.KeepAlive(tb)
}

func TestPointerFree(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want bool
	}{
		{uint64(0), true},
		{[4]int32{}, true},
		{struct {
			a int
			b [2]struct{ c float64 }
		}{}, true},
		{packet.Packet{}, true},
		{"", false},
		{[]int{}, false},
		{struct{ p *int }{}, false},
		{[1]map[int]int{}, false},
		{struct{ f func() }{}, false},
	} {
		if got := pointerFree(reflect.TypeOf(tc.v)); got != tc.want {
			t.Errorf("pointerFree(%T) = %v, want %v", tc.v, got, tc.want)
		}
	}
}
