package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/gometro/go-metro/tests/internal/probe"
	"github.com/gometro/go-metro/tests/lab"
)

// startEngineProbe runs a bare capture engine in a child process inside A
// (its own process: its CPU time and drops are its own, not shared with the
// workload goroutines of the test process).
func startEngineProbe(t *testing.T, l *lab.Lab, remotes []netip.Prefix, maxFlows int, prepare func(*exec.Cmd) *exec.Cmd) *probe.Proc {
	t.Helper()
	cfg, err := json.Marshal(probe.EngineConfig{Interface: l.AIf, Remotes: remotes, MaxFlows: maxFlows})
	if err != nil {
		t.Fatal(err)
	}
	return startProbe(t, l, probe.Options{Role: "engine", Prepare: prepare, Env: []string{probe.EngineEnv + "=" + string(cfg)}})
}

// TestLoadNoKernelDrops drives the highest packet rate this machine makes
// between A and B (kernel bridge, unpaced bulk flows in both directions,
// MTU 1280, the smallest IPv6 allows, so each byte costs more packets) for about 10 s while a capture
// engine runs in A, and asserts the capture's kernel ring dropped nothing.
// It logs the capture rate and the CPU time of the capture's thread; no
// timing is asserted. The engine runs in its own process (tests/internal/
// probe) at real-time priority; see below for why.
func TestLoadNoKernelDrops(t *testing.T) {
	const duration = 10 * time.Second
	const flows = 4 // per direction: the highest packet rate measured (1 flow: 318k/s, 4: 426k/s)
	l := lab.New(t, lab.Config{KernelBridge: true, MTU: 1280})
	srv := serveB4(t, l)
	// The capture runs at normal priority, as in an agent. The load (both
	// TCP ends plus the kernel's forwarding) saturates both cores, so the
	// capture thread can wait for a CPU for tens of milliseconds: the
	// kernel ring must hold that much traffic. With the old 8 MiB default
	// (~50 ms at 600k packets/s) about 1.4 % of frames dropped; the 32 MiB
	// default drops none. GOMETRO_LOAD_RT=1 runs it at SCHED_FIFO instead,
	// to tell scheduler starvation from capture cost.
	var prep func(*exec.Cmd) *exec.Cmd
	if os.Getenv("GOMETRO_LOAD_RT") != "" {
		chrt, err := exec.LookPath("chrt")
		if err != nil {
			t.Fatalf("GOMETRO_LOAD_RT set but chrt not found: %v", err)
		}
		t.Log("capture at SCHED_FIFO 20 (GOMETRO_LOAD_RT)")
		prep = func(c *exec.Cmd) *exec.Cmd {
			n := exec.Command(chrt, append([]string{"--fifo", "20", c.Path}, c.Args[1:]...)...)
			n.Env = c.Env
			return n
		}
	}
	p := startEngineProbe(t, l, l.Remotes(), 0, prep)

	before, err := p.Do("snap")
	if err != nil || before.Err != "" {
		t.Fatalf("snapshot before load: %v %s", err, before.Err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	c := &lab.Client{Host: l.A, InfoEvery: -1}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var workErrs []error
	start := time.Now()
	for i := 0; i < flows; i++ {
		for _, send := range []bool{true, false} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var err error
				if send {
					_, err = c.BulkSend(ctx, srv.Addr, 1<<40, 0)
				} else {
					_, err = c.BulkReceive(ctx, srv.Addr, 1<<40, 0)
				}
				// The flows end by the context's deadline, which shows up as
				// an error; anything before it is a real failure.
				if err != nil && ctx.Err() == nil {
					mu.Lock()
					workErrs = append(workErrs, err)
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	after, err := p.Stop()
	if err != nil || after.Err != "" {
		t.Fatalf("stop engine: %v %s", err, after.Err)
	}
	for _, err := range workErrs {
		t.Errorf("workload: %v", err)
	}
	if before.Stats == nil || after.Stats == nil {
		t.Fatal("engine reported no counters")
	}
	pkts := after.Stats.Packets - before.Stats.Packets
	pps := float64(pkts) / elapsed.Seconds()
	// The final values are getrusage(RUSAGE_THREAD) (µs resolution), the
	// first ones /proc (10 ms). System time includes softirq work of the
	// network stack that ran while the thread was on the CPU.
	cpu := after.ThreadCPU - before.ThreadCPU
	userCPU := after.ThreadUserCPU - before.ThreadUserCPU
	procCPU := after.ProcCPU - before.ProcCPU
	cpuShare := cpu.Seconds() / elapsed.Seconds()
	per100k := 0.0
	if pps > 0 {
		per100k = cpuShare / (pps / 1e5)
	}
	t.Logf("load: %d frames captured in %v = %.0f packets/s; kernel received %d dropped %d; "+
		"capture thread CPU %v, user %v (%.1f%% of one core, %.1f%% of a core per 100k packets/s, %.0f ns/packet); capture process CPU %v; RSS %d KiB",
		pkts, elapsed.Round(time.Millisecond), pps, after.Stats.Kernel.Received, after.Stats.Kernel.Dropped,
		cpu.Round(time.Millisecond), userCPU.Round(time.Millisecond), 100*cpuShare, 100*per100k,
		float64(cpu)/float64(max(pkts, 1)), procCPU.Round(time.Millisecond), after.RSS>>10)
	if pkts == 0 {
		t.Fatal("the capture saw no packets: the load did not reach it")
	}
	if after.Stats.Kernel.Dropped != 0 {
		t.Errorf("the capture's kernel ring dropped %d of %d frames at %.0f packets/s (%s)",
			after.Stats.Kernel.Dropped, after.Stats.Kernel.Received, pps, fmt.Sprintf("capture thread at %.0f%% of a core", 100*cpuShare))
	}
}
