package lab

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/gometro/go-metro/internal/ownthread"
	"github.com/gometro/go-metro/tests/internal/delayline"
	"golang.org/x/sys/unix"
)

// Host is one network namespace of the lab.
type Host struct {
	Name string // namespace name, as `ip netns` knows it
	fd   int    // open namespace file, for setns
	// congestion, when set, is the congestion control the host's sockets
	// ask for (TCP_CONGESTION), where the namespace's default could not
	// be set (see Lab.setup).
	congestion string
}

// setCongestion applies the host's congestion control, if it has one of
// its own, to socket fd (a listener's accepted sockets inherit it). Root
// (CAP_NET_ADMIN) may pick any algorithm the kernel has.
func (h *Host) setCongestion(fd uintptr) error {
	if h.congestion == "" {
		return nil
	}
	if err := unix.SetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION, h.congestion); err != nil {
		return fmt.Errorf("lab: TCP_CONGESTION %s in %s: %w", h.congestion, h.Name, err)
	}
	return nil
}

// control is a net.Dialer or net.ListenConfig Control that applies the
// host's socket options.
func (h *Host) control(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) { serr = h.setCongestion(fd) }); err != nil {
		return err
	}
	return serr
}

func newHost(name string) (*Host, error) {
	if err := run("ip", "netns", "add", name); err != nil {
		return nil, err
	}
	fd, err := unix.Open(filepath.Join("/run/netns", name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		_ = run("ip", "netns", "del", name)
		return nil, fmt.Errorf("lab: open namespace %s: %w", name, err)
	}
	return &Host{Name: name, fd: fd}, nil
}

func (h *Host) close() error {
	if h.fd >= 0 {
		unix.Close(h.fd)
		h.fd = -1
	}
	// Deleting the namespace destroys its veths; threads or sockets still
	// inside only keep it alive until they go.
	return run("ip", "netns", "del", h.Name)
}

// Do runs fn on a fresh OS thread that has entered the host's network
// namespace, and returns fn's error. Sockets fn creates belong to the
// namespace for their whole life and may be used from any goroutine later.
//
// The thread is never handed back to the scheduler: it ends with fn
// (internal/ownthread). That matters because a thread in the wrong
// namespace would run unrelated goroutines, and because Go threads inherit the namespace of the thread that spawns them. Goroutines
// fn starts do not run in the namespace (the runtime spawns threads from a
// clean template thread while one is locked). A panic in fn is returned as
// an error.
func (h *Host) Do(fn func() error) error {
	return <-h.Go(fn)
}

// Go is Do without waiting: it returns a channel that receives fn's error
// (exactly one value) when fn returns. Use it for calls that block for the
// life of a test, such as a capture engine's Run.
func (h *Host) Go(fn func() error) <-chan error {
	errc := make(chan error, 1)
	ownthread.Go(func() { // see Do
		defer func() {
			if r := recover(); r != nil {
				errc <- fmt.Errorf("lab: panic in namespace %s: %v", h.Name, r)
			}
		}()
		if err := unix.Setns(h.fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("lab: enter namespace %s: %w", h.Name, err)
			return
		}
		errc <- fn()
	})
	return errc
}

// Start starts cmd inside the host's namespace: the fork happens on a
// thread in the namespace, and the child keeps it.
func (h *Host) Start(cmd *exec.Cmd) error {
	return h.Do(func() error {
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("lab: start %s in %s: %w", cmd.Path, h.Name, err)
		}
		return nil
	})
}

// Command returns a command that runs in the host through `ip netns exec`,
// which also mounts the namespace's /sys (useful for tools reading
// /sys/class/net). Run it like any exec.Cmd.
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", h.Name, name}, args...)...)
}

// Run runs a command in the host and returns its combined output.
func (h *Host) Run(name string, args ...string) (string, error) {
	out, err := h.Command(name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("lab: %s: %s %s: %w: %s", h.Name, name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// WriteSysctl writes a sysctl of the host's network namespace, e.g.
// "net/ipv4/tcp_sack". /proc/sys/net resolves against the namespace of the
// thread that opens it, which Do provides.
func (h *Host) WriteSysctl(key, value string) error {
	return h.Do(func() error {
		if err := os.WriteFile(filepath.Join("/proc/sys", key), []byte(value), 0); err != nil {
			return fmt.Errorf("lab: sysctl %s=%s in %s: %w", key, value, h.Name, err)
		}
		return nil
	})
}

// Offloads turns off every offload that would make captured frames differ
// from wire segments: segmentation (TSO/GSO), receive coalescing (GRO),
// checksum offload (captured frames would carry partial checksums),
// scatter-gather, and VLAN tag acceleration (tags stay in the frame).
func (h *Host) Offloads(dev string) error {
	_, err := h.Run("ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off",
		"tx", "off", "rx", "off", "sg", "off", "rxvlan", "off", "txvlan", "off")
	return err
}

// AsUser makes cmd run as uid/gid with no supplementary groups and only the
// given capabilities (e.g. unix.CAP_NET_RAW), raised as ambient capabilities
// so they survive exec of a binary without file capabilities. Start it with
// Host.Start to place it in a namespace: this is how fault tests check that
// CAP_NET_RAW alone is enough.
func AsUser(cmd *exec.Cmd, uid, gid uint32, caps ...uintptr) *exec.Cmd {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uid, Gid: gid, NoSetGroups: false}
	cmd.SysProcAttr.AmbientCaps = caps
	return cmd
}

// BuildBinary builds the Go package pkg (an import path, e.g.
// "github.com/gometro/go-metro/cmd/go-metro") into a directory that t
// removes at cleanup and returns the binary's path, for tests that run it in
// a host or as another user (the directory is readable by everyone). It
// fails the test if the build fails.
func BuildBinary(t testing.TB, pkg string, tags ...string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("lab: build %s: %v", pkg, err)
	}
	out := filepath.Join(dir, filepath.Base(pkg))
	// The go command that runs the tests: go test puts its GOROOT/bin
	// first in the tests' PATH.
	goTool := "go"
	args := []string{"build", "-o", out}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	args = append(args, pkg)
	if b, err := exec.Command(goTool, args...).CombinedOutput(); err != nil {
		t.Fatalf("lab: go %s: %v: %s", strings.Join(args, " "), err, b)
	}
	return out
}

func parseStats(line string) (delayline.Stats, error) {
	var st delayline.Stats
	err := json.Unmarshal([]byte(strings.TrimPrefix(line, delayline.StatsPrefix)), &st)
	return st, err
}
