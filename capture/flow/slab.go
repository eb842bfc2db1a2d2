package flow

import (
	"reflect"
	"runtime"
	"unsafe"
)

// The flow slab, the pools of rings and the index are sized for MaxFlows
// (262144 by default: 164 MiB), but an instance usually tracks far fewer
// flows. Memory the kernel
// maps for us becomes resident only where it is written, so a table costs
// what its flows use (the slab fills from the bottom, see allocate). A Go
// heap allocation of the same size does not promise that: fresh from the
// OS it is untouched, but carved from memory the heap freed earlier (an
// agent that has run for a while) it is zeroed, and so resident, in full
// (measured: 38 MiB at once for a default table on a warm heap, 0.5 MiB on
// mapped memory). Values in such memory are invisible to the garbage
// collector, so only types without Go pointers go there; anything else,
// and systems without mmap, use the heap.

// minMapped is the smallest allocation worth a mapping of its own.
const minMapped = 256 << 10

// A mapping is memory mapped for one slab. Its finalizer unmaps it, so
// whoever holds the slab holds the *mapping too (Table.mappings): both
// become unreachable together. A finalizer on an object of our own, rather
// than a cleanup attached to the owner (runtime.AddCleanup), keeps this
// buildable with Go 1.23, the toolchain Datadog Agent 7.63 pins.
type mapping struct{ mem []byte }

// makeSlab returns n zeroed values of T and, when they are in mapped memory,
// the mapping to keep alongside them (nil for heap memory).
func makeSlab[T any](n int) ([]T, *mapping) {
	size := n * int(unsafe.Sizeof(*new(T)))
	if size < minMapped || !pointerFree(reflect.TypeFor[T]()) {
		return make([]T, n), nil
	}
	mem, err := mapAnon(size)
	if err != nil {
		return make([]T, n), nil // the heap still works, it only costs more RSS
	}
	m := &mapping{mem: mem}
	runtime.SetFinalizer(m, func(m *mapping) { unmapAnon(m.mem) })
	return unsafe.Slice((*T)(unsafe.Pointer(&mem[0])), n), m
}

// pointerFree reports whether values of t hold no Go pointers.
func pointerFree(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return true
	case reflect.Array:
		return t.Len() == 0 || pointerFree(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if !pointerFree(t.Field(i).Type) {
				return false
			}
		}
		return true
	}
	return false
}

// makeRegion returns nFlows zeroed flows, and nFlights and nRecents
// zeroed blocks of rings, in one allocation, so that a flow may find its
// blocks by an offset from its own address (rings.go), and the mapping to
// keep alongside them.
func makeRegion(nFlows, nFlights, nRecents int) ([]Flow, []flightRings, []recentRings, *mapping) {
	// Every size is a multiple of 8, the alignment all three need.
	flowBytes := nFlows * int(unsafe.Sizeof(Flow{}))
	flightBytes := nFlights * FlightBytes
	size := flowBytes + flightBytes + nRecents*RecentBytes
	var mem []byte
	var m *mapping
	if size >= minMapped {
		if mapped, err := mapAnon(size); err == nil {
			mem, m = mapped, &mapping{mem: mapped}
			runtime.SetFinalizer(m, func(m *mapping) { unmapAnon(m.mem) })
		}
	}
	if mem == nil {
		mem = make([]byte, size) // the heap still works, it only costs more RSS
	}
	flows := unsafe.Slice((*Flow)(unsafe.Pointer(&mem[0])), nFlows)
	flights := unsafe.Slice((*flightRings)(unsafe.Pointer(&mem[flowBytes])), nFlights)
	recents := unsafe.Slice((*recentRings)(unsafe.Pointer(&mem[flowBytes+flightBytes])), nRecents)
	return flows, flights, recents, m
}
