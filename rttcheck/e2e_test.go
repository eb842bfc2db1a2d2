package rttcheck

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gometro/go-metro/internal/pcaptest"
)

// TestEndToEndReplay runs the real engine over a synthetic capture with a
// known RTT and checks what the check submits.
func TestEndToEndReplay(t *testing.T) {
	dir := t.TempDir()
	const exchanges = 5
	path := pcaptest.WriteExchange(t, dir, 10*time.Millisecond, exchanges)
	inst := "interface: file\npcap: " + path + "\nlocal_ips: [10.0.0.1]\nall_remote_hosts: true\nreverse_dns: false\ntags: [env:e2e]"
	c := New(Options{AddInstanceTags: true})
	if err := configureYAML(c, inst, ""); err != nil {
		t.Fatal(err)
	}
	defer c.Cancel()

	select {
	case <-c.CaptureDone():
	case <-time.After(10 * time.Second): // a bound on a hang, not a timing assertion
		t.Fatal("replay did not finish")
	}
	r := mustRun(t, c)
	if r.checks[0].status != StatusOK {
		t.Fatalf("service check %+v", r.checks[0])
	}
	r.noDuplicates(t)
	wantTags := "src:10.0.0.1,dst:10.0.0.2,iface:file,env:e2e"
	for _, name := range []string{MetricRTT, MetricRTTAvg, MetricRTTMin, MetricRTTMax} {
		got := r.find(name)
		if len(got) != 1 {
			t.Fatalf("%s: %d submissions", name, len(got))
		}
		if tags := strings.Join(got[0].tags, ","); tags != wantTags {
			t.Errorf("%s tags %s, want %s", name, tags, wantTags)
		}
		if got[0].value != 10 {
			t.Errorf("%s = %v ms, want 10", name, got[0].value)
		}
	}
	// Handshake plus one per exchange.
	if s := r.find(MetricRTTSamples); len(s) != 1 || s[0].value != exchanges+1 {
		t.Errorf("samples %+v, want %d", s, exchanges+1)
	}
	if p := r.find(MetricPackets); len(p) != 1 || p[0].value != float64(3+2*exchanges) {
		t.Errorf("packets %+v", p)
	}
	// A second run: nothing new, so no last sample and zero new samples,
	// but the smoothed values are still reported.
	r = &recorder{}
	if _, err := c.Run(r, r); err != nil {
		t.Fatal(err)
	}
	if len(r.find(MetricRTT)) != 0 || len(r.find(MetricRTTAvg)) != 1 {
		t.Errorf("second run: %+v", r.subs)
	}
	if s := r.find(MetricRTTSamples); len(s) != 1 || s[0].value != 0 {
		t.Errorf("second run samples %+v", s)
	}
}

// TestEndToEndReplayErrors checks what a broken replay reports.
func TestEndToEndReplayErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pcap")
	if err := os.WriteFile(garbage, []byte("definitely not a capture file, just text"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, file, want string
	}{
		{"missing", filepath.Join(dir, "missing.pcap"), "missing.pcap"},
		{"not a capture", garbage, "garbage.pcap"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := New(Options{})
			if err := configureYAML(c, "interface: file\npcap: "+tc.file+"\nall_remote_hosts: true", ""); err != nil {
				t.Fatal(err)
			}
			defer c.Cancel()
			<-c.CaptureDone()
			r := &recorder{}
			warns, err := c.Run(r, r)
			if err != nil {
				t.Fatal(err)
			}
			sc := r.checks[0]
			if sc.status != StatusCritical || !strings.Contains(sc.message, "cannot replay "+tc.file) || !strings.Contains(sc.message, tc.want) {
				t.Errorf("service check %+v", sc)
			}
			if !containsSub(warns, "cannot replay") {
				t.Errorf("warnings %q", warns)
			}
		})
	}
}
