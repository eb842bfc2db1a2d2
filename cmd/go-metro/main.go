// Command go-metro is the standalone go-metro: it runs the go-metro check
// for stock Datadog agents (metrics to DogStatsD, as under Agent v5), prints
// what the check would submit like `agent check` does, and replays capture
// files into a per-flow RTT table.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// exitError carries an exit code for failures that were already reported.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// execute runs the command line and returns the process exit code. Every
// failure is one line on stderr; nothing panics out of here.
func execute(ctx context.Context, args []string, stdout, stderr io.Writer) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "go-metro: internal error: %v\n", r)
			code = 2
		}
	}()
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	fmt.Fprintf(stderr, "go-metro: %s\n", oneLine(err.Error()))
	return 1
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "go-metro",
		Short: "Passive TCP round-trip-time monitor",
		Long: "go-metro sniffs TCP traffic, times each outgoing segment against the ACK that answers it,\n" +
			"and reports per host pair RTT (system.net.tcp.rtt, .avg, .jitter) to Datadog.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	// Flag errors are usage errors: say what is wrong in one line.
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%s: %v (see %s --help)", c.CommandPath(), err, c.CommandPath())
	})
	root.AddCommand(newRunCmd(stdout, stderr), newCheckCmd(stdout, stderr), newReplayCmd(stdout, stderr))
	return root
}
