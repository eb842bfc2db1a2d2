package source

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gometro/go-metro/capture/filter"
	"github.com/gometro/go-metro/capture/packet"
	"github.com/gometro/go-metro/internal/ownthread"
	"github.com/gometro/go-metro/tests/lab"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

var nsCounter atomic.Int32

// testNet is a veth pair between two network namespaces of our own:
// "client" end A (10.77.n.1) and "server" end B (10.77.n.2, fd77:n::2).
type testNet struct {
	t              testing.TB
	nsA, nsB       string
	ifA, ifB       string
	addrA, addrB   netip.Addr
	addr6A, addr6B netip.Addr
}

func run(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func newTestNet(t testing.TB) *testNet {
	t.Helper()
	lab.RequireRoot(t)
	n := nsCounter.Add(1)
	id := fmt.Sprintf("%d-%d", os.Getpid()%100000, n)
	tn := &testNet{
		t:   t,
		nsA: "src-" + id + "-a", nsB: "src-" + id + "-b",
		ifA: "src" + id + "a", ifB: "src" + id + "b",
		addrA: netip.AddrFrom4([4]byte{10, 77, byte(n), 1}), addrB: netip.AddrFrom4([4]byte{10, 77, byte(n), 2}),
		addr6A: netip.MustParseAddr(fmt.Sprintf("fd77:%x::1", n)), addr6B: netip.MustParseAddr(fmt.Sprintf("fd77:%x::2", n)),
	}
	run(t, "ip", "netns", "add", tn.nsA)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", tn.nsA).Run() })
	run(t, "ip", "netns", "add", tn.nsB)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", tn.nsB).Run() })
	run(t, "ip", "link", "add", tn.ifA, "netns", tn.nsA, "type", "veth", "peer", "name", tn.ifB, "netns", tn.nsB)
	for _, c := range [][]string{
		{tn.nsA, "ip", "addr", "add", tn.addrA.String() + "/24", "dev", tn.ifA},
		{tn.nsB, "ip", "addr", "add", tn.addrB.String() + "/24", "dev", tn.ifB},
		{tn.nsA, "ip", "addr", "add", tn.addr6A.String() + "/64", "dev", tn.ifA, "nodad"},
		{tn.nsB, "ip", "addr", "add", tn.addr6B.String() + "/64", "dev", tn.ifB, "nodad"},
		{tn.nsA, "ip", "link", "set", tn.ifA, "up"},
		{tn.nsB, "ip", "link", "set", tn.ifB, "up"},
		{tn.nsA, "ip", "link", "set", "lo", "up"},
		{tn.nsB, "ip", "link", "set", "lo", "up"},
	} {
		run(t, append([]string{"ip", "netns", "exec"}, c...)...)
	}
	return tn
}

// in runs fn on a fresh OS thread that has entered namespace ns. The thread
// ends with fn (internal/ownthread) instead of being handed, in a foreign
// namespace, to other goroutines. Sockets created by fn stay in ns
// whichever thread later uses them.
func in(t testing.TB, ns string, fn func() error) error {
	t.Helper()
	errc := make(chan error, 1)
	ownthread.Go(func() {
		defer func() {
			if r := recover(); r != nil {
				errc <- fmt.Errorf("panic: %v", r)
			}
		}()
		f, err := os.Open("/run/netns/" + ns)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		errc <- fn()
	})
	return <-errc
}

// backends lists the live backends this test binary can exercise; files
// built with -tags pcap add "pcap".
var backends = []string{"afpacket"}

func (tn *testNet) open(opts Options) Source { return tn.openWith("afpacket", opts) }

func (tn *testNet) openWith(backend string, opts Options) Source {
	tn.t.Helper()
	var s Source
	err := in(tn.t, tn.nsB, func() (err error) {
		s, err = OpenLive(backend, opts)
		return err
	})
	if err != nil {
		tn.t.Fatalf("OpenLive in %s: %v", tn.nsB, err)
	}
	tn.t.Cleanup(func() { s.Close() })
	return s
}

// listen starts a TCP server in B that reads everything it is sent.
func (tn *testNet) listen(addr netip.Addr, port uint16) {
	tn.t.Helper()
	var ln net.Listener
	err := in(tn.t, tn.nsB, func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(addr, port).String())
		return err
	})
	if err != nil {
		tn.t.Fatal(err)
	}
	tn.t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
}

