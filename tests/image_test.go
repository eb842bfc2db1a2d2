package tests

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gometro/go-metro/internal/imagecontext"
	"github.com/gometro/go-metro/rttcheck"
	"github.com/gometro/go-metro/tests/internal/docker"
)

// TestImageAsDaemonSet builds the standalone image from
// deploy/docker/Dockerfile.go-metro (FROM scratch, nothing pulled) and runs
// it the way deploy/kubernetes/go-metro-daemonset.yaml does: host network,
// every capability dropped but NET_RAW, a read-only root, a non-root user,
// the configuration mounted read-only, and metrics to a DogStatsD unix
// socket mounted from the host (here the test listens on it). It asserts
// that the container times loopback traffic and its RTT series arrive.
func TestImageAsDaemonSet(t *testing.T) {
	docker.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// The image, tagged per run so that parallel runs do not collide.
	contextDir := t.TempDir()
	if err := imagecontext.Build(ctx, "go", "..", contextDir); err != nil {
		t.Fatal(err)
	}
	image := fmt.Sprintf("go-metro-test:%d", os.Getpid())
	if out, err := docker.Run(ctx, "build", "-q", "-f", "../deploy/docker/Dockerfile.go-metro", "-t", image, contextDir); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Cleanup(func() { docker.Run(context.Background(), "rmi", "-f", image) })

	// The workload: request/response on a loopback port of its own, so
	// that the instance times nothing else on this machine's lo.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port

	// DogStatsD's socket, made as the agent makes it (mode 0722: any user
	// may send), in a directory the container user can enter.
	sockDir := t.TempDir()
	os.Chmod(sockDir, 0o755)
	sock, err := net.ListenPacket("unixgram", filepath.Join(sockDir, "dsd.socket"))
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	os.Chmod(filepath.Join(sockDir, "dsd.socket"), 0o722)
	var mu sync.Mutex
	var got bytes.Buffer
	go func() {
		buf := make([]byte, 65536)
		for {
			n, _, err := sock.ReadFrom(buf)
			if err != nil {
				return
			}
			mu.Lock()
			got.Write(buf[:n])
			got.WriteByte('\n')
			mu.Unlock()
		}
	}()

	// The configuration, mounted as the DaemonSet mounts its ConfigMap.
	confDir := t.TempDir()
	os.Chmod(confDir, 0o755)
	conf := fmt.Sprintf(`init_config:
  statsd_ip: unix:///var/run/datadog/dsd.socket
instances:
  - interface: lo
    all_remote_hosts: true
    ports: [%d]
    reverse_dns: false
    min_collection_interval: 1
    tags: [deployment:docker-test]
`, port)
	if err := os.WriteFile(filepath.Join(confDir, "conf.yaml"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}

	name := fmt.Sprintf("go-metro-test-%d", os.Getpid())
	if _, err := docker.Run(ctx, "run", "-d", "--name", name,
		"--network", "host", "--cap-drop", "ALL", "--cap-add", "NET_RAW", "--read-only", "--user", "65534",
		"-v", confDir+":/etc/go-metro:ro", "-v", sockDir+":/var/run/datadog:ro",
		image); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("container log:\n%s", docker.Logs(context.Background(), name))
		}
		docker.Run(context.Background(), "rm", "-f", name)
	})

	want := []string{rttcheck.MetricRTTAvg + ":", "|g|", "src:127.0.0.1", "dst:127.0.0.1", "iface:lo", "deployment:docker-test"}
	arrived := func() string {
		mu.Lock()
		defer mu.Unlock()
	lines:
		for _, l := range strings.Split(got.String(), "\n") {
			for _, w := range want {
				if !strings.Contains(l, w) {
					continue lines
				}
			}
			return l
		}
		return ""
	}
	deadline := time.Now().Add(90 * time.Second)
	for arrived() == "" {
		if time.Now().After(deadline) {
			mu.Lock()
			t.Fatalf("no %s series from the container within 90 s; the socket got:\n%s", rttcheck.MetricRTTAvg, got.String())
		}
		exchangeLoopback(t, ln.Addr().String())
		if st, _ := docker.Run(ctx, "inspect", "-f", "{{.State.Status}} (exit code {{.State.ExitCode}})", name); !strings.HasPrefix(st, "running") {
			t.Fatalf("container %s", st)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("from the container: %s", arrived())
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(got.String(), "_sc|"+rttcheck.ServiceCheckName+"|0|") {
		t.Errorf("no OK %s on the socket:\n%s", rttcheck.ServiceCheckName, got.String())
	}
}

// exchangeLoopback makes one connection with a few request/response round
// trips to the echo server at addr.
func exchangeLoopback(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	req, resp := make([]byte, 200), make([]byte, 200)
	for range 5 {
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, resp); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
