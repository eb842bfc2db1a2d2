package probe

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/gometro/go-metro/internal/syncbuf"
	"github.com/gometro/go-metro/tests/lab"
)

// Proc is a running probe child.
type Proc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	done   chan error
	stderr *syncbuf.Buffer
	// Ready is the child's first report (its Err says why it could not
	// start).
	Ready Report
}

// Options start a probe.
type Options struct {
	Exe  string   // binary to re-execute; "" takes os.Executable()
	Role string   // "check" or "engine"
	Env  []string // extra environment (InstanceEnv, InitEnv, EngineEnv)
	// Prepare, if set, adjusts the command before it starts (lab.AsUser).
	Prepare func(*exec.Cmd) *exec.Cmd
}

// Start starts a probe inside host h and waits for its ready report. The
// child is in h's network namespace for its whole life (it is forked by a
// thread inside it).
func Start(h *lab.Host, o Options) (*Proc, error) {
	exe := o.Exe
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("probe: own executable: %w", err)
		}
	}
	cmd := exec.Command(exe)
	cmd.Env = append(append(os.Environ(), RoleEnv+"="+o.Role), o.Env...)
	if o.Prepare != nil {
		cmd = o.Prepare(cmd)
	}
	p := &Proc{cmd: cmd, lines: make(chan string, 16), done: make(chan error, 1), stderr: &syncbuf.Buffer{}}
	cmd.Stderr = p.stderr
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, fmt.Errorf("probe: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("probe: %w", err)
	}
	if err := h.Start(cmd); err != nil {
		return nil, fmt.Errorf("probe %s: %w", o.Role, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 64<<20) // flow lists can be long
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		p.done <- cmd.Wait()
	}()
	rep, err := p.read(30 * time.Second)
	if err != nil {
		p.Kill()
		return nil, err
	}
	p.Ready = rep
	if rep.Kind != "ready" {
		p.Kill()
		return nil, fmt.Errorf("probe: first report is %q, not ready", rep.Kind)
	}
	return p, nil
}

func (p *Proc) read(timeout time.Duration) (Report, error) {
	select {
	case line, ok := <-p.lines:
		if !ok {
			err := <-p.done
			p.done <- err
			return Report{}, fmt.Errorf("probe exited (%v): %s", err, p.stderr.String())
		}
		var r Report
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return Report{}, fmt.Errorf("probe: bad report %q: %w", line, err)
		}
		return r, nil
	case <-time.After(timeout):
		return Report{}, fmt.Errorf("probe: no report within %v: %s", timeout, p.stderr.String())
	}
}

// Do sends one command and returns the child's answer. The timeout bounds
// a hang; it is not a performance expectation.
func (p *Proc) Do(cmd string) (Report, error) {
	if _, err := io.WriteString(p.stdin, cmd+"\n"); err != nil {
		return Report{}, fmt.Errorf("probe: send %q: %w", cmd, err)
	}
	r, err := p.read(30 * time.Second)
	if err == nil && r.Kind != cmd {
		err = fmt.Errorf("probe: asked %q, got a %q report (%s)", cmd, r.Kind, r.Err)
	}
	return r, err
}

// Stop sends "stop", returns the final report and waits for the child.
func (p *Proc) Stop() (Report, error) {
	r, err := p.Do("stop")
	p.stdin.Close()
	select {
	case werr := <-p.done:
		p.done <- werr
		if werr != nil && err == nil {
			err = fmt.Errorf("probe exit: %w: %s", werr, p.stderr.String())
		}
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		err = errors.Join(err, errors.New("probe did not exit within 10s of stop (killed)"))
	}
	return r, err
}

// Kill ends the child at once (cleanup after a failure). Safe to call
// after Stop.
func (p *Proc) Kill() {
	p.stdin.Close()
	_ = p.cmd.Process.Kill() // fails harmlessly if it already exited
}

// Stderr is what the child wrote to stderr so far.
func (p *Proc) Stderr() string { return p.stderr.String() }

// PID is the child's process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// CopyExecutable copies the running binary into a new directory everyone
// can read and execute, for children run as another user (a test binary
// lives in a directory only root can enter). The caller removes the
// returned directory.
func CopyExecutable() (exe, dir string, err error) {
	self, err := os.Executable()
	if err != nil {
		return "", "", fmt.Errorf("probe: own executable: %w", err)
	}
	dir, err = os.MkdirTemp("", "gometro-probe-")
	if err != nil {
		return "", "", fmt.Errorf("probe: %w", err)
	}
	fail := func(err error) (string, string, error) {
		os.RemoveAll(dir)
		return "", "", fmt.Errorf("probe: copy executable: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return fail(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		return fail(err)
	}
	exe = filepath.Join(dir, "probe")
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		return fail(err)
	}
	return exe, dir, nil
}