// send connects from A to B and sends n small writes.
func (tn *testNet) send(network string, to netip.Addr, port uint16, n int) {
	tn.t.Helper()
	var c net.Conn
	err := in(tn.t, tn.nsA, func() (err error) {
		c, err = net.DialTimeout(network, netip.AddrPortFrom(to, port).String(), 5*time.Second)
		return err
	})
	if err != nil {
		tn.t.Fatal(err)
	}
	defer c.Close()
	for range n {
		// UDP to a closed port fails once ICMP comes back; that is fine.
		if _, err := c.Write([]byte("hello")); err != nil && network == "tcp" {
			tn.t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // separate segments
	}
}

func forBackends(t *testing.T, f func(*testing.T, string)) {
	for _, b := range backends {
		t.Run(b, func(t *testing.T) { f(t, b) })
	}
}

// frameInfo decodes the fields the tests check.
type frameInfo struct {
	tcp          bool
	src, dst     netip.Addr
	sport, dport uint16
	payload      int
}

func decode(t *testing.T, link packet.LinkType, data []byte) frameInfo {
	var first gopacket.Decoder = layers.LayerTypeEthernet
	switch link {
	case packet.LinkTypeEthernet:
	case packet.LinkTypeLinuxSLL:
		first = layers.LayerTypeLinuxSLL
	case packet.LinkTypeRaw:
		first = layers.LayerTypeIPv4
		if len(data) > 0 && data[0]>>4 == 6 {
			first = layers.LayerTypeIPv6
		}
	default:
		t.Fatalf("test cannot decode link type %d", link)
	}
	p := gopacket.NewPacket(data, first, gopacket.DecodeOptions{Lazy: true, NoCopy: true})
	var fi frameInfo
	if nl := p.NetworkLayer(); nl != nil {
		fi.src, _ = netip.AddrFromSlice(nl.NetworkFlow().Src().Raw())
		fi.dst, _ = netip.AddrFromSlice(nl.NetworkFlow().Dst().Raw())
	}
	if tcp, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP); ok {
		fi.tcp, fi.sport, fi.dport, fi.payload = true, uint16(tcp.SrcPort), uint16(tcp.DstPort), len(tcp.Payload)
	}
	return fi
}

