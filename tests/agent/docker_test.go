package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gometro/go-metro/internal/syncbuf"
	"github.com/gometro/go-metro/rttcheck"
	"github.com/gometro/go-metro/tests/internal/docker"
)

// The docker lab: the real agent, built with its container tags, on a host
// running containers. A client and a server, images built FROM scratch from
// tests/cmd/rttpeer, talk on the default bridge and another pair on a
// user-defined network; `agent check go-metro --json` captures on both
// bridges with all_remote_hosts. Neither container's address is the host's:
// without the agent's container metadata nothing would be timed
// (go_metro.flows.tracked 0, issue 19).

// dockerThink is the server's think time: the client's RTT samples (its
// request to the answer carrying the ACK) are about this, for the kernel
// and for go-metro alike. The kernel here has no netem to delay the bridge.
const dockerThink = 10 * time.Millisecond

// dockerPair is one client and server on one Docker network.
type dockerPair struct {
	network, iface        string // Docker network, its bridge
	server, client        string // container names
	serverIP              string
	clientPID             int
	quietAt               time.Time
	kernelSRTT, kernelVar time.Duration // the client's, read while quiet
	clientLocal           string
}

// TestAgentDockerWorkloads runs `agent check go-metro --json` twice 8 s apart
// over the two pairs' traffic: the client's series is tagged with both
// containers' names and images on the right ends (the client's under the
// agent's tag names, the server's with dst_), and its rtt.avg is within
// max(2 %, 0.3 ms) of the kernel's srtt read in the client container's
// network namespace; the server's own series carries the same tags the
// other way round.
func TestAgentDockerWorkloads(t *testing.T) {
	bin := agentBinary(t)
	docker.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	id := fmt.Sprintf("%d%03d", os.Getpid()%100000, rand.IntN(1000))
	serverImage, clientImage := buildPeerImages(ctx, t, id)

	// A user-defined network with a bridge name of our own (Linux limits
	// names to 15 bytes).
	netName, bridge := "gometro-lab-"+id, "gml"+id
	mustDocker(ctx, t, "network", "create", "-o", "com.docker.network.bridge.name="+bridge, netName)
	t.Cleanup(func() { _, _ = docker.Run(context.Background(), "network", "rm", netName) })
	docker0 := mustDocker(ctx, t, "network", "inspect", "-f", `{{index .Options "com.docker.network.bridge.name"}}`, "bridge")
	pairs := []*dockerPair{
		{network: "bridge", iface: docker0, server: "gml-server-" + id, client: "gml-client-" + id},
		{network: netName, iface: bridge, server: "gml-server2-" + id, client: "gml-client2-" + id},
	}
	for _, p := range pairs {
		runContainer(ctx, t, p.server, p.network, serverImage, "serve", "-think", dockerThink.String())
		p.serverIP = mustDocker(ctx, t, "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", p.server)
	}

	var instances []string
	for _, p := range pairs {
		// Container names are high-cardinality tags (the tagger's docker
		// collector): the instance asks for them.
		instances = append(instances, fmt.Sprintf("interface: %s\nall_remote_hosts: true\nreverse_dns: false\ntag_cardinality: high\nmin_collection_interval: 2", p.iface))
	}
	cfg := newHostAgentDir(t, instances)
	var out syncbuf.Buffer
	cmd := exec.Command(bin, "check", "go-metro", "-c", cfg.yaml, "--json", "-t", "2", "--pause", "8000")
	done := startWith(t, (*exec.Cmd).Start, cmd, &out)
	waitAgentCaptures(t, cmd.Process.Pid, []string{pairs[0].iface, pairs[1].iface}, done, &out)

	// The clients wait 1 s before connecting: the agent learns of their
	// containers meanwhile (docker events, workloadmeta), so their
	// connections are timed from the handshake on.
	for _, p := range pairs {
		runContainer(ctx, t, p.client, p.network, clientImage, "client", "-server", net.JoinHostPort(p.serverIP, "7000"),
			"-start", "1s", "-n", "40", "-every", "20ms", "-quiet", "60s")
	}
	for _, p := range pairs {
		waitQuiet(ctx, t, p, done, &out)
	}
	<-done
	if cmd.ProcessState.ExitCode() != 0 {
		t.Fatalf("agent check exited with %v:\n%s", cmd.ProcessState, out.Bytes())
	}
	co := parseInstances(t, out.Bytes(), len(pairs))

	for i, p := range pairs {
		m := co[i].Aggregator.Metrics
		for _, s := range m {
			if s.Metric == rttcheck.MetricRTTAvg || s.Metric == rttcheck.MetricFlowsTracked {
				t.Logf("%s agent check --json: %s %.4f %v", p.iface, s.Metric, s.Points[len(s.Points)-1][1], s.Tags)
			}
		}
		clientEnd := []string{"src:" + p.client, "dst:" + p.server, "iface:" + p.iface,
			"container_name:" + p.client, "image_name:" + imageName(clientImage), "short_image:" + imageName(clientImage), "docker_image:" + clientImage,
			"dst_container_name:" + p.server, "dst_image_name:" + imageName(serverImage), "dst_short_image:" + imageName(serverImage), "dst_docker_image:" + serverImage}
		avg, ts, ok := lastOf(m, rttcheck.MetricRTTAvg, clientEnd)
		if !ok {
			t.Errorf("%s: no %s tagged %v", p.iface, rttcheck.MetricRTTAvg, clientEnd)
			continue
		}
		if ts < float64(p.quietAt.Unix()) {
			t.Errorf("%s: the last run (at %v) came before the client went quiet (%v)", p.iface, ts, p.quietAt.Unix())
		}
		got := time.Duration(avg * float64(time.Millisecond))
		tol := max(time.Duration(srttRelTol*float64(p.kernelSRTT)), srttAbsTol)
		t.Logf("%s: %s from %s (%s) to %s = %v; kernel srtt in the client's namespace %v (rttvar %v; %+v, tolerance %v)",
			p.iface, rttcheck.MetricRTTAvg, p.client, p.clientLocal, p.server, got, p.kernelSRTT, p.kernelVar, got-p.kernelSRTT, tol)
		if d := got - p.kernelSRTT; math.Abs(float64(d)) > float64(tol) {
			t.Errorf("%s: rtt.avg %v vs kernel srtt %v: off by %v, tolerance %v", p.iface, got, p.kernelSRTT, d, tol)
		}
		if p.kernelSRTT < dockerThink/2 {
			t.Errorf("%s: kernel srtt %v, far below the server's think time %v: the answers did not carry the ACKs", p.iface, p.kernelSRTT, dockerThink)
		}
		// The server's side of the same connection: its own series, the
		// tags the other way round.
		serverEnd := []string{"src:" + p.server, "dst:" + p.client, "container_name:" + p.server, "short_image:" + imageName(serverImage),
			"dst_container_name:" + p.client, "dst_short_image:" + imageName(clientImage)}
		if _, _, ok := lastOf(m, rttcheck.MetricRTTSamples, serverEnd); !ok {
			t.Errorf("%s: no %s tagged %v", p.iface, rttcheck.MetricRTTSamples, serverEnd)
		}
	}
}

