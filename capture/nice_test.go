package capture

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gometro/go-metro/tests/lab"
)

// threadsAtNice counts the process's threads whose nice value is nice,
// from /proc/self/task/*/stat (field 19, the 17th after the command).
func threadsAtNice(t *testing.T, nice int) int {
	t.Helper()
	stats, err := filepath.Glob("/proc/self/task/*/stat")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the thread exited meanwhile
		}
		fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if v, err := strconv.Atoi(fields[16]); err == nil && v == nice {
			n++
		}
	}
	return n
}

// TestReaderNice runs the engine with ReaderNice on a live interface: each
// worker reads on a thread of that nice value while Run runs, and no
// thread keeps it once Run returned (the first worker's thread is the
// caller's, which goes back to its previous value).
func TestReaderNice(t *testing.T) {
	const nice = -7 // a value nothing else in the test process uses
	l := lab.New(t, lab.Config{KernelBridge: true})
	for _, workers := range []int{1, 3} {
		t.Run(strconv.Itoa(workers)+" workers", func(t *testing.T) {
			if n := threadsAtNice(t, nice); n != 0 {
				t.Fatalf("%d threads at nice %d before Run", n, nice)
			}
			_, stop := startWorkers(t, l, Config{Interface: l.AIf, Workers: workers, PollTimeout: 20 * time.Millisecond, ReaderNice: nice})
			// Opened comes before the workers start their loops: wait for
			// them (the minute is a bound on a hang, not a timing claim).
			for give := time.Now().Add(time.Minute); threadsAtNice(t, nice) < workers && time.Now().Before(give); {
				time.Sleep(10 * time.Millisecond)
			}
			if n := threadsAtNice(t, nice); n != workers {
				t.Errorf("%d threads at nice %d while running, want %d (one per worker)", n, nice, workers)
			}
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			// Every worker set its thread back before Run returned.
			if n := threadsAtNice(t, nice); n != 0 {
				t.Errorf("%d threads still at nice %d after Run returned", n, nice)
			}
		})
	}
}
