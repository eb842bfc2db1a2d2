// Package docker gives lab tests a Docker daemon: Require uses the one
// that answers, or starts dockerd (Debian's docker.io) for the test and
// stops it after. Without Docker a test skips, except when the environment
// variable CI is set: there it fails, so CI can never go green by skipping.
package docker

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startWait bounds dockerd's start (a first start sets up its data root).
const startWait = 60 * time.Second

// Require returns when `docker` reaches a daemon, starting dockerd if none
// answers; a daemon it started is stopped when t ends. It skips t (fails
// it when CI is set) when Docker cannot be used, saying why.
func Require(t testing.TB) {
	t.Helper()
	if err := require(t); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("docker: %v; CI is set: refusing to skip (make deps installs docker.io)", err)
		}
		t.Skipf("docker: %v (apt-get install docker.io; set CI to make this a failure)", err)
	}
}

func require(t testing.TB) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root to start and use dockerd")
	}
	if _, err := exec.LookPath("docker"); err != nil {
		return fmt.Errorf("no docker command: %v", err)
	}
	if answers() == nil {
		return nil
	}
	dockerd, err := exec.LookPath("dockerd")
	if err != nil {
		return fmt.Errorf("no daemon answers and there is no dockerd to start: %v", err)
	}
	logPath := filepath.Join(os.TempDir(), "go-metro-dockerd.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(dockerd)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: a terminal's signal to the test is not its.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting dockerd: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logf.Close() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	deadline := time.Now().Add(startWait)
	for {
		err := answers()
		if err == nil {
			return nil
		}
		select {
		case werr := <-exited:
			exited <- werr // for the cleanup
			return fmt.Errorf("dockerd exited (%v); its log %s ends: %s", werr, logPath, tail(logPath))
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dockerd started but does not answer after %s (%v); its log %s ends: %s", startWait, err, logPath, tail(logPath))
		}
	}
}

// answers reports whether `docker version` reaches a daemon.
func answers() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], " | ")
}

// Run runs `docker args...` and returns its standard output, trimmed; the
// error carries its standard error.
func Run(ctx context.Context, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return strings.TrimSpace(stdout.String()), fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// Logs returns what a container wrote to its standard output and error.
func Logs(ctx context.Context, container string) string {
	out, err := exec.CommandContext(ctx, "docker", "logs", container).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("(docker logs: %v) %s", err, out)
	}
	return string(out)
}