// buildPeerImages builds rttpeer static and makes the server and the
// client image of it, FROM scratch: nothing is pulled.
func buildPeerImages(ctx context.Context, t *testing.T, id string) (server, client string) {
	t.Helper()
	dir := t.TempDir()
	build := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, "rttpeer"), "./tests/cmd/rttpeer")
	build.Dir = repoFile(t, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building rttpeer: %v\n%s", err, b)
	}
	dockerfile := "FROM scratch\nCOPY rttpeer /rttpeer\nENTRYPOINT [\"/rttpeer\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	server, client = "gometro-lab-server:"+id, "gometro-lab-client:"+id
	for _, image := range []string{server, client} {
		// The classic builder: BuildKit needs the buildx plugin, which
		// Debian's docker.io does not always ship.
		b := exec.CommandContext(ctx, "docker", "build", "-q", "-t", image, dir)
		b.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
		if out, err := b.CombinedOutput(); err != nil {
			t.Fatalf("docker build %s: %v\n%s", image, err, out)
		}
		t.Cleanup(func() { _, _ = docker.Run(context.Background(), "rmi", "-f", image) })
	}
	return server, client
}

// imageName is an image reference without its tag.
func imageName(ref string) string {
	name, _, _ := strings.Cut(ref, ":")
	return name
}

func mustDocker(ctx context.Context, t *testing.T, args ...string) string {
	t.Helper()
	out, err := docker.Run(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func runContainer(ctx context.Context, t *testing.T, name, network, image string, args ...string) {
	t.Helper()
	mustDocker(ctx, t, append([]string{"run", "-d", "--name", name, "--network", network, image}, args...)...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("docker logs %s: %s", name, docker.Logs(context.Background(), name))
		}
		_, _ = docker.Run(context.Background(), "rm", "-f", name)
	})
}

