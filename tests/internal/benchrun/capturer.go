package benchrun

import (
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"time"
)

// Capturer is a capture process (go-metro or tcpdump) that runs until
// Stop, which ends it the way a user does, with SIGINT, so that it prints
// its summary (tcpdump's counters) on the way out.
type Capturer struct {
	cmd    *exec.Cmd
	grace  time.Duration
	done   chan struct{} // closed once Wait returned
	err    error         // Wait's, once done is closed
	killed bool
}

// StartCapturer starts cmd with start (a lab host's Start, which runs it
// in the host's namespace). Stop waits grace for it to exit on SIGINT
// before killing it.
func StartCapturer(start func(*exec.Cmd) error, cmd *exec.Cmd, grace time.Duration) (*Capturer, error) {
	if err := start(cmd); err != nil {
		return nil, err
	}
	c := &Capturer{cmd: cmd, grace: grace, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// Pid is the process's id, for reading its CPU and memory from /proc.
func (c *Capturer) Pid() int { return c.cmd.Process.Pid }

// Exited reports whether the process has ended, before Stop.
func (c *Capturer) Exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGINT and waits for the process to exit; after the grace
// period it kills it and says so. An exit by the signal is not an error.
// Stop may be called again: it returns the same result.
func (c *Capturer) Stop() error {
	if !c.Exited() {
		c.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-c.done:
		case <-time.After(c.grace):
			c.cmd.Process.Kill()
			<-c.done
			c.killed = true
		}
	}
	if c.killed {
		return fmt.Errorf("did not stop on SIGINT within %v", c.grace)
	}
	var ee *exec.ExitError
	if errors.As(c.err, &ee) {
		// Ended by the signal, or exited with a status on it: what went
		// wrong, if anything, is in the output the caller reads.
		return nil
	}
	return c.err
}
