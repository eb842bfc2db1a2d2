package delayline

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"
)

// Lines the command prints on stdout, so a parent process can follow it.
const (
	ReadyLine   = "DELAYLINE READY"  // sockets are bound: frames are forwarded from now on
	StatsPrefix = "DELAYLINE STATS " // followed by Stats as JSON, printed on exit
)

// Main is the delayline command: it bridges interfaces -a and -b in the
// current network namespace until SIGTERM or SIGINT, then prints its
// counters and returns the exit code. It is shared by tests/cmd/delayline and
// by the lab, which re-executes its own test binary in that role.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("delayline", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ifA := fs.String("a", "", "first interface (side A)")
	ifB := fs.String("b", "", "second interface (side B)")
	delay := fs.Duration("delay", 0, "one-way delay, both directions")
	jitter := fs.Duration("jitter", 0, "uniform jitter +-, both directions (order is kept)")
	loss := fs.Float64("loss", 0, "loss probability in [0,1], both directions")
	delayAB := fs.Duration("delay-ab", -1, "one-way delay A->B (overrides -delay)")
	delayBA := fs.Duration("delay-ba", -1, "one-way delay B->A (overrides -delay)")
	jitterAB := fs.Duration("jitter-ab", -1, "jitter A->B (overrides -jitter)")
	jitterBA := fs.Duration("jitter-ba", -1, "jitter B->A (overrides -jitter)")
	lossAB := fs.Float64("loss-ab", -1, "loss A->B (overrides -loss)")
	lossBA := fs.Float64("loss-ba", -1, "loss B->A (overrides -loss)")
	burstAB := fs.Duration("burst-ab", 0, "release A->B frames in bursts this far apart (0: no bursts)")
	burstBA := fs.Duration("burst-ba", 0, "release B->A frames in bursts this far apart (0: no bursts)")
	queue := fs.Int("queue", 0, "frames queued per direction before dropping (0: default 65536)")
	frameSize := fs.Int("frame-size", 0, "largest frame in bytes (0: default 2048)")
	spin := fs.Duration("spin", 0, "spin this long before each release instead of sleeping (0: default 200us)")
	seed := fs.Uint64("seed", 0, "random seed for loss and jitter (0: fixed default)")
	sockbuf := fs.Int("sockbuf", 0, "socket receive/send buffer bytes (0: default 64 MiB)")
	vnet := fs.Bool("vnet-hdr", false, "carry GSO super-frames whole (PACKET_VNET_HDR; frame-size must hold 64 KiB)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *ifA == "" || *ifB == "" || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "delayline: -a and -b are required, and no arguments")
		return 2
	}
	pick := func(both, one time.Duration) time.Duration {
		if one >= 0 {
			return one
		}
		return both
	}
	pickF := func(both, one float64) float64 {
		if one >= 0 {
			return one
		}
		return both
	}
	cfg := Config{
		AtoB:       Dir{Delay: pick(*delay, *delayAB), Jitter: pick(*jitter, *jitterAB), Loss: pickF(*loss, *lossAB), Burst: *burstAB},
		BtoA:       Dir{Delay: pick(*delay, *delayBA), Jitter: pick(*jitter, *jitterBA), Loss: pickF(*loss, *lossBA), Burst: *burstBA},
		QueueLimit: *queue,
		FrameSize:  *frameSize,
		SpinMargin: *spin,
		Seed:       *seed,
	}
	popt := PortOptions{SocketBuffer: *sockbuf, VnetHdr: *vnet}
	pa, err := OpenPacketPort(*ifA, popt)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer pa.Close()
	pb, err := OpenPacketPort(*ifB, popt)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer pb.Close()
	line, err := New(cfg, pa, pb)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	// Two senders hold locked threads (spinning before releases); leave
	// enough Ps for the readers and the runtime whatever the CPU count.
	runtime.GOMAXPROCS(max(runtime.GOMAXPROCS(0), 4))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	fmt.Fprintln(stdout, ReadyLine)
	if f, ok := stdout.(*os.File); ok {
		_ = f.Sync()
	}
	runErr := line.Run(ctx)
	js, err := json.Marshal(line.Stats())
	if err != nil {
		fmt.Fprintln(stderr, "delayline: stats:", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s%s\n", StatsPrefix, js)
	if runErr != nil {
		fmt.Fprintln(stderr, runErr)
		return 1
	}
	return 0
}
