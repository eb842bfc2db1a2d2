package tsharkcmp

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gometro/go-metro/capture/flow"
	"github.com/gometro/go-metro/capture/rtt"
)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func TestParse(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name    string
		in      string
		want    []Direction
		wantErr string
	}{
		{
			name: "ipv4 and ipv6, grouped by stream and acker",
			in: "0\t0.010000000\t10.2.0.1\t10.1.0.1\t\t\t443\t40000\n" +
				"0\t0.030000000\t10.2.0.1\t10.1.0.1\t\t\t443\t40000\n" +
				"0\t0.000100000\t10.1.0.1\t10.2.0.1\t\t\t40000\t443\n" +
				"1\t0.002000000\t\t\tfd00:2::1\tfd00:1::1\t443\t40001\n",
			want: []Direction{
				{Stream: 0, Acker: ap("10.1.0.1:40000"), Sender: ap("10.2.0.1:443"), Samples: []time.Duration{100 * time.Microsecond}},
				{Stream: 0, Acker: ap("10.2.0.1:443"), Sender: ap("10.1.0.1:40000"), Samples: []time.Duration{10 * ms, 30 * ms}},
				{Stream: 1, Acker: ap("[fd00:2::1]:443"), Sender: ap("[fd00:1::1]:40001"), Samples: []time.Duration{2 * ms}},
			},
		},
		{
			// VXLAN: outer addresses first, then the inner ones that go with the TCP ports.
			name: "repeated field keeps the innermost value",
			in:   "3\t0.001000000\t192.0.2.1,10.2.0.1\t192.0.2.2,10.1.0.1\t\t\t443\t40000\n",
			want: []Direction{
				{Stream: 3, Acker: ap("10.2.0.1:443"), Sender: ap("10.1.0.1:40000"), Samples: []time.Duration{ms}},
			},
		},
		{
			name: "microsecond capture rounds to the nearest ns",
			in:   "0\t0.000123000\t10.2.0.1\t10.1.0.1\t\t\t443\t40000\n",
			want: []Direction{{Stream: 0, Acker: ap("10.2.0.1:443"), Sender: ap("10.1.0.1:40000"), Samples: []time.Duration{123 * time.Microsecond}}},
		},
		{
			name: "negative sample (clock stepped back) dropped",
			in: "0\t-0.000500000\t10.2.0.1\t10.1.0.1\t\t\t443\t40000\n" +
				"0\t0.002000000\t10.2.0.1\t10.1.0.1\t\t\t443\t40000\n",
			want: []Direction{{Stream: 0, Acker: ap("10.2.0.1:443"), Sender: ap("10.1.0.1:40000"), Samples: []time.Duration{2 * ms}}},
		},
		{name: "missing fields", in: "0\t0.1\t10.2.0.1\n", wantErr: "line 1: 3 fields, want 8"},
		{name: "bad rtt", in: "0\tx\t10.2.0.1\t10.1.0.1\t\t\t443\t40000\n", wantErr: `ack_rtt "x"`},
		{name: "bad address", in: "0\t0.1\t10.2.0\t10.1.0.1\t\t\t443\t40000\n", wantErr: `source: address "10.2.0"`},
		{name: "bad port", in: "0\t0.1\t10.2.0.1\t10.1.0.1\t\t\t443\t70000\n", wantErr: `destination: port "70000"`},
		{name: "empty", in: "", want: []Direction{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestLocalSenderMergesReusedTuples(t *testing.T) {
	ms := time.Millisecond
	ds := []Direction{
		{Stream: 0, Acker: ap("10.2.0.1:443"), Sender: ap("10.1.0.1:40000"), Samples: []time.Duration{5 * ms}},
		{Stream: 0, Acker: ap("10.1.0.1:40000"), Sender: ap("10.2.0.1:443"), Samples: []time.Duration{ms}}, // remote's data
		{Stream: 7, Acker: ap("10.2.0.1:443"), Sender: ap("10.1.0.1:40000"), Samples: []time.Duration{4 * ms, 6 * ms}},
	}
	got := LocalSender(ds, func(a netip.Addr) bool { return a == netip.MustParseAddr("10.1.0.1") })
	want := map[Key][]time.Duration{{ap("10.1.0.1:40000"), ap("10.2.0.1:443")}: {5 * ms, 4 * ms, 6 * ms}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestCompare(t *testing.T) {
	ms := time.Millisecond
	k := func(port uint16) Key {
		return Key{netip.AddrPortFrom(netip.MustParseAddr("10.1.0.1"), port), ap("10.2.0.1:443")}
	}
	ref := map[Key][]time.Duration{
		k(1): {10 * ms, 12 * ms, 11 * ms},          // ours above: ok
		k(2): {10 * ms, 12 * ms, 11 * ms},          // ours 4.9 % below: within 5 %
		k(3): {10 * ms, 12 * ms, 11 * ms},          // ours 6 % below
		k(4): {500 * time.Microsecond, ms, ms},     // ours 0.049 ms below: within 0.05 ms
		k(5): {10 * ms, 12 * ms, 11 * ms},          // no go-metro flow at all
		k(6): {10 * ms, 12 * ms},                   // two samples: not judged
		k(7): {10 * ms, 12 * ms, 11 * ms, 13 * ms}, // go-metro flow without samples
	}
	ours := map[Key]Flow{
		k(1): {Samples: 2, Min: 11 * ms},
		k(2): {Samples: 3, Min: 9510 * time.Microsecond},
		k(3): {Samples: 3, Min: 9400 * time.Microsecond},
		k(4): {Samples: 3, Min: 451 * time.Microsecond},
		k(7): {Samples: 0},
	}
	want := []Verdict{OK, OK, MinBelow, OK, NoSamples, Few, NoSamples}
	got := Compare(ref, ours)
	if len(got) != len(want) {
		t.Fatalf("%d results, want %d", len(got), len(want))
	}
	for i, r := range got {
		if r.Key != k(uint16(i+1)) || r.Verdict != want[i] {
			t.Errorf("result %d: %v, want %v", i, r, want[i])
		}
	}
	if s := got[2].String(); !strings.Contains(s, "10.1.0.1:3 -> 10.2.0.1:443: minimum below tshark's (tshark 3 samples, min 10ms; go-metro 3 samples, min 9.4ms)") {
		t.Errorf("String() = %q", s)
	}
}

func TestEngineFlows(t *testing.T) {
	mapped := netip.AddrPortFrom(netip.AddrFrom16(netip.MustParseAddr("10.1.0.1").As16()), 40000)
	fs := []flow.Summary{
		{Local: mapped, Remote: ap("10.2.0.1:443"), RTT: rtt.Estimator{Samples: 2, Min: int64(7 * time.Millisecond)}},
		{Local: ap("10.1.0.1:40000"), Remote: ap("10.2.0.1:443")},
		{Local: ap("10.1.0.1:40000"), Remote: ap("10.2.0.1:443"), RTT: rtt.Estimator{Samples: 1, Min: int64(5 * time.Millisecond)}},
	}
	got := EngineFlows(fs)
	want := map[Key]Flow{{ap("10.1.0.1:40000"), ap("10.2.0.1:443")}: {Samples: 3, Min: 5 * time.Millisecond}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
