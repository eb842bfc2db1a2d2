package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/DataDog/datadog-go/v5/statsd"
	"github.com/gometro/go-metro/internal/pcaptest"
)

func run(t *testing.T, ctx context.Context, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = execute(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestReplayJSON(t *testing.T) {
	pcap := pcaptest.WriteExchange(t, t.TempDir(), 10*time.Millisecond, 4)
	tests := []struct {
		name       string
		args       []string
		wantStderr string
	}{
		{"inferred local", []string{"replay", "--json", pcap}, "local addresses (inferred from the traffic): 10.0.0.1"},
		{"given local", []string{"replay", "--local-ip", "10.0.0.1", "--json", pcap}, "local addresses (given): 10.0.0.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := run(t, context.Background(), tc.args...)
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			if !strings.Contains(stderr, tc.wantStderr) {
				t.Errorf("stderr %q lacks %q", stderr, tc.wantStderr)
			}
			// Exactly one JSON object.
			dec := json.NewDecoder(strings.NewReader(stdout))
			var got map[string]any
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("stdout %q: %v", stdout, err)
			}
			if dec.More() {
				t.Errorf("more than one JSON value in %q", stdout)
			}
			var typed replayOut
			json.Unmarshal([]byte(stdout), &typed)
			want := replayOut{replayHead: replayHead{Packets: 11, TCPPackets: 11, DecodeErrors: 0}, Flows: []replayFlow{{
				Src: netip.MustParseAddr("10.0.0.1"), SrcPort: 40000, Dst: netip.MustParseAddr("10.0.0.2"), DstPort: 443, Samples: 5,
				RTT: 10, RTTAvg: 10, RTTJitter: typed.Flows[0].RTTJitter, RTTMin: 10, RTTMax: 10,
			}}}
			if len(typed.Flows) != 1 || typed.Packets != want.Packets || typed.TCPPackets != want.TCPPackets ||
				typed.Flows[0] != want.Flows[0] {
				t.Errorf("got %+v\nwant %+v", typed, want)
			}
			for _, k := range []string{"packets", "tcp_packets", "decode_errors", "flows"} {
				if _, ok := got[k]; !ok {
					t.Errorf("key %q missing", k)
				}
			}
			f := got["flows"].([]any)[0].(map[string]any)
			for _, k := range []string{"src", "src_port", "dst", "dst_port", "samples", "rtt_ms", "rtt_avg_ms", "rtt_jitter_ms", "rtt_min_ms", "rtt_max_ms"} {
				if _, ok := f[k]; !ok {
					t.Errorf("flow key %q missing", k)
				}
			}
		})
	}
}

func TestReplayTable(t *testing.T) {
	pcap := pcaptest.WriteExchange(t, t.TempDir(), 20*time.Millisecond, 2)
	code, stdout, stderr := run(t, context.Background(), "replay", pcap)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 3 {
		t.Fatalf("want header, one flow, summary; got %q", stdout)
	}
	fields := strings.Fields(lines[1])
	want := []string{"10.0.0.1:40000", "10.0.0.2:443", "3", "20.000", "20.000"}
	for i, w := range want {
		if fields[i] != w {
			t.Errorf("column %d = %q, want %q (row %q)", i, fields[i], w, lines[1])
		}
	}
}

func TestCLIErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pcap")
	os.WriteFile(garbage, []byte("this is not a capture file at all, not even close"), 0o644)
	badCfg := filepath.Join(dir, "bad.yaml")
	os.WriteFile(badCfg, []byte("init_config:\ninstances:\n  - interface: eth0\n    ips: [10.0.0.1]\n  - interface: eth1\n    ips: [10.0.0.300]\n"), 0o644)
	noInst := filepath.Join(dir, "noinst.yaml")
	os.WriteFile(noInst, []byte("init_config:\n  snaplen: 512\n"), 0o644)
	badYAML := filepath.Join(dir, "badyaml.yaml")
	os.WriteFile(badYAML, []byte("instances: [\n"), 0o644)
	tests := []struct {
		name string
		args []string
		want string // substring of the one stderr line
	}{
		{"missing file", []string{"replay", filepath.Join(dir, "nope.pcap")}, "nope.pcap: no such file or directory"},
		{"directory", []string{"replay", dir}, "is a directory"},
		{"not a capture", []string{"replay", garbage}, "garbage.pcap"},
		{"no file argument", []string{"replay"}, "exactly one capture file"},
		{"bad local ip", []string{"replay", "--local-ip", "10.0.0.999", garbage}, `--local-ip "10.0.0.999" is not an IP address or CIDR`},
		{"unknown flag", []string{"replay", "--frobnicate", garbage}, "unknown flag: --frobnicate"},
		{"unknown command", []string{"fly"}, `unknown command "fly"`},
		{"check without config", []string{"check"}, `required flag(s) "config" not set`},
		{"check bad duration", []string{"check", "--config", badCfg, "--duration", "soon"}, `invalid argument "soon" for "--duration"`},
		{"check bad config", []string{"check", "--config", badCfg}, `instance #1 "eth1": ips[0]: "10.0.0.300" is not an IP address or CIDR`},
		{"check no instances", []string{"check", "--config", noInst}, "instances: at least one instance is required"},
		{"check bad yaml", []string{"check", "--config", badYAML}, "invalid YAML"},
		{"check missing config", []string{"check", "--config", filepath.Join(dir, "none.yaml")}, "reading config: open"},
		{"run bad config", []string{"run", "--config", badCfg}, `ips[0]: "10.0.0.300"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := run(t, context.Background(), tc.args...)
			if code == 0 {
				t.Fatalf("exit 0, stdout %q", stdout)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr %q lacks %q", stderr, tc.want)
			}
			if n := strings.Count(strings.TrimSpace(stderr), "\n"); n != 0 || !strings.HasPrefix(stderr, "go-metro: ") {
				t.Errorf("stderr is not one go-metro: line: %q", stderr)
			}
			if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic") {
				t.Errorf("stack trace on stderr: %q", stderr)
			}
		})
	}
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "conf.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckCommand(t *testing.T) {
	pcap := pcaptest.WriteExchange(t, t.TempDir(), 10*time.Millisecond, 3)
	cfg := writeConfig(t, `init_config:
instances:
  - interface: file
    pcap: `+pcap+`
    local_ips: [10.0.0.1]
    all_remote_hosts: true
    reverse_dns: false
    tags: [env:cli]
    surprise: 1
`)
	t.Run("json", func(t *testing.T) {
		code, stdout, stderr := run(t, context.Background(), "check", "--config", cfg, "--duration", "1h", "--json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		var got []recording
		if err := json.Unmarshal([]byte(stdout), &got); err != nil {
			t.Fatalf("%v in %q", err, stdout)
		}
		if len(got) != 1 {
			t.Fatalf("%d instances", len(got))
		}
		var avg *metricOut
		for i, m := range got[0].Metrics {
			if m.Metric == "system.net.tcp.rtt.avg" {
				avg = &got[0].Metrics[i]
			}
		}
		if avg == nil || avg.Value != 10 || strings.Join(avg.Tags, ",") != "src:10.0.0.1,dst:10.0.0.2,iface:file,env:cli" {
			t.Errorf("avg = %+v", avg)
		}
		if len(got[0].Checks) != 1 || got[0].Checks[0].Status != "OK" {
			t.Errorf("service checks %+v", got[0].Checks)
		}
		if len(got[0].Warnings) != 1 || !strings.Contains(got[0].Warnings[0], `unknown key "surprise"`) {
			t.Errorf("warnings %q", got[0].Warnings)
		}
	})
	t.Run("text", func(t *testing.T) {
		code, stdout, stderr := run(t, context.Background(), "check", "--config", cfg, "--duration", "1h")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		for _, want := range []string{"=== go-metro instance #0 (file) ===", "system.net.tcp.rtt.avg", "go_metro.can_capture OK", `unknown key "surprise"`} {
			if !strings.Contains(stdout, want) {
				t.Errorf("output lacks %q:\n%s", want, stdout)
			}
		}
	})
}

// TestRunCommand runs the daemon against a local UDP listener standing in
// for DogStatsD, then stops it the way SIGTERM would (context cancel).
func TestRunCommand(t *testing.T) {
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	port := conn.LocalAddr().(*net.UDPAddr).Port
	logFile := filepath.Join(t.TempDir(), "logs", "go-metro.log")
	cfg := writeConfig(t, `init_config:
  statsd_ip: 127.0.0.1
  statsd_port: `+strconv.Itoa(port)+`
  log_to_file: true
  log_level: info
instances:
  - interface: file
    pcap: /nonexistent/capture.pcap
    all_remote_hosts: true
    min_collection_interval: 1
    tags: [env:run]
`)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() {
		var out bytes.Buffer
		done <- execute(ctx, []string{"run", "--config", cfg, "--log-file", logFile}, &out, &stderr)
	}()
	buf := make([]byte, 65536)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got string
	for !strings.Contains(got, "_sc|go_metro.can_capture|2") {
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			cancel()
			t.Fatalf("no service check from the daemon: %v (got %q)", err, got)
		}
		got += string(buf[:n])
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d after cancel", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop after cancel")
	}
	if !strings.Contains(got, "#iface:file,env:run") {
		t.Errorf("datagrams lack instance tags: %q", got)
	}
	logs, err := os.ReadFile(logFile)
	if err != nil || !strings.Contains(string(logs), "1 instance(s) running") || !strings.Contains(string(logs), "shutting down") {
		t.Errorf("log file %q (%v)", logs, err)
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr %q although log_to_file is true", stderr.String())
	}
}

// manyPorts is n live instances on lo, one port each: none a duplicate.
func manyPorts(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "  - interface: lo\n    all_remote_hosts: true\n    ports: [%d]\n", 1000+i)
	}
	return b.String()
}

func TestLoadCheckFile(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		instances int
		warning   string
		err       string
	}{
		{name: "agent format", body: "init_config:\n  snaplen: 256\ninstances:\n  - interface: eth0\n    ips: [10.0.0.1]\n  - interface: eth1\n    hosts: [a.example]\n", instances: 2},
		{name: "oldest v5 format (config list)", body: "init_config:\n  exp_ttl: 60\nconfig:\n  - interface: eth0\n    ips: [10.0.0.1]\n", instances: 1},
		{name: "unknown top-level key", body: "instances:\n  - interface: eth0\n    ips: [10.0.0.1]\nlogs: []\n", instances: 1, warning: `unknown top-level key "logs"`},
		{name: "both lists", body: "instances:\n  - interface: eth0\n    ips: [10.0.0.1]\nconfig:\n  - interface: eth1\n    ips: [10.0.0.1]\n", err: "both instances and config are set: config is Agent v5's name for instances"},
		{name: "instances twice", body: "instances:\n  - interface: eth0\n    ips: [10.0.0.1]\ninstances:\n  - interface: eth1\n    ips: [10.0.0.1]\n", err: "conf.yaml: instances: appears more than once: put all of it under one instances: key"},
		{name: "init_config twice", body: "init_config:\ninit_config:\n  snaplen: 512\ninstances:\n  - interface: eth0\n    ips: [10.0.0.1]\n", err: "init_config: appears more than once"},
		{name: "top-level list", body: "- a\n- b\n", err: "conf.yaml: must be a mapping with init_config: and instances: keys, not a list"},
		{name: "top-level string", body: "interface eth0\n", err: "must be a mapping with init_config: and instances: keys, not a string"},
		{name: "1 MB interface", body: "instances:\n  - interface: " + strings.Repeat("x", 1<<20) + "\n    ips: [10.0.0.1]\n",
			err: `instance #0 "` + strings.Repeat("x", 64) + `"... (1048576 bytes): interface: "` + strings.Repeat("x", 64) + `"... (1048576 bytes) is not an interface name: longer than 15 bytes`},
		{name: "long unknown key", body: "instances:\n  - interface: eth0\n    ips: [10.0.0.1]\n" + strings.Repeat("k", 1000) + ": 1\n", instances: 1, warning: `unknown top-level key "kkkk`},
		{name: "merge key", body: "defaults: &d\n  interface: lo\n  all_remote_hosts: true\ninstances:\n  - <<: *d\n    tags: [a]\n  - <<: *d\n    interface: eth0\n", instances: 2, warning: `unknown top-level key "defaults"`},
		{name: "merge key into init_config", body: "common: &c\n  snaplen: 10\ninit_config:\n  <<: *c\ninstances:\n  - interface: lo\n    all_remote_hosts: true\n", err: "init_config: snaplen: 10 is too small"},
		{name: "written key wins over merged", body: "d: &d\n  interface: lo\n  all_remote_hosts: true\ninstances:\n  - <<: *d\n    interface: lo0lo0lo0lo0lo0lo0\n", err: "is not an interface name"},
		{name: "bad init_config", body: "init_config:\n  snaplen: 10\ninstances:\n  - interface: eth0\n    ips: [10.0.0.1]\n", err: "init_config: snaplen: 10 is too small"},
		{name: "instances not a list", body: "instances:\n  interface: eth0\n", err: "instances: must be a list of instances"},
		// The sections go to rttcheck as decoded here, not marshalled again.
		{name: "empty init_config", body: "init_config:\ninstances:\n  - interface: eth0\n    ips: [10.0.0.1]\n", instances: 1},
		{name: "YAML 1.1 in an instance", body: "instances:\n  - interface: eth0\n    ips: [10.0.0.1]\n    sample: yes\n    tags: [0x10]\n", instances: 1},
		{name: "instance not a mapping", body: "instances:\n  - [eth0]\n", err: "instance #0: must be a mapping of keys to values"},
		{name: "key twice in an instance", body: "instances:\n  - interface: eth0\n    ips: [10.0.0.1]\n    ips: [10.0.0.2]\n", err: "instance #0: ips: appears more than once"},
		{name: "instance repeated", body: "instances:\n  - interface: lo\n    all_remote_hosts: true\n  - interface: lo\n    all_remote_hosts: true\n",
			err: "instances[1]: interface: captures what instances[0] captures (interface lo, all_remote_hosts)"},
		{name: "10000 instances", body: "instances:\n" + strings.Repeat("  - interface: lo\n    all_remote_hosts: true\n", 10000),
			err: "instances[1]: interface: captures what instances[0] captures"},
		{name: "over the memory cap", body: "instances:\n" + manyPorts(200), err: "over the 2048 MiB that one go-metro may reserve"},
		{name: "init_config not a mapping", body: "init_config: [snaplen]\ninstances:\n  - interface: eth0\n    ips: [10.0.0.1]\n", err: "init_config: must be a mapping"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cf, err := loadCheckFile(writeConfig(t, tc.body))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %.300v, want %.300q", err, tc.err)
				}
				// Echoed values are capped: a message is one log line.
				if len(err.Error()) > 400 {
					t.Errorf("message of %d bytes", len(err.Error()))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(cf.Instances) != tc.instances {
				t.Errorf("%d instances, want %d", len(cf.Instances), tc.instances)
			}
			if tc.warning != "" && (len(cf.Warnings) != 1 || !strings.Contains(cf.Warnings[0], tc.warning) || len(cf.Warnings[0]) > 400) {
				t.Errorf("warnings %.300q", cf.Warnings)
			}
			if tc.warning == "" && len(cf.Warnings) != 0 {
				t.Errorf("unexpected warnings %q", cf.Warnings)
			}
		})
	}
}

