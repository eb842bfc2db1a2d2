package synth

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseTsharkRTT(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []TsharkRTT // RTT compared on N, Min, Max, Mean only
		wantErr bool
	}{
		{
			name: "ipv4 and ipv6, grouped by stream and acker",
			in: "0\t0.010000000\t10.2.0.1\t10.1.0.1\t\t\t443\t40000\n" +
				"0\t0.030000000\t10.2.0.1\t10.1.0.1\t\t\t443\t40000\n" +
				"0\t0.000100000\t10.1.0.1\t10.2.0.1\t\t\t40000\t443\n" +
				"1\t0.002000000\t\t\tfd00:2::1\tfd00:1::1\t443\t40001\n",
			want: []TsharkRTT{
				{Stream: 0, Acker: mustAP("10.1.0.1:40000"), Sender: mustAP("10.2.0.1:443"), RTT: RTTStats{N: 1, Min: 100 * time.Microsecond, Max: 100 * time.Microsecond, Mean: 100 * time.Microsecond}},
				{Stream: 0, Acker: mustAP("10.2.0.1:443"), Sender: mustAP("10.1.0.1:40000"), RTT: RTTStats{N: 2, Min: 10 * time.Millisecond, Max: 30 * time.Millisecond, Mean: 20 * time.Millisecond}},
				{Stream: 1, Acker: mustAP("[fd00:2::1]:443"), Sender: mustAP("[fd00:1::1]:40001"), RTT: RTTStats{N: 1, Min: 2 * time.Millisecond, Max: 2 * time.Millisecond, Mean: 2 * time.Millisecond}},
			},
		},
		{
			name: "repeated field keeps the first value",
			in:   "3\t0.001000000,0.5\t10.2.0.1,10.9.9.9\t10.1.0.1,10.8.8.8\t\t\t443,1\t40000,2\n",
			want: []TsharkRTT{
				{Stream: 3, Acker: mustAP("10.2.0.1:443"), Sender: mustAP("10.1.0.1:40000"), RTT: RTTStats{N: 1, Min: time.Millisecond, Max: time.Millisecond, Mean: time.Millisecond}},
			},
		},
		{name: "missing fields", in: "0\t0.1\t10.2.0.1\n", wantErr: true},
		{name: "bad rtt", in: "0\tx\t10.2.0.1\t10.1.0.1\t\t\t443\t40000\n", wantErr: true},
		{name: "bad address", in: "0\t0.1\t10.2.0\t10.1.0.1\t\t\t443\t40000\n", wantErr: true},
		{name: "bad port", in: "0\t0.1\t10.2.0.1\t10.1.0.1\t\t\t443\t70000\n", wantErr: true},
		{name: "empty", in: "", want: []TsharkRTT{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTsharkRTT(strings.NewReader(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d groups %+v, want %d", len(got), got, len(tt.want))
			}
			for k, w := range tt.want {
				g := got[k]
				if g.Stream != w.Stream || g.Acker != w.Acker || g.Sender != w.Sender ||
					g.RTT.N != w.RTT.N || g.RTT.Min != w.RTT.Min || g.RTT.Max != w.RTT.Max || g.RTT.Mean != w.RTT.Mean {
					t.Errorf("group %d: got %+v, want %+v", k, g, w)
				}
			}
		})
	}
}

// TestTsharkAgreesWithTruth runs tshark on a small loss-free capture: its per-flow ack_rtt
// for data the local host sent must match the simulator's own samples. This checks both the
// capture (tshark reads and analyses it as real TCP) and the helper.
func TestTsharkAgreesWithTruth(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("tshark is required in CI")
		}
		t.Skip("tshark not installed")
	}
	cfg := Small()
	cfg.BulkSendFlows, cfg.BulkRecvFlows, cfg.BulkBytes = 1, 1, 1<<20
	cfg.ReqRespFlows, cfg.AcceptFlows, cfg.IPv6Flows = 6, 2, 3
	cfg.LossRate, cfg.KeepaliveFrac = 0, 0
	c := Generate(cfg)
	path := filepath.Join(t.TempDir(), "tiny.pcap")
	if err := c.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tshark, TsharkArgs(path)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v: %s", err, stderr.String())
	}
	rs, err := ParseTsharkRTT(strings.NewReader(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	got := LocalSenderRTT(rs, c.LocalIPs)
	for _, fl := range c.Flows {
		ts, ok := got[fl.Key()]
		if !ok {
			t.Errorf("%v %v: no tshark samples", fl.Kind, fl.Key())
			continue
		}
		t.Logf("%-9v %v rtt=%v truth n=%d srtt=%v mean=%v | tshark n=%d srtt=%v mean=%v", fl.Kind, fl.Remote, fl.PathRTT,
			fl.SeqRTT.N, fl.SeqRTT.SRTT, fl.SeqRTT.Mean, ts.N, ts.SRTT, ts.Mean)
		// Without loss both time each ACK against the segment it acknowledges, from the same
		// nanosecond timestamps, so the sample sequences are identical.
		if ts.N != fl.SeqRTT.N || absDur(ts.Mean-fl.SeqRTT.Mean) > time.Microsecond || absDur(ts.SRTT-fl.SeqRTT.SRTT) > time.Microsecond {
			t.Errorf("%v %v: tshark n=%d srtt=%v mean=%v, truth n=%d srtt=%v mean=%v", fl.Kind, fl.Key(),
				ts.N, ts.SRTT, ts.Mean, fl.SeqRTT.N, fl.SeqRTT.SRTT, fl.SeqRTT.Mean)
		}
	}
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

func mustAP(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
