package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gometro/go-metro/internal/syncbuf"
	"github.com/gometro/go-metro/internal/testwait"
)

func TestParseStatsdTarget(t *testing.T) {
	tests := []struct {
		ip      string
		port    int
		want    statsdTarget
		wantErr string
	}{
		{ip: "127.0.0.1", port: 8125, want: statsdTarget{"udp", "127.0.0.1:8125"}},
		{ip: "::1", port: 8126, want: statsdTarget{"udp", "[::1]:8126"}},
		{ip: "[::1]", port: 8126, want: statsdTarget{"udp", "[::1]:8126"}},
		{ip: "dogstatsd.example", port: 8125, want: statsdTarget{"udp", "dogstatsd.example:8125"}},
		{ip: "unix:///var/run/datadog/dsd.socket", port: 8125, want: statsdTarget{"unixgram", "/var/run/datadog/dsd.socket"}},
		{ip: "unixgram:///run/dsd.socket", want: statsdTarget{"unixgram", "/run/dsd.socket"}},
		{ip: "unix://dsd.socket", wantErr: `init_config: statsd_ip: "unix://dsd.socket": the socket path must be absolute`},
		{ip: "unixstream:///run/dsd.socket", wantErr: `init_config: statsd_ip: "unixstream:///run/dsd.socket": want a host name, an IP address or unix:///`},
		{ip: "udp://" + strings.Repeat("x", 1000), wantErr: `... (1006 bytes)"`},
	}
	for _, tc := range tests {
		t.Run(tc.ip[:min(len(tc.ip), 40)], func(t *testing.T) {
			got, err := parseStatsdTarget(tc.ip, tc.port)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || len(err.Error()) > 300 {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// TestSendHealth: one warning when sending starts failing, a count every
// statsdReportEvery while it fails, one line when two flushes in a row
// went through; nothing while sending works.
func TestSendHealth(t *testing.T) {
	refused := errors.New("write udp 127.0.0.1:1->127.0.0.1:8125: connect: connection refused")
	type step struct {
		ok, fail, commit bool
		advance          time.Duration
	}
	ok, fail, commit := step{ok: true}, step{fail: true}, step{commit: true}
	wait := func(d time.Duration) step { return step{advance: d} }
	tests := []struct {
		name  string
		steps []step
		want  []string // substrings of the lines logged, in order
	}{
		{"healthy", []step{ok, ok, commit, ok, commit}, nil},
		{"outage logged once", []step{ok, fail, commit, fail, fail, commit, wait(time.Minute), fail, commit},
			[]string{"WARN | go-metro: dogstatsd at T: sending failed: write udp"}},
		{"periodic count while it lasts", []step{fail, commit, wait(statsdReportEvery), fail, fail, commit, wait(statsdReportEvery), fail},
			[]string{"sending failed", "still failing after 5m0s: 1 payload(s) lost since the last report, 2 in all", "still failing after 10m0s: 2 payload(s) lost since the last report, 4 in all"}},
		// UDP with nothing listening: success and refusal alternate.
		{"alternating writes are not a recovery", []step{fail, commit, ok, commit, fail, commit, ok, commit, fail, commit}, []string{"sending failed"}},
		{"recovery after two clean flushes", []step{fail, fail, commit, wait(30 * time.Second), ok, commit, ok, ok, commit, ok, commit},
			[]string{"sending failed", "INFO | go-metro: dogstatsd at T: sending again after 30s; 2 payload(s) were lost"}},
		{"a flush without writes proves nothing", []step{fail, commit, commit, commit, ok, commit}, []string{"sending failed"}},
		{"a new outage is logged again", []step{fail, commit, ok, commit, ok, commit, fail},
			[]string{"sending failed", "sending again", "sending failed"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			h := newSendHealth("T", newLogger(&buf, "info"))
			h.now = func() time.Time { return now }
			for _, s := range tc.steps {
				switch {
				case s.ok:
					h.record(nil)
				case s.fail:
					h.record(refused)
				case s.commit:
					h.commit()
				default:
					now = now.Add(s.advance)
				}
			}
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if buf.Len() == 0 {
				lines = nil
			}
			if len(lines) != len(tc.want) {
				t.Fatalf("logged %q, want %d line(s) %q", lines, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("line %d %q lacks %q", i, lines[i], w)
				}
			}
		})
	}
}

// statsdListener is a stand-in DogStatsD on a datagram socket that can be
// stopped and started again at the same address.
type statsdListener struct {
	network, addr string
	mu            sync.Mutex
	conn          net.PacketConn
	got           bytes.Buffer
	done          chan struct{}
}

func (l *statsdListener) start(t *testing.T) {
	t.Helper()
	c, err := net.ListenPacket(l.network, l.addr)
	if err != nil {
		t.Fatal(err)
	}
	if l.network == "unixgram" {
		os.Chmod(l.addr, 0o722) // as the agent makes its dogstatsd_socket
	}
	done := make(chan struct{})
	l.mu.Lock()
	l.conn, l.done = c, done
	l.got.Reset() // received() is what this listener got
	l.mu.Unlock()
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			l.mu.Lock()
			l.got.Write(buf[:n])
			l.mu.Unlock()
		}
	}()
}

func (l *statsdListener) stop() {
	l.mu.Lock()
	c, done := l.conn, l.done
	l.conn = nil
	l.mu.Unlock()
	if c != nil {
		c.Close()
		<-done
		if l.network == "unixgram" {
			os.Remove(l.addr)
		}
	}
}

func (l *statsdListener) received() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.got.String()
}

// freeUDPPort returns a loopback port nothing listens on (it was free a
// moment ago).
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// TestRunStatsdOutages runs the daemon at the default log level against a
// DogStatsD that is absent, stops, comes back, or sits on a unix socket:
// each outage is one warning, each recovery one line, and the daemon never
// exits over it.
func TestRunStatsdOutages(t *testing.T) {
	tests := []struct {
		name string
		// statsdIP is the statsd_ip for a listener on addr.
		network  string
		statsdIP func(addr string) string
		// startFirst: the listener is up before the daemon starts, and
		// stops once it has received the first service check.
		startFirst bool
		wantFirst  string // in the first warning
	}{
		{"udp: none at start, then up", "udp", func(string) string { return "127.0.0.1" }, false, "connection refused"},
		{"udp: stops mid-run, then up", "udp", func(string) string { return "127.0.0.1" }, true, "connection refused"},
		{"unix socket: none at start, then up", "unixgram", func(a string) string { return "unix://" + a }, false, "no such file or directory"},
		{"unix socket: stops mid-run, then up", "unixgram", func(a string) string { return "unix://" + a }, true, "dsd.socket"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := &statsdListener{network: tc.network}
			port := 8125
			if tc.network == "udp" {
				port = freeUDPPort(t)
				l.addr = "127.0.0.1:" + strconv.Itoa(port)
			} else {
				l.addr = filepath.Join(t.TempDir(), "dsd.socket")
			}
			defer l.stop()
			cfg := writeConfig(t, `init_config:
  statsd_ip: "`+tc.statsdIP(l.addr)+`"
  statsd_port: `+strconv.Itoa(port)+`
instances:
  - interface: file
    pcap: `+filepath.Join(t.TempDir(), "missing.pcap")+`
    all_remote_hosts: true
    min_collection_interval: 1
`)
			serviceCheck := "_sc|go_metro.can_capture|2"
			var logs syncbuf.Buffer
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan int, 1)
			if tc.startFirst {
				l.start(t)
			}
			go func() { done <- execute(ctx, []string{"run", "--config", cfg}, &bytes.Buffer{}, &logs) }()
			waitLog := func(what, sub string) {
				t.Helper()
				deadline := time.Now().Add(30 * time.Second)
				for !strings.Contains(logs.String(), sub) {
					select {
					case code := <-done:
						t.Fatalf("run exited %d waiting for %s; log:\n%s", code, what, logs.String())
					case <-time.After(20 * time.Millisecond):
					}
					if time.Now().After(deadline) {
						t.Fatalf("no %s (%q) in the log:\n%s", what, sub, logs.String())
					}
				}
			}
			if tc.startFirst {
				testwait.For(t, "a first service check", 30*time.Second, func() bool { return strings.Contains(l.received(), serviceCheck) })
				l.stop()
			}
			waitLog("warning", "WARN | go-metro: dogstatsd at ")
			if first := logs.String(); !strings.Contains(first, tc.wantFirst) || strings.Count(first, "sending failed") != 1 {
				t.Errorf("first warning lacks %q or repeats:\n%s", tc.wantFirst, first)
			}
			l.start(t)
			waitLog("recovery", "INFO | go-metro: dogstatsd at ")
			testwait.For(t, "service checks after the recovery", 30*time.Second, func() bool { return strings.Contains(l.received(), serviceCheck) })
			if n := strings.Count(logs.String(), "sending failed"); n != 1 {
				t.Errorf("%d warnings for one outage:\n%s", n, logs.String())
			}
			cancel()
			if code := <-done; code != 0 {
				t.Errorf("exit %d", code)
			}
		})
	}
}

