package lab

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// RunMain is RequireRoot's counterpart for the programs that build labs
// (tests/cmd/demo, tests/cmd/benchlive), called by their main after flag
// parsing. Unless it runs as root it prints "name: must run as root" and
// why (which starts with its own separator) and exits 2. Otherwise it
// calls run with a context cancelled by SIGINT or SIGTERM, so that the
// labs are torn down on ^C, and exits 1 with "name: error" if run fails.
func RunMain(name, why string, run func(context.Context) error) {
	if os.Geteuid() != 0 {
		fmt.Fprintf(os.Stderr, "%s: must run as root%s\n", name, why)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}
