package capture

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gometro/go-metro/internal/pcaptest"
)

// TestClockGuard: which records' times are trusted, record by record.
func TestClockGuard(t *testing.T) {
	const s, ms = int64(time.Second), int64(time.Millisecond)
	t0 := int64(1_767_323_045) * s
	flip := int64(1) << 30 * s // bit 30 of the seconds
	tests := []struct {
		name    string
		maxJump int64
		times   []int64
		want    string // per record: . trusted, b backwards, f forward
	}{
		{"in order", int64(MaxTimeJump), []int64{t0, t0 + ms, t0 + 2*ms}, "..."},
		{"reordered within MaxReorder", int64(MaxTimeJump), []int64{t0, t0 + ms, t0 + ms/2, t0 + 2*ms}, "...."},
		{"one flipped bit forward", int64(MaxTimeJump), []int64{t0, t0 + ms + flip, t0 + 2*ms, t0 + 3*ms}, ".f.."},
		{"one flipped bit backward", int64(MaxTimeJump), []int64{t0 + flip, t0 + flip + ms, t0 + ms, t0 + flip + 2*ms}, "..b."},
		{"one record back a second", int64(MaxTimeJump), []int64{t0, t0 + 2*s, t0 + s, t0 + 3*s}, "..b."},
		{"clock stepped back: followed after timeResync", int64(MaxTimeJump),
			[]int64{t0, t0 + s, t0 - 3600*s, t0 - 3600*s + ms, t0 - 3600*s + 2*ms, t0 - 3600*s + 3*ms, t0 - 3600*s + 4*ms, t0 - 3600*s + 5*ms}, "..bbbb.."},
		{"a long gap in a replay: followed after timeResync", int64(MaxTimeJump),
			[]int64{t0, t0 + 2*3600*s, t0 + 2*3600*s + ms, t0 + 2*3600*s + 2*ms, t0 + 2*3600*s + 3*ms, t0 + 2*3600*s + 4*ms}, ".ffff."},
		{"live: no forward limit", 0, []int64{t0, t0 + 30*24*3600*s, t0 + 30*24*3600*s + ms}, "..."},
		{"scattered bad records never resync", int64(MaxTimeJump),
			[]int64{t0, t0 + flip, t0 + ms, t0 - flip, t0 + 2*ms, t0 + flip, t0 + 3*ms, t0 + 4*ms}, ".f.b.f.."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := clockGuard{maxJump: tc.maxJump}
			var got strings.Builder
			for _, ts := range tc.times {
				switch ok, back := g.check(ts); {
				case ok:
					got.WriteByte('.')
				case back:
					got.WriteByte('b')
				default:
					got.WriteByte('f')
				}
			}
			if got.String() != tc.want {
				t.Errorf("got %s, want %s", got.String(), tc.want)
			}
		})
	}
}

// TestReplayImpossibleTimes: a replay with records whose time is
// impossible counts them and takes no sample from them: every sample is the
// exchange's 10 ms.
func TestReplayImpossibleTimes(t *testing.T) {
	const rtt = 10 * time.Millisecond
	flip := time.Duration(1<<30) * time.Second
	// The segments of pcaptest.WriteExchange: handshake (0-2), then
	// request/ACK pairs (3-4, 5-6, ..., 11-12).
	tests := []struct {
		name          string
		edit          func(segs []pcaptest.Segment)
		back, forward uint64
		samples       uint64
		max           time.Duration
	}{
		{"clean", func([]pcaptest.Segment) {}, 0, 0, 6, rtt},
		{"the last ACK with a flipped bit", func(s []pcaptest.Segment) { s[12].At += flip }, 0, 1, 5, rtt},
		{"a request with a flipped bit", func(s []pcaptest.Segment) { s[5].At += flip }, 0, 1, 5, rtt},
		{"the last ACK a second early", func(s []pcaptest.Segment) { s[12].At -= time.Second }, 1, 0, 5, rtt},
		{"the last ACK an hour late", func(s []pcaptest.Segment) { s[12].At += 2 * time.Hour }, 0, 1, 5, rtt},
		// A skipped ACK in the middle is a lost ACK: the next one times
		// from the earliest segment it newly acknowledges, as the kernel
		// does (request 5, three RTTs before ACK 8 answers request 7).
		{"a middle ACK with a flipped bit", func(s []pcaptest.Segment) { s[6].At += flip }, 0, 1, 5, 4 * rtt},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const isn, sisn = 1000, 5000
			segs := []pcaptest.Segment{
				{At: 0, FromClient: true, SYN: true, Seq: isn},
				{At: rtt, SYN: true, ACK: true, Seq: sisn, Ack: isn + 1},
				{At: rtt + time.Millisecond, FromClient: true, ACK: true, Seq: isn + 1, Ack: sisn + 1},
			}
			seq, at := uint32(isn+1), 2*rtt
			for range 5 {
				segs = append(segs,
					pcaptest.Segment{At: at, FromClient: true, ACK: true, Seq: seq, Ack: sisn + 1, Payload: 100},
					pcaptest.Segment{At: at + rtt, ACK: true, Seq: sisn + 1, Ack: seq + 100})
				seq += 100
				at += 3 * rtt
			}
			tc.edit(segs)
			path := filepath.Join(t.TempDir(), "c.pcap")
			pcaptest.Capture{Client: netip.MustParseAddrPort("10.0.0.1:40000"), Server: netip.MustParseAddrPort("10.0.0.2:443"), Snaplen: 512, Segments: segs}.Write(t, path)
			snap := replay(t, Config{File: path, LocalIPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32")}})
			if snap.Stats.TimeBackwards != tc.back || snap.Stats.TimeForward != tc.forward {
				t.Errorf("time backwards %d, forward %d; want %d, %d", snap.Stats.TimeBackwards, snap.Stats.TimeForward, tc.back, tc.forward)
			}
			if len(snap.Flows) != 1 {
				t.Fatalf("%d flows", len(snap.Flows))
			}
			e := snap.Flows[0].RTT
			if e.Samples != tc.samples || e.Min != int64(rtt) || e.Max != int64(tc.max) {
				t.Errorf("samples %d, min %v, max %v; want %d, %v, %v", e.Samples, time.Duration(e.Min), time.Duration(e.Max), tc.samples, rtt, tc.max)
			}
		})
	}
}