// drain passes every frame to fn until none came for idle (poll timeouts
// only); any other error fails the test.
func drain(t *testing.T, s Source, idle time.Duration, fn func(data []byte, ts int64, wire int)) {
	t.Helper()
	last := time.Now()
	for time.Since(last) < idle {
		data, ts, wire, err := s.Next()
		if errors.Is(err, ErrTimeout) {
			continue
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		fn(data, ts, wire)
		last = time.Now()
	}
}

// collect decodes frames until idle for the given time, checking their
// timestamps and lengths.
func collect(t *testing.T, s Source, idle time.Duration) []frameInfo {
	t.Helper()
	var out []frameInfo
	drain(t, s, idle, func(data []byte, ts int64, wire int) {
		if ts < time.Now().Add(-time.Minute).UnixNano() || ts > time.Now().Add(time.Second).UnixNano() {
			t.Errorf("timestamp %v is not now", time.Unix(0, ts))
		}
		if wire < len(data) {
			t.Errorf("wire length %d < captured %d", wire, len(data))
		}
		out = append(out, decode(t, s.LinkType(), data))
	})
	return out
}

func TestLivePacketsAndStats(t *testing.T) { forBackends(t, testLivePacketsAndStats) }

func testLivePacketsAndStats(t *testing.T, backend string) {
	tn := newTestNet(t)
	tn.listen(tn.addrB, 8080)
	tn.listen(tn.addr6B, 8080)
	const snaplen = 96
	s := tn.openWith(backend, Options{Interface: tn.ifB, Snaplen: snaplen, PollTimeout: 50 * time.Millisecond})
	if s.LinkType() != packet.LinkTypeEthernet {
		t.Errorf("LinkType = %d, want Ethernet", s.LinkType())
	}
	tn.send("tcp", tn.addrB, 8080, 20)
	tn.send("tcp", tn.addr6B, 8080, 20)
	frames := collect(t, s, 300*time.Millisecond)
	var v4, v6 int
	for _, f := range frames {
		if !f.tcp || (f.sport != 8080 && f.dport != 8080) {
			continue
		}
		switch f.src {
		case tn.addrA, tn.addrB:
			v4++
		case tn.addr6A, tn.addr6B:
			v6++
		}
	}
	// 20 data segments each way at least, plus handshakes and ACKs.
	if v4 < 20 || v6 < 20 {
		t.Errorf("saw %d IPv4 and %d IPv6 TCP frames of the test connections, want >= 20 each (of %d frames)", v4, v6, len(frames))
	}
	st1, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st1.Received < uint64(len(frames)) || st1.Dropped != 0 {
		t.Errorf("Stats = %+v after reading %d frames", st1, len(frames))
	}
	// The kernel resets its counters on every read: the source must add up.
	tn.send("tcp", tn.addrB, 8080, 10)
	more := collect(t, s, 300*time.Millisecond)
	st2, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	// Cumulative: at least every frame read so far. (Not st1 plus the
	// frames read since: one that arrived between collect and Stats is in
	// st1 and in more.) A source that did not add up would report about
	// len(more) here.
	if st2.Received < uint64(len(frames)+len(more)) || len(more) < 10 {
		t.Errorf("Stats not cumulative: first %+v, then %+v after %d more frames", st1, st2, len(more))
	}
	if backend == "afpacket" {
		tn.send("tcp", tn.addrB, 8080, 20)
		// The per-packet path (frames waiting in the ring) and the idle path
		// (ErrTimeout) must not allocate.
		var errs int
		allocs := testing.AllocsPerRun(30, func() {
			if _, _, _, err := s.Next(); err != nil && !errors.Is(err, ErrTimeout) {
				errs++
			}
		})
		if allocs != 0 || errs != 0 {
			t.Errorf("Next: %v allocations per call, %d errors", allocs, errs)
		}
	}
}

func TestLiveSnaplenAndAny(t *testing.T) {
	tn := newTestNet(t)
	tn.listen(tn.addrB, 8080)
	const snaplen = 64
	s := tn.open(Options{Interface: "any", Snaplen: snaplen, PollTimeout: 50 * time.Millisecond})
	if s.LinkType() != packet.LinkTypeRaw {
		t.Fatalf("LinkType = %d, want Raw for \"any\"", s.LinkType())
	}
	// A large write: frames must be cut at the snaplen, with their wire
	// length intact.
	var c net.Conn
	if err := in(t, tn.nsA, func() (err error) {
		c, err = net.Dial("tcp", netip.AddrPortFrom(tn.addrB, 8080).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(bytes.Repeat([]byte("x"), 1000)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	var big int
	drain(t, s, 300*time.Millisecond, func(data []byte, _ int64, wire int) {
		if len(data) > snaplen {
			t.Errorf("captured %d bytes, snaplen %d", len(data), snaplen)
		}
		if wire >= 1000 {
			big++
			if data[0]>>4 != 4 {
				t.Errorf("\"any\" frame does not start with an IPv4 header: % x", data[:4])
			}
		}
	})
	if big == 0 {
		t.Error("the 1000-byte segment was not seen")
	}
}

// TestLiveLoopbackOnce: loopback frames leave and arrive; the source must
// return each once (as libpcap does), on "lo" and on "any".
func TestLiveLoopbackOnce(t *testing.T) {
	tn := newTestNet(t)
	for _, ifname := range []string{"lo", "any"} {
		t.Run(ifname, func(t *testing.T) {
			s := tn.open(Options{Interface: ifname, PollTimeout: 50 * time.Millisecond})
			var pc net.PacketConn
			if err := in(t, tn.nsB, func() (err error) {
				pc, err = net.ListenPacket("udp", "127.0.0.1:0")
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			const n = 5
			payload := []byte("gometro-loopback-probe")
			for range n {
				if _, err := pc.WriteTo(payload, pc.LocalAddr()); err != nil {
					t.Fatal(err)
				}
			}
			seen := 0
			drain(t, s, 300*time.Millisecond, func(data []byte, _ int64, _ int) {
				if bytes.Contains(data, payload) {
					seen++
				}
			})
			if seen != n {
				t.Errorf("saw %d copies of %d loopback datagrams, want exactly %d", seen, n, n)
			}
			s.Close()
		})
	}
}

func TestLiveFilter(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		for _, ifname := range []string{"veth", "any"} {
			t.Run(ifname, func(t *testing.T) { testLiveFilter(t, backend, ifname) })
		}
	})
}

// testLiveFilter attaches a filter.Build program to a live capture and
// checks that only the matching connections come through.
func testLiveFilter(t *testing.T, backend, ifname string) {
	tn := newTestNet(t)
	if ifname == "veth" {
		ifname = tn.ifB
	}
	tn.listen(tn.addrB, 8443)
	tn.listen(tn.addrB, 8080)
	tn.listen(tn.addr6B, 8443)
	tn.listen(tn.addr6B, 8080)
	const snaplen = 128
	s := tn.openWith(backend, Options{Interface: ifname, Snaplen: snaplen, PollTimeout: 50 * time.Millisecond})
	// Match only IPv4 A <-> B on port 8443, and IPv6 on 8443 too.
	prog, err := filter.Build(s.LinkType(), []netip.Prefix{netip.PrefixFrom(tn.addrA, 32), netip.PrefixFrom(tn.addr6A, 128)}, []uint16{8443}, snaplen)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetFilter(prog); err != nil {
		t.Fatal(err)
	}
	// Drain anything that arrived before the filter (IPv6 ND, etc.).
	collect(t, s, 100*time.Millisecond)
	tn.send("tcp", tn.addrB, 8443, 10)
	tn.send("tcp", tn.addrB, 8080, 10)
	tn.send("tcp", tn.addr6B, 8443, 10)
	tn.send("tcp", tn.addr6B, 8080, 10)
	tn.send("udp", tn.addrB, 8443, 10)
	frames := collect(t, s, 300*time.Millisecond)
	var v4, v6 int
	for _, f := range frames {
		if !f.tcp || (f.sport != 8443 && f.dport != 8443) {
			t.Errorf("filter let through %+v", f)
			continue
		}
		if f.src.Is4() {
			v4++
		} else {
			v6++
		}
	}
	if v4 < 10 || v6 < 10 {
		t.Errorf("saw %d IPv4 and %d IPv6 matching frames, want >= 10 each", v4, v6)
	}
	// Replacing the filter with nil lets everything through again.
	if err := s.SetFilter(nil); err != nil {
		t.Fatal(err)
	}
	tn.send("tcp", tn.addrB, 8080, 5)
	if frames := collect(t, s, 300*time.Millisecond); len(frames) < 5 {
		t.Errorf("after removing the filter saw %d frames, want >= 5", len(frames))
	}
}

// TestLiveWake: Wake ends a wait that nothing else would end for 30 s,
// whether it comes during the wait or before it (the engine wakes the
// source for Cancel and for snapshots, then relies on it). libpcap cannot
// be woken and must still return within unwakeableTimeout.
func TestLiveWake(t *testing.T) { forBackends(t, testLiveWake) }

func testLiveWake(t *testing.T, backend string) {
	tn := newTestNet(t)
	s := tn.openWith(backend, Options{Interface: tn.ifB, Snaplen: 128, PollTimeout: 30 * time.Second})
	for _, tc := range []struct {
		name  string
		delay time.Duration // from the start of Next to Wake; negative: Wake first
	}{
		{"while waiting", 50 * time.Millisecond},
		{"before waiting", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.delay < 0 {
				s.Wake()
			}
			errc := make(chan error, 1)
			go func() {
				for {
					// Frames the kernel sends on its own (IPv6 router
					// solicitations) may come first.
					if _, _, _, err := s.Next(); err != nil {
						errc <- err
						return
					}
				}
			}()
			if tc.delay > 0 {
				time.Sleep(tc.delay)
				s.Wake()
			}
			select {
			case err := <-errc:
				if !errors.Is(err, ErrTimeout) {
					t.Fatalf("Next after Wake: %v, want ErrTimeout", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Next still waiting 5 s after Wake (its poll timeout is 30 s)")
			}
		})
	}
}

func TestLiveInterfaceGone(t *testing.T) { forBackends(t, testLiveInterfaceGone) }

// waitCases are the two ways a live wait ends without a frame, for the
// interface tests: it times out, or Wake ends it first every time, as an
// engine's snapshots can. Each must notice a socket error and a deleted
// interface.
var waitCases = []struct {
	name        string
	pollTimeout time.Duration
	wake        time.Duration // 0: never woken
}{
	{"timing out", 50 * time.Millisecond, 0},
	{"woken more often than it times out", 30 * time.Second, 20 * time.Millisecond},
}

// wakeEvery calls s.Wake every d until stop, as an engine whose snapshots
// come faster than the source's poll timeout does.
func wakeEvery(s Source, d time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case <-time.After(d):
				s.Wake()
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func testLiveInterfaceGone(t *testing.T, backend string) {
	for _, tc := range waitCases {
		t.Run(tc.name, func(t *testing.T) { testInterfaceGone(t, backend, tc.pollTimeout, tc.wake) })
	}
}

func testInterfaceGone(t *testing.T, backend string, pollTimeout, wake time.Duration) {
	tn := newTestNet(t)
	s := tn.openWith(backend, Options{Interface: tn.ifB, PollTimeout: pollTimeout})
	if wake > 0 {
		defer wakeEvery(s, wake)()
	}
	if _, _, _, err := s.Next(); err != nil && !errors.Is(err, ErrTimeout) {
		t.Fatalf("Next before deletion: %v", err)
	}
	run(t, "ip", "netns", "exec", tn.nsA, "ip", "link", "del", tn.ifA) // deletes both ends
	deadline := time.Now().Add(2 * time.Second)
	for {
		_, _, _, err := s.Next()
		// Deleting an up interface first takes it down: a Down warning may
		// come before the Gone error.
		if err == nil || errors.Is(err, ErrTimeout) || errors.Is(err, ErrInterfaceDown) {
			if time.Now().After(deadline) {
				t.Fatal("no ErrInterfaceGone within 2 s of deleting the interface")
			}
			continue
		}
		if !errors.Is(err, ErrInterfaceGone) || !strings.Contains(err.Error(), tn.ifB) {
			t.Fatalf("err = %v, want ErrInterfaceGone naming %s", err, tn.ifB)
		}
		break
	}
	// Every later call must fail too, not fall back to timeouts.
	if _, _, _, err := s.Next(); !errors.Is(err, ErrInterfaceGone) {
		t.Errorf("second Next after deletion: %v, want ErrInterfaceGone", err)
	}
}

func TestLiveInterfaceDown(t *testing.T) {
	for _, tc := range waitCases {
		t.Run(tc.name, func(t *testing.T) { testInterfaceDown(t, tc.pollTimeout, tc.wake) })
	}
}

func testInterfaceDown(t *testing.T, pollTimeout, wake time.Duration) {
	tn := newTestNet(t)
	tn.listen(tn.addrB, 8080)
	s := tn.open(Options{Interface: tn.ifB, PollTimeout: pollTimeout})
	if wake > 0 {
		defer wakeEvery(s, wake)()
	}
	run(t, "ip", "netns", "exec", tn.nsB, "ip", "link", "set", tn.ifB, "down")
	deadline := time.Now().Add(2 * time.Second)
	for {
		_, _, _, err := s.Next()
		if err == nil || errors.Is(err, ErrTimeout) {
			if time.Now().After(deadline) {
				t.Fatal("no ErrInterfaceDown within 2 s")
			}
			continue
		}
		if !errors.Is(err, ErrInterfaceDown) {
			t.Fatalf("err = %v, want ErrInterfaceDown", err)
		}
		break
	}
	// The source stays usable: bring the link back and traffic flows.
	run(t, "ip", "netns", "exec", tn.nsB, "ip", "link", "set", tn.ifB, "up")
	var c net.Conn
	if err := in(t, tn.nsA, func() (err error) {
		// The link needs a moment to come up (carrier): retry the dial.
		for range 50 {
			if c, err = net.DialTimeout("tcp", netip.AddrPortFrom(tn.addrB, 8080).String(), time.Second); err == nil {
				return nil
			}
			time.Sleep(100 * time.Millisecond)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("after"))
	c.Close()
	if frames := collect(t, s, 300*time.Millisecond); len(frames) < 3 {
		t.Errorf("after the link came back saw %d frames, want >= 3", len(frames))
	}
}

func TestLiveOpenErrors(t *testing.T) {
	tn := newTestNet(t)
	var err error
	_ = in(t, tn.nsB, func() error {
		_, err = OpenLive("", Options{Interface: "src-nosuch0"})
		return nil
	})
	if !errors.Is(err, ErrNoSuchInterface) || !strings.Contains(err.Error(), "src-nosuch0") {
		t.Errorf("missing interface: err = %v", err)
	}
	if _, err := OpenLive("dpdk", Options{}); !errors.Is(err, ErrUnsupportedBackend) || !strings.Contains(err.Error(), "dpdk") {
		t.Errorf("unknown backend: err = %v", err)
	}
	// A down interface can be opened; Next reports it.
	run(t, "ip", "netns", "exec", tn.nsB, "ip", "link", "set", tn.ifB, "down")
	s := tn.open(Options{Interface: tn.ifB, PollTimeout: 20 * time.Millisecond})
	var got error
	for range 20 {
		if _, _, _, got = s.Next(); got != nil && !errors.Is(got, ErrTimeout) {
			break
		}
	}
	if !errors.Is(got, ErrInterfaceDown) {
		t.Errorf("Next on an interface opened down: %v, want ErrInterfaceDown", got)
	}
	// Close is idempotent; Next, SetFilter after Close fail cleanly.
	checkClose(t, s)
	if err := s.SetFilter(nil); !errors.Is(err, os.ErrClosed) {
		t.Errorf("SetFilter after Close: %v", err)
	}
	if _, err := s.Stats(); err != nil {
		t.Errorf("Stats after Close: %v", err)
	}
}

// TestLivePermission re-executes the test binary as nobody without
// capabilities and checks the error a capture-less process gets.
func TestLivePermission(t *testing.T) {
	if backend := os.Getenv("GOMETRO_SRC_PERM_CHILD"); backend != "" {
		_, err := OpenLive(backend, Options{Interface: "lo"})
		if err == nil {
			fmt.Println("CHILD: OpenLive succeeded without privileges")
			os.Exit(3)
		}
		fmt.Printf("CHILD-ERR: %v\nCHILD-PERM: %v\n", err, errors.Is(err, os.ErrPermission))
		return
	}
	forBackends(t, testLivePermission)
}

func testLivePermission(t *testing.T, backend string) {
	lab.RequireRoot(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) not installed")
	}
	// The test binary lives in a root-only build directory: copy it where
	// nobody can execute it.
	dir, err := os.MkdirTemp("", "src-perm-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	exe := filepath.Join(dir, "source.test")
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, self, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
		exe, "-test.run=^TestLivePermission$", "-test.count=1")
	cmd.Env = append(os.Environ(), "GOMETRO_SRC_PERM_CHILD="+backend)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "CHILD-PERM: true") || !strings.Contains(string(out), "CAP_NET_RAW") {
		t.Errorf("child output does not show a permission error naming CAP_NET_RAW:\n%s", out)
	}
}

// udpTo opens a UDP socket in B on port, drained so that B never answers
// with ICMP errors, and a socket in A connected to it. close closes both.
func (tn *testNet) udpTo(port uint16) (c net.Conn, close func()) {
	tn.t.Helper()
	var pc net.PacketConn
	if err := in(tn.t, tn.nsB, func() (err error) {
		pc, err = net.ListenPacket("udp", netip.AddrPortFrom(tn.addrB, port).String())
		return err
	}); err != nil {
		tn.t.Fatal(err)
	}
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	if err := in(tn.t, tn.nsA, func() (err error) {
		c, err = net.Dial("udp", netip.AddrPortFrom(tn.addrB, port).String())
		return err
	}); err != nil {
		pc.Close()
		tn.t.Fatal(err)
	}
	return c, func() { c.Close(); pc.Close() }
}

// flood sends small UDP datagrams from A to B as fast as one goroutine can,
// until the returned function is called.
func (tn *testNet) flood() (stop func()) {
	tn.t.Helper()
	c, closeUDP := tn.udpTo(9999)
	done := make(chan struct{})
	quit := make(chan struct{})
	go func() {
		defer close(done)
		payload := make([]byte, 64)
		for {
			select {
			case <-quit:
				return
			default:
			}
			c.Write(payload)
		}
	}()
	return func() { close(quit); <-done; closeUDP() }
}

// TestLiveFilterBeforeBind: with Options.Filter the program is on before
// the socket receives anything, so not one frame of a flood the filter
// rejects reaches the ring, however often the capture is opened; and the
// callback's error, or a program the kernel cannot take, fails the open.
func TestLiveFilterBeforeBind(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		tn := newTestNet(t)
		defer tn.flood()()
		const snaplen = 128
		for i := range 20 {
			var got packet.LinkType
			s := tn.openWith(backend, Options{Interface: tn.ifB, Snaplen: snaplen, PollTimeout: 10 * time.Millisecond,
				Filter: func(link packet.LinkType, attach func([]bpf.RawInstruction) error) error {
					got = link
					prog, err := filter.Build(link, nil, []uint16{8443}, snaplen)
					if err != nil {
						return err
					}
					return attach(prog)
				}})
			if got != packet.LinkTypeEthernet {
				t.Fatalf("Filter called with link type %d, want Ethernet", got)
			}
			// Only the flood counts: IPv6 with extension headers (MLD
			// reports) passes any Build program by design.
			n := 0
			drain(t, s, 30*time.Millisecond, func(data []byte, _ int64, _ int) {
				if f := decode(t, s.LinkType(), data); !f.tcp && f.src == tn.addrA {
					n++
				}
			})
			s.Close()
			if n != 0 {
				t.Fatalf("open %d: %d flood frames reached the ring past a TCP-only filter", i, n)
			}
		}
		refuse := errors.New("no filter for you")
		for _, f := range []func(packet.LinkType, func([]bpf.RawInstruction) error) error{
			func(packet.LinkType, func([]bpf.RawInstruction) error) error { return refuse },
			func(_ packet.LinkType, attach func([]bpf.RawInstruction) error) error {
				return attach(make([]bpf.RawInstruction, filter.MaxInstructions+1))
			},
		} {
			var err error
			_ = in(t, tn.nsB, func() error {
				var s Source
				if s, err = OpenLive(backend, Options{Interface: tn.ifB, Filter: f}); err == nil {
					s.Close()
				}
				return nil
			})
			if err == nil {
				t.Error("OpenLive succeeded although the filter was not installed")
			}
		}
	})
}

// BenchmarkLiveNext measures the afpacket read loop on a veth flooded with
// small UDP datagrams (headers only reach the ring: snaplen 128). It reports
// the kernel's drops per frame read; ns/op is the cost per frame delivered,
// bounded by how fast one sender goroutine can produce them.
func BenchmarkLiveNext(b *testing.B) {
	tn := newTestNet(b)
	s := tn.open(Options{Interface: tn.ifB, Snaplen: 128, PollTimeout: 50 * time.Millisecond})
	defer tn.flood()()
	b.ReportAllocs()
	// The reader's own CPU time (user+system, including poll) comes from
	// its thread's rusage: lock the benchmark goroutine to one thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var ru0, ru1 unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru0); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	for range b.N {
		for {
			_, _, _, err := s.Next()
			if err == nil {
				break
			}
			if !errors.Is(err, ErrTimeout) {
				b.Fatal(err)
			}
		}
	}
	elapsed := time.Since(start)
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru1); err != nil {
		b.Fatal(err)
	}
	cpu := time.Duration(ru1.Utime.Nano() - ru0.Utime.Nano() + ru1.Stime.Nano() - ru0.Stime.Nano())
	b.ReportMetric(cpu.Seconds()*1e3/float64(b.N)*1e5, "reader-cpu-ms/100k-frames")
	st, err := s.Stats()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "frames/s")
	b.ReportMetric(float64(st.Dropped)/float64(b.N), "drops/frame")
}

// sendNumbered sends n UDP datagrams on c in bursts of burst, a burst per
// millisecond, each carrying its index (8 bytes, big endian) at the start of
// its payload. It may run on its own goroutine.
func sendNumbered(t testing.TB, c net.Conn, n, burst int) {
	payload := make([]byte, 32)
	for i := range n {
		binary.BigEndian.PutUint64(payload, uint64(i))
		if _, err := c.Write(payload); err != nil {
			t.Errorf("datagram %d: %v", i, err)
			return
		}
		if i%burst == burst-1 {
			time.Sleep(time.Millisecond)
		}
	}
}

// TestLiveRingResize: a reader that falls behind makes the ring grow, a
// long calm makes it shrink, and across both hand-overs between rings every
// datagram is read once, in order: none lost, none twice.
func TestLiveRingResize(t *testing.T) {
	tn := newTestNet(t)
	src := tn.open(Options{Interface: tn.ifB, Snaplen: 128, PollTimeout: 20 * time.Millisecond})
	s := src.(*afpacket)
	if st, _ := s.Stats(); st.RingSize != InitialRingSize {
		t.Fatalf("ring starts at %d bytes, want %d", st.RingSize, InitialRingSize)
	}
	const n = 60000
	c, closeUDP := tn.udpTo(9998)
	defer closeUDP()
	sent := make(chan struct{})
	go func() { defer close(sent); sendNumbered(t, c, n, 20) }() // ~20k datagrams/s, 3 s
	// The reader stalls for 450 ms. The kernel hands a block over
	// blockRetire (100 ms) after its first frame at this rate, so it has
	// handed over four of the ring's eight blocks when the reader comes
	// back, and kept frames in the rest: a quarter behind and more, none
	// dropped.
	time.Sleep(450 * time.Millisecond)

	next := uint64(0)
	shrinkAsked := false
	deadline := time.Now().Add(20 * time.Second)
	for next < n && time.Now().Before(deadline) {
		data, _, _, err := s.Next()
		if errors.Is(err, ErrTimeout) {
			continue
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		const udpPayload = 14 + 20 + 8
		if len(data) < udpPayload+8 || data[12] != 0x08 || data[23] != unix.IPPROTO_UDP ||
			binary.BigEndian.Uint16(data[36:38]) != 9998 {
			continue // not one of ours (IPv6 neighbour discovery, ICMP)
		}
		i := binary.BigEndian.Uint64(data[udpPayload:])
		if i != next {
			st, _ := s.Stats()
			t.Fatalf("datagram %d read when %d was due (stats %+v)", i, next, st)
		}
		next++
		if st := s.sizer; !shrinkAsked && next > n/2 && st.size > InitialRingSize {
			// Pretend the calm window has lasted: the sizer asks for
			// half at the next block, a second hand-over mid-stream.
			s.sizer.since = time.Now().Add(-shrinkAfter)
			s.sizer.peakBehind, s.sizer.peakNeed = 0, 0
			shrinkAsked = true
		}
	}
	<-sent
	if next != n {
		t.Fatalf("read %d of %d datagrams", next, n)
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stats after %d datagrams: %+v", n, st)
	if st.Dropped != 0 {
		t.Errorf("kernel dropped %d frames", st.Dropped)
	}
	if st.RingResizes != 2 || st.RingSize != 8<<20 {
		t.Errorf("ring resized %d times to %d bytes: want grown to 16 MiB and shrunk to 8 MiB", st.RingResizes, st.RingSize)
	}
	if st.Received < n || st.Received > n+200 {
		t.Errorf("Received = %d: want the %d datagrams (plus a few other frames) counted once", st.Received, n)
	}
}

// TestLiveRingResizeClose: a Close while the resized ring is still being
// opened, and one in the middle of a hand-over, leave no socket, mapping or
// goroutine behind; a filter set after a resize is the one the new ring
// applies.
func TestLiveRingResizeClose(t *testing.T) {
	tn := newTestNet(t)
	defer tn.flood()()
	// fds maps each open descriptor to what it refers to. A leak is one
	// open after Close that was not before Open: counting them instead
	// would take any descriptor another goroutine closed meanwhile for a
	// leak mended, or the other way round.
	fds := func() map[string]string {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		open := make(map[string]string, len(ents))
		for _, e := range ents {
			target, _ := os.Readlink("/proc/self/fd/" + e.Name())
			open[e.Name()] = target
		}
		return open
	}
	// nextFrame reads one frame, so that the reader takes a block.
	nextFrame := func(s *afpacket) {
		t.Helper()
		for range 100 {
			if _, _, _, err := s.Next(); err == nil {
				return
			} else if !errors.Is(err, ErrTimeout) {
				t.Fatal(err)
			}
		}
		t.Fatal("no frame from the flood")
	}
	for _, stage := range []string{"opening", "handing over"} {
		before := fds()
		src := tn.open(Options{Interface: tn.ifB, Snaplen: 128, PollTimeout: 20 * time.Millisecond})
		s := src.(*afpacket)
		s.pressed.Store(true) // as after a kernel drop: grow at the next block
		for s.opening == nil {
			s.cur.remaining = 0 // on to the next block
			nextFrame(s)
		}
		if stage == "handing over" {
			for s.handing.r == nil {
				s.cur.remaining = 0
				nextFrame(s)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatalf("%s: Close: %v", stage, err)
		}
		for fd, target := range fds() {
			if before[fd] != target && strings.HasPrefix(target, "socket:") {
				t.Errorf("%s: descriptor %s (%s) open after Close, not before Open", stage, fd, target)
			}
		}
	}

	// After a resize, SetFilter reaches the ring in use.
	src := tn.open(Options{Interface: tn.ifB, Snaplen: 128, PollTimeout: 20 * time.Millisecond})
	s := src.(*afpacket)
	s.pressed.Store(true)
	for st, _ := s.Stats(); st.RingResizes == 0; st, _ = s.Stats() {
		s.cur.remaining = 0
		nextFrame(s)
	}
	prog, err := filter.Build(s.LinkType(), nil, []uint16{8443}, 128)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetFilter(prog); err != nil {
		t.Fatal(err)
	}
	s.cur.remaining = 0 // what the ring took before the filter
	time.Sleep(2 * blockRetire)
	drain(t, s, 50*time.Millisecond, func([]byte, int64, int) {}) // blocks filled before it
	n := 0
	drain(t, s, 300*time.Millisecond, func(data []byte, _ int64, _ int) {
		if f := decode(t, s.LinkType(), data); !f.tcp && f.src == tn.addrA {
			n++
		}
	})
	if n != 0 {
		t.Errorf("%d flood frames passed a TCP-only filter set after the resize", n)
	}
}

// TestLiveRingResizeTwoCPUs: two senders, each on a CPU of its own, send
// numbered datagrams at once while the reader hands over between rings
// again and again (grown, shrunk, grown, ...): frames reach the rings from
// two CPUs at a time, in orders that differ between the rings and out of
// their kernel timestamps' order, and still every datagram of each sender
// is read once and in its order.
func TestLiveRingResizeTwoCPUs(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("needs two CPUs")
	}
	tn := newTestNet(t)
	src := tn.open(Options{Interface: tn.ifB, Snaplen: 128, PollTimeout: 20 * time.Millisecond})
	s := src.(*afpacket)
	const n, ports = 150000, 2
	const warmUp = ^uint64(0) // the index of a datagram sent before the others
	var wg sync.WaitGroup
	for p := range ports {
		c, closeUDP := tn.udpTo(uint16(9990 + p))
		defer closeUDP()
		// The neighbour entry is resolved first: until then the kernel
		// queues a few datagrams and drops the oldest of a burst.
		if _, err := c.Write(binary.BigEndian.AppendUint64(nil, warmUp)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		wg.Add(1)
		ownthread.Go(func() { // the thread's affinity ends with it
			defer wg.Done()
			var set unix.CPUSet
			set.Set(p)
			if err := unix.SchedSetaffinity(0, &set); err != nil {
				t.Errorf("affinity: %v", err)
				return
			}
			sendNumbered(t, c, n, 40)
		})
	}
	sent := make(chan struct{})
	go func() { wg.Wait(); close(sent) }()

	var next [ports]uint64
	handOvers := uint64(0)
	deadline := time.Now().Add(60 * time.Second)
	done := func() bool {
		for _, x := range next {
			if x < n {
				return false
			}
		}
		return true
	}
	for !done() && time.Now().Before(deadline) {
		if s.opening == nil && s.handing.r == nil {
			st, _ := s.Stats()
			if st.RingResizes > handOvers {
				handOvers = st.RingResizes
			}
			switch {
			case handOvers >= 8:
			case s.sizer.size == InitialRingSize:
				s.pressed.Store(true) // as after a kernel drop: grow at the next block
			default: // calm for the window: shrink at the next block
				s.sizer.since = time.Now().Add(-shrinkAfter)
				s.sizer.peakBehind, s.sizer.peakNeed = 0, 0
			}
		}
		data, _, _, err := s.Next()
		if errors.Is(err, ErrTimeout) {
			continue
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		const udpPayload = 14 + 20 + 8
		if len(data) < udpPayload+8 || data[12] != 0x08 || data[23] != unix.IPPROTO_UDP {
			continue
		}
		p := int(binary.BigEndian.Uint16(data[36:38])) - 9990
		if p < 0 || p >= ports {
			continue
		}
		i := binary.BigEndian.Uint64(data[udpPayload:])
		if i == warmUp {
			continue
		}
		if i != next[p] {
			st, _ := s.Stats()
			t.Fatalf("sender %d: datagram %d read when %d was due, after %d hand-overs (stats %+v)", p, i, next[p], handOvers, st)
		}
		next[p]++
	}
	<-sent
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after %d hand-overs: read %v of %d each; stats %+v", st.RingResizes, next, n, st)
	if st.Dropped != 0 {
		t.Fatalf("kernel dropped %d frames: the test is void", st.Dropped)
	}
	if !done() {
		t.Fatalf("read %v of %d datagrams each", next, n)
	}
	if st.RingResizes < 4 {
		t.Errorf("%d hand-overs, want several", st.RingResizes)
	}
}