// newHostAgentDir is newAgentDir for an agent in the host's namespace,
// next to the Docker daemon (whose socket the agent finds by itself:
// /var/run/docker.sock enables its docker collector), with one conf.yaml
// instance per element of instances. Its ports are free ones: the host
// may run another agent.
func newHostAgentDir(t *testing.T, instances []string) agentDir {
	t.Helper()
	cfg := newAgentDir(t, instances[0], "http://127.0.0.1:9")
	var ports []string
	for _, key := range []string{"cmd_port", "expvar_port"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, fmt.Sprintf("%s: %d\n", key, ln.Addr().(*net.TCPAddr).Port))
		ln.Close()
	}
	f, err := os.OpenFile(cfg.yaml, os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteString(strings.Join(ports, "") + "use_dogstatsd: false\n")
		f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	var conf strings.Builder
	conf.WriteString("init_config:\ninstances:\n")
	for _, in := range instances {
		conf.WriteString("  - " + strings.ReplaceAll(strings.TrimSpace(in), "\n", "\n    ") + "\n")
	}
	if err := os.WriteFile(filepath.Join(cfg.dir, "conf.d", "go-metro.d", "conf.yaml"), []byte(conf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// waitAgentCaptures waits until the agent process holds a bound, running
// packet socket on each interface: traffic before that would be missed.
// The host namespace may hold other captures: only the agent's sockets
// (its descriptors' inodes) count. The interfaces' indexes come from
// sysfs, which shows the namespace it was mounted in, the host's, whatever
// the thread that reads it.
func waitAgentCaptures(t *testing.T, pid int, ifaces []string, done <-chan struct{}, out *syncbuf.Buffer) {
	t.Helper()
	want := map[string]bool{}
	for _, name := range ifaces {
		b, err := os.ReadFile(filepath.Join("/sys/class/net", name, "ifindex"))
		if err != nil {
			t.Fatal(err)
		}
		want[strings.TrimSpace(string(b))] = true
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		inodes := socketInodes(pid)
		// The agent's namespace, not this process's: /proc/net follows the
		// main thread, which a lab test before may have left wedged in a
		// lab namespace (a locked goroutine that exits on it).
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/net/packet", pid))
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		head := strings.Fields(lines[0])
		iface, running, inode := slices.Index(head, "Iface"), slices.Index(head, "R"), slices.Index(head, "Inode")
		seen := map[string]bool{}
		for _, line := range lines[1:] {
			f := strings.Fields(line)
			if len(f) > inode && f[running] == "1" && inodes[f[inode]] && want[f[iface]] {
				seen[f[iface]] = true
			}
		}
		if len(seen) == len(want) {
			return
		}
		select {
		case <-done:
			t.Fatalf("the agent exited before its captures opened (running on %v of %v; %d sockets; /proc/net/packet:\n%s):\n%s", seen, want, len(inodes), b, out.Bytes())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent has no running capture on each of %v within 60 s (%v):\n%s", ifaces, seen, out.Bytes())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// socketInodes are the inodes of the process's sockets.
func socketInodes(pid int) map[string]bool {
	out := map[string]bool{}
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(l, "socket:[") {
			out[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	return out
}

// ssRTT is ss's "rtt:SRTT/RTTVAR" (milliseconds, tcp_info's).
var ssRTT = regexp.MustCompile(`\brtt:([0-9.]+)/([0-9.]+)`)

// waitQuiet waits for the client's exchanges to end, then reads the
// kernel's srtt of its connection in its container's network namespace.
func waitQuiet(ctx context.Context, t *testing.T, p *dockerPair, done <-chan struct{}, out *syncbuf.Buffer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		logs := docker.Logs(ctx, p.client)
		if strings.Contains(logs, "quiet\n") {
			p.quietAt = time.Now()
			if f := strings.Fields(logs); len(f) >= 3 && f[0] == "connected" {
				p.clientLocal = f[1]
			}
			break
		}
		select {
		case <-done:
			t.Fatalf("agent check ended before %s went quiet; client log %q:\n%s", p.client, logs, out.Bytes())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not go quiet within 30 s: %q", p.client, logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	pid, err := strconv.Atoi(mustDocker(ctx, t, "inspect", "-f", "{{.State.Pid}}", p.client))
	if err != nil {
		t.Fatal(err)
	}
	p.clientPID = pid
	b, err := exec.CommandContext(ctx, "nsenter", "-t", strconv.Itoa(pid), "-n", "ss", "-tinH", "dst", net.JoinHostPort(p.serverIP, "7000")).CombinedOutput()
	m := ssRTT.FindSubmatch(b)
	if err != nil || m == nil || bytes.Count(b, []byte("ESTAB")) != 1 {
		t.Fatalf("ss in %s's namespace: %v: %s", p.client, err, b)
	}
	srtt, _ := strconv.ParseFloat(string(m[1]), 64)
	rttvar, _ := strconv.ParseFloat(string(m[2]), 64)
	p.kernelSRTT, p.kernelVar = time.Duration(srtt*float64(time.Millisecond)), time.Duration(rttvar*float64(time.Millisecond))
}

// parseInstances is parseCheckOutput for n instances.
func parseInstances(t *testing.T, out []byte, n int) checkOutput {
	t.Helper()
	i := bytes.Index(out, []byte("[\n"))
	var co checkOutput
	if i < 0 || json.Unmarshal(out[i:], &co) != nil || len(co) != n {
		t.Fatalf("agent check --json: no JSON of %d instances in its output:\n%s", n, out)
	}
	return co
}

// lastOf is the last point of the metric's series carrying all tags.
func lastOf(metrics []struct {
	Metric string      `json:"metric"`
	Points [][]float64 `json:"points"`
	Tags   []string    `json:"tags"`
}, metric string, tags []string) (v, ts float64, ok bool) {
	for _, m := range metrics {
		if m.Metric == metric && hasTags(m.Tags, tags) && len(m.Points) > 0 {
			p := m.Points[len(m.Points)-1]
			v, ts, ok = p[1], p[0], true
		}
	}
	return v, ts, ok
}
