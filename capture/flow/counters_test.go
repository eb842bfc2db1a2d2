package flow

import (
	"reflect"
	"testing"
)

// TestCountersPlus: Plus sums every field, so that a counter added to
// Counters cannot be left out of the workers' merged snapshot.
func TestCountersPlus(t *testing.T) {
	var a Counters
	v := reflect.ValueOf(&a).Elem()
	for i := range v.NumField() {
		if f := v.Field(i); f.CanInt() {
			f.SetInt(int64(i + 1))
		} else {
			f.SetUint(uint64(i + 1))
		}
	}
	sum := reflect.ValueOf(a.Plus(a))
	for i := range sum.NumField() {
		got := sum.Field(i)
		want := 2 * (i + 1)
		if got.CanUint() && got.Uint() != uint64(want) || got.CanInt() && got.Int() != int64(want) {
			t.Errorf("%s: %v, want %d", sum.Type().Field(i).Name, got, want)
		}
	}
}