// TestRunStatsdUnresolvable: a statsd host that does not resolve yet (the
// agent starts after go-metro) is retried; run keeps capturing. (.onion
// names fail without a DNS query: Go never sends them to DNS.)
func TestRunStatsdUnresolvable(t *testing.T) {
	cfg := writeConfig(t, `init_config:
  statsd_ip: dogstatsd.onion
instances:
  - interface: file
    pcap: /nonexistent/capture.pcap
    all_remote_hosts: true
    min_collection_interval: 1
`)
	var logs syncbuf.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- execute(ctx, []string{"run", "--config", cfg}, &bytes.Buffer{}, &logs) }()
	testwait.For(t, "the warning", 30*time.Second, func() bool {
		return strings.Contains(logs.String(), "dogstatsd at dogstatsd.onion:8125: sending failed")
	})
	select {
	case code := <-done:
		t.Fatalf("run exited %d: %s", code, logs.String())
	default:
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit %d", code)
	}
}

// TestStatsdConnWriteTimeout: a unix socket whose reader stopped reading
// drops the payload after statsdWriteTimeout instead of blocking.
func TestStatsdConnWriteTimeout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dsd.socket")
	c, err := net.ListenPacket("unixgram", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w := &statsdConn{target: statsdTarget{"unixgram", path}}
	defer w.Close()
	payload := make([]byte, 4096)
	for i := 0; ; i++ {
		_, err := w.Write(payload)
		if err == nil {
			continue
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, syscall.EAGAIN) {
			t.Fatalf("write %d: %v", i, err)
		}
		return
	}
}