// fakeStatsd records counts; the embedded interface panics on anything else.
type fakeStatsd struct {
	statsd.ClientInterface
	counts []string
}

func (f *fakeStatsd) Count(name string, v int64, tags []string, rate float64) error {
	if strings.Join(tags, ",") == "iface:eth0" { // the series under test
		f.counts = append(f.counts, fmt.Sprintf("%s=%d", name, v))
	}
	return nil
}

func TestStatsdMonotonicCount(t *testing.T) {
	tests := []struct {
		name   string
		values []float64
		want   []string
	}{
		{"first value is the baseline", []float64{100}, nil},
		{"increases sent as deltas", []float64{100, 150, 150, 400}, []string{"m=50", "m=0", "m=250"}},
		{"a decrease is a reset: new baseline", []float64{100, 20, 50}, []string{"m=30"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeStatsd{}
			s := &statsdSender{c: f, prev: map[string]float64{}}
			for _, v := range tc.values {
				s.MonotonicCount("m", v, "", []string{"iface:eth0"})
				s.MonotonicCount("m", 1000, "", []string{"iface:eth1"}) // another series, its own baseline
			}
			if !reflect.DeepEqual(f.counts, tc.want) {
				t.Errorf("counts %v, want %v", f.counts, tc.want)
			}
		})
	}
}

// TestLoggerLevels: the logger takes rttcheck's level names, in their order.
func TestLoggerLevels(t *testing.T) {
	for _, tc := range []struct{ level, want string }{
		{"trace", "DEBUG INFO WARN ERROR"},
		{"info", "INFO WARN ERROR"},
		{"warn", "WARN ERROR"},
		{"off", ""},
		{"nonsense", "INFO WARN ERROR"}, // as info
	} {
		var buf bytes.Buffer
		l := newLogger(&buf, tc.level)
		l.Debugf("d")
		l.Infof("i")
		l.Warnf("w")
		l.Errorf("e")
		var tags []string
		for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			if f := strings.Split(line, " | "); len(f) == 3 {
				tags = append(tags, f[1])
			}
		}
		if got := strings.Join(tags, " "); got != tc.want {
			t.Errorf("level %s logged %q, want %q", tc.level, got, tc.want)
		}
	}
}
