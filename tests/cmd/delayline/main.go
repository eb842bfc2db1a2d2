// Command delayline bridges two interfaces at layer 2 and adds per-direction
// one-way delay, order-preserving jitter and random loss: netem in user space
// for kernels without it. Run it in a network namespace that holds both
// interfaces (the lab's middle host M); SIGTERM stops it and prints its
// counters as one JSON line.
//
//	delayline -a mA -b mB -delay 25ms -jitter 5ms -loss 0.01
package main

import (
	"os"

	"github.com/gometro/go-metro/tests/internal/delayline"
)

func main() {
	os.Exit(delayline.Main(os.Args[1:], os.Stdout, os.Stderr))
}
