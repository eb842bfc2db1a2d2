package benchrun

import (
	"reflect"
	"testing"
)

func TestSet(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Variant
		wantErr bool
	}{
		{in: "new=/tmp/gm", want: Variant{Label: "new", Bin: "/tmp/gm"}},
		{in: "nice=/tmp/gm,capture_nice=-10,max_flows=4096", want: Variant{Label: "nice", Bin: "/tmp/gm", Init: []string{"max_flows: 4096"}, Inst: []string{"capture_nice: -10"}}},
		{in: "/tmp/gm", wantErr: true},
		{in: "=/tmp/gm", wantErr: true},
		{in: "x=/tmp/gm,capture_nice", wantErr: true},
	} {
		var l List
		err := l.Set(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("Set(%q) error %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		if err == nil && !reflect.DeepEqual(l, List{tc.want}) {
			t.Errorf("Set(%q) = %+v, want %+v", tc.in, l, tc.want)
		}
	}
}

func TestParseTcpdumpSummary(t *testing.T) {
	for _, tc := range []struct {
		out  string
		want TcpdumpSummary
	}{
		{"3978135 packets captured\n3978140 packets received by filter\n5 packets dropped by kernel\n", TcpdumpSummary{3978135, 3978140, 5}},
		{"tcpdump: listening on eth0\n", TcpdumpSummary{-1, -1, -1}},
	} {
		if got := ParseTcpdumpSummary(tc.out); got != tc.want {
			t.Errorf("ParseTcpdumpSummary(%q) = %+v, want %+v", tc.out, got, tc.want)
		}
	}
}
