package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Names: a host resolves through its own resolv.conf, and clients connect
// by name.
//
// A namespace's resolv.conf is /etc/netns/NAME/resolv.conf, which only
// `ip netns exec` puts in place (it bind-mounts it over /etc/resolv.conf in
// a mount namespace of its own): Host.Do and Host.Go enter the network
// namespace only. So a client that connects by name runs as a child through
// Host.Command: the test binary re-executed with ByNameEnv set, whose
// TestMain calls ByNameMain.

// ByNameEnv tells a re-executed test binary to be a by-name client:
// "HOST:PORT COUNT REQSIZE RESPSIZE".
const ByNameEnv = "GOMETRO_LAB_BYNAME"

// SetResolvConf writes the host's resolv.conf (as `ip netns exec` sees it),
// and removes it when t ends.
func (h *Host) SetResolvConf(t testing.TB, content string) {
	t.Helper()
	dir := filepath.Join("/etc/netns", h.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("lab: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(content), 0o644); err != nil {
		t.Fatalf("lab: %v", err)
	}
}

// ByName is what a by-name client did: the addresses of its connection,
// once the name resolved.
type ByName struct {
	Local, Remote netip.AddrPort
	Err           string `json:",omitempty"`
}

// RequestsByName connects from h to hostport (a name and a port), resolved
// through h's resolv.conf, and makes count request/response exchanges with
// the lab's Server, as Client.RequestResponse does; then it closes. The
// client gives up after 30 s.
func (h *Host) RequestsByName(hostport string, count, reqSize, respSize int) (ByName, error) {
	exe, err := os.Executable()
	if err != nil {
		return ByName{}, fmt.Errorf("lab: own executable: %w", err)
	}
	cmd := h.Command(exe)
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d %d %d", ByNameEnv, hostport, count, reqSize, respSize))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	var r ByName
	if jerr := json.Unmarshal(out, &r); jerr != nil {
		return r, fmt.Errorf("lab: by-name client for %s: %v (output %q, %w)", hostport, jerr, out, err)
	}
	if r.Err != "" {
		return r, fmt.Errorf("lab: by-name client for %s: %s", hostport, r.Err)
	}
	return r, err
}

// ByNameMain is the by-name client's main (see ByNameEnv): it prints one
// ByName as JSON and returns the exit status.
func ByNameMain() int {
	var r ByName
	err := byName(os.Getenv(ByNameEnv), &r)
	if err != nil {
		r.Err = err.Error()
	}
	json.NewEncoder(os.Stdout).Encode(r)
	if err != nil {
		return 1
	}
	return 0
}

func byName(spec string, r *ByName) error {
	f := strings.Fields(spec)
	if len(f) != 4 {
		return fmt.Errorf("%s=%q: want HOST:PORT COUNT REQSIZE RESPSIZE", ByNameEnv, spec)
	}
	var n [3]int
	for i, s := range f[1:] {
		v, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("%s: %v", ByNameEnv, err)
		}
		n[i] = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", f[0])
	if err != nil {
		return err
	}
	defer c.Close()
	conn := c.(*net.TCPConn)
	r.Local = unmap(conn.LocalAddr().(*net.TCPAddr).AddrPort())
	r.Remote = unmap(conn.RemoteAddr().(*net.TCPAddr).AddrPort())
	return exchange(ctx, conn, &ConnRecord{}, n[0], n[1], n[2], 0)
}

// Dnsmasq is a dnsmasq server running in a host.
type Dnsmasq struct {
	cmd   *exec.Cmd
	hosts string // its hosts file, re-read on SIGHUP
}

// StartDnsmasq starts dnsmasq in h, answering on listen (port 53) from its
// configuration lines conf (authoritative data only: no upstream, no
// /etc/hosts) and from a hosts file holding hosts; the hosts file's records
// get the TTL hostsTTL. It stops when t ends. dnsmasq must be installed
// (make deps).
func (h *Host) StartDnsmasq(t testing.TB, listen netip.Addr, hostsTTL int, hosts string, conf ...string) *Dnsmasq {
	t.Helper()
	exe, err := exec.LookPath("dnsmasq")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("dnsmasq is required in CI (make deps installs it)")
		}
		t.Skip("dnsmasq not installed (make deps installs it)")
	}
	dir := t.TempDir()
	d := &Dnsmasq{hosts: filepath.Join(dir, "hosts")}
	if err := os.WriteFile(d.hosts, []byte(hosts), 0o644); err != nil {
		t.Fatal(err)
	}
	lines := append([]string{
		"keep-in-foreground", "no-resolv", "no-hosts", "no-poll", "bind-interfaces",
		"listen-address=" + listen.String(),
		"user=root", "pid-file=", "log-facility=-",
		"addn-hosts=" + d.hosts, "local-ttl=" + strconv.Itoa(hostsTTL),
	}, conf...)
	cfg := filepath.Join(dir, "dnsmasq.conf")
	if err := os.WriteFile(cfg, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(exe, "--conf-file="+cfg)
	d.cmd.Stderr = os.Stderr
	if err := h.Start(d.cmd); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.cmd.Process.Kill()
		d.cmd.Wait()
	})
	// Ready when it answers on TCP (it listens on both at once).
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := h.Do(func() error {
			c, err := net.DialTimeout("tcp", netip.AddrPortFrom(listen, 53).String(), time.Second)
			if err == nil {
				c.Close()
			}
			return err
		})
		if err == nil {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("lab: dnsmasq in %s does not answer on %v: %v", h.Name, listen, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// SetHosts replaces dnsmasq's hosts file and makes it re-read it (SIGHUP,
// which also clears its cache).
func (d *Dnsmasq) SetHosts(hosts string) error {
	if err := os.WriteFile(d.hosts, []byte(hosts), 0o644); err != nil {
		return err
	}
	return d.cmd.Process.Signal(syscall.SIGHUP)
}
