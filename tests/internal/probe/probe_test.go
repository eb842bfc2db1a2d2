package probe

import (
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestListFDsSeesNewDescriptor shows the descriptor comparison the check
// role makes after Cancel would catch a descriptor left open.
func TestListFDsSeesNewDescriptor(t *testing.T) {
	before := listFDs()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	during := listFDs()
	f.Close()
	after := listFDs()
	if strings.Join(before, "\n") != strings.Join(after, "\n") {
		t.Errorf("listing is not stable:\n%q\n%q", before, after)
	}
	if len(during) != len(before)+1 || !strings.Contains(strings.Join(during, "\n"), "/proc/") {
		t.Errorf("an open file is not listed: before %q, with it open %q", before, during)
	}
}

func TestStatCPU(t *testing.T) {
	// Burn some CPU on this thread, then read it back from /proc.
	tid := unix.Gettid()
	for start := time.Now(); time.Since(start) < 50*time.Millisecond; {
	}
	if total, user := threadCPU(tid); total < 0 || user < 0 || user > total {
		t.Errorf("threadCPU(%d) = %v total, %v user", tid, total, user)
	}
	if total, user := statCPU(os.DevNull); total != -1 || user != -1 {
		t.Errorf("statCPU of an empty file = %v, %v; want -1, -1", total, user)
	}
}

func TestReportFind(t *testing.T) {
	r := Report{
		Metrics: []Metric{
			{Name: "m", Value: 1, Tags: []string{"src:a", "dst:b"}},
			{Name: "m", Value: 2, Tags: []string{"src:a", "dst:c"}},
		},
		ServiceChecks: []ServiceCheck{{Name: "go_metro.can_capture", Status: "OK"}},
	}
	tests := []struct {
		tags   []string
		n      int
		value  float64
		single bool
	}{
		{nil, 2, 0, false},
		{[]string{"src:a"}, 2, 0, false},
		{[]string{"dst:c"}, 1, 2, true},
		{[]string{"dst:c", "src:b"}, 0, 0, false},
	}
	for _, tc := range tests {
		if got := len(r.Find("m", tc.tags...)); got != tc.n {
			t.Errorf("Find(m, %q) found %d, want %d", tc.tags, got, tc.n)
		}
		if v, ok := r.Value("m", tc.tags...); ok != tc.single || v != tc.value {
			t.Errorf("Value(m, %q) = %v, %v; want %v, %v", tc.tags, v, ok, tc.value, tc.single)
		}
	}
	if r.Service().Status != "OK" {
		t.Errorf("Service() = %+v", r.Service())
	}
}
