package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gometro/go-metro/internal/pcaptest"
	"github.com/gometro/go-metro/internal/syncbuf"
	"github.com/gometro/go-metro/internal/testwait"
)

// mainEnv makes the test binary run main() instead of the tests, so that a
// test can start the real command as a process and signal it.
const mainEnv = "GOMETRO_TEST_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(mainEnv) == "1" {
		main()
	}
	os.Exit(m.Run())
}

// TestCheckExitStatus: `go-metro check` fails (exit 1, one stderr line per
// instance) when an instance cannot capture or its replay failed, as
// `agent check` fails on a check error; it exits 0 when every instance
// worked.
func TestCheckExitStatus(t *testing.T) {
	pcap := pcaptest.WriteExchange(t, t.TempDir(), 10*time.Millisecond, 3)
	replay := "  - interface: file\n    pcap: " + pcap + "\n    local_ips: [10.0.0.1]\n    all_remote_hosts: true\n"
	tests := []struct {
		name      string
		instances string
		wantCode  int
		wantErr   string
	}{
		{"replay worked", replay, 0, ""},
		{"replay failed", "  - interface: file\n    pcap: /nonexistent/capture.pcap\n    all_remote_hosts: true\n", 1,
			"go-metro: instance #0 (file): go_metro.can_capture CRITICAL: cannot replay /nonexistent/capture.pcap"},
		{"missing interface", "  - interface: nosuchif0\n    all_remote_hosts: true\n", 1,
			"go-metro: instance #0 (nosuchif0): go_metro.can_capture CRITICAL: cannot capture on nosuchif0"},
		{"one of two failed", replay + "  - interface: nosuchif0\n    all_remote_hosts: true\n", 1, "instance #1 (nosuchif0)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := writeConfig(t, "init_config:\ninstances:\n"+tc.instances)
			code, stdout, stderr := run(t, context.Background(), "check", "--config", cfg, "--duration", "200ms")
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d; stderr %q", code, tc.wantCode, stderr)
			}
			if tc.wantErr != "" && !strings.Contains(stderr, tc.wantErr) {
				t.Errorf("stderr %q lacks %q", stderr, tc.wantErr)
			}
			if !strings.Contains(stdout, "=== go-metro instance #0") {
				t.Errorf("the report is not printed: %q", stdout)
			}
		})
	}
}

// TestRunReloadsOnSIGHUP: SIGHUP makes `go-metro run` (a real process)
// load its configuration again; a file that does not load leaves the
// running configuration alone; SIGTERM still ends it with status 0.
func TestRunReloadsOnSIGHUP(t *testing.T) {
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var mu sync.Mutex
	var got bytes.Buffer
	go func() {
		buf := make([]byte, 65536)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			mu.Lock()
			got.Write(buf[:n])
			mu.Unlock()
		}
	}()
	received := func() string { mu.Lock(); defer mu.Unlock(); return got.String() }
	port := strconv.Itoa(conn.LocalAddr().(*net.UDPAddr).Port)
	config := func(gen string) string {
		return "init_config:\n  statsd_ip: 127.0.0.1\n  statsd_port: " + port + "\ninstances:\n" +
			"  - interface: file\n    pcap: /nonexistent/capture.pcap\n    all_remote_hosts: true\n    min_collection_interval: 1\n    tags: [gen:" + gen + "]\n"
	}
	cfg := writeConfig(t, config("1"))

	var logs syncbuf.Buffer
	cmd := exec.Command(os.Args[0], "run", "--config", cfg)
	cmd.Env = append(os.Environ(), mainEnv+"=1")
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		<-exited
	}()
	alive := func(what string) {
		t.Helper()
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("%s: go-metro run ended: %v; log:\n%s", what, err, logs.String())
		default:
		}
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		testwait.For(t, what, 30*time.Second, func() bool { alive(what); return cond() })
	}
	waitFor("the first configuration's series", func() bool { return strings.Contains(received(), "gen:1") })

	if err := os.WriteFile(cfg, []byte(config("2")), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor("the reloaded configuration's series", func() bool { return strings.Contains(received(), "gen:2") })
	if !strings.Contains(logs.String(), "configuration reloaded") {
		t.Errorf("log lacks the reload:\n%s", logs.String())
	}

	if err := os.WriteFile(cfg, []byte("instances: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor("the failed reload's error", func() bool {
		return strings.Contains(logs.String(), "reload failed, the running configuration stays: "+cfg+": invalid YAML")
	})
	mu.Lock()
	got.Reset()
	mu.Unlock()
	waitFor("series of the configuration that stayed", func() bool { return strings.Contains(received(), "gen:2") })

	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Errorf("after SIGTERM: %v; log:\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("go-metro run did not end on SIGTERM")
	}
}
