package tests

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gometro/go-metro/capture"
	"github.com/gometro/go-metro/rttcheck"
	"github.com/gometro/go-metro/tests/internal/delayline"
	"github.com/gometro/go-metro/tests/internal/probe"
	"github.com/gometro/go-metro/tests/lab"
	"golang.org/x/sys/unix"
)

// TestHealthAgainstKernel checks the connection-health metrics against the
// kernel and the workload's own counts, with the real check in a child
// process in A and a bare engine in this one, both on A's veth:
//
//   - retransmissions: bulk uploads over a 20 ms path with 2 % loss both
//     ways, IPv4 and IPv6; each connection's retransmit count in the engine
//     equals the kernel's tcpi_total_retrans read at the same quiet moment,
//     and the check's per-pair count equals the engine's flows' sum;
//   - connect RTT: each connection's handshake sample is within the
//     accuracy bar of the kernel's srtt right after connect (its only
//     sample then), and the check's handshake gauge of that of their mean;
//   - refusals: a scan of B's closed ports, answered by RST: the check
//     counts exactly the refusals the scanner saw;
//   - server response time: request/response exchanges: one RTT plus the
//     lab server's sub-millisecond turnaround, against the kernel's srtt;
//   - zero windows: a slow reader's zero-window episodes equal the kernel's
//     TCPToZeroWindowAdv of its namespace;
//   - SYN timeouts: connects to an address that never answers, abandoned
//     after 2.5 s: the check counts each one once 3 s have passed.
func TestHealthAgainstKernel(t *testing.T) {
	l := lab.New(t, lab.Config{})
	if _, err := l.A.Run("ip", "neigh", "replace", silent.String(), "lladdr", lab.MACB.String(), "dev", l.AIf, "nud", "permanent"); err != nil {
		t.Fatal(err)
	}
	srv4, srv6 := serveBoth(t, l)

	chk := startCheckInstance(t, l, checkInstance(l, silent.String()), "", "", nil)
	eng, stop := startEngine(t, l)
	pair4 := pairTags(l, lab.AddrA4, lab.AddrB4)
	pair6 := pairTags(l, lab.AddrA6, lab.AddrB6)
	pairSilent := pairTags(l, lab.AddrA4, silent)
	// totals adds up a count over the check's runs (each run reports the
	// increase since the previous one).
	totals := map[string]float64{}
	run := func() probe.Report {
		r := runCheck(t, chk)
		for _, m := range []string{rttcheck.MetricRetransmits, rttcheck.MetricOpened, rttcheck.MetricClosed,
			rttcheck.MetricRefused, rttcheck.MetricSYNTimeouts, rttcheck.MetricZeroWinLocal} {
			for name, tags := range map[string][]string{"v4": pair4, "v6": pair6, "silent": pairSilent} {
				if v, ok := r.Value(m, tags...); ok {
					totals[m+" "+name] += v
				}
			}
		}
		return r
	}
	run()

	// Retransmissions and connect RTT.
	ms := time.Millisecond
	lossy := delayline.Dir{Delay: 10 * ms, Loss: 0.02}
	if err := l.SetImpairment(lossy, lossy); err != nil {
		t.Fatal(err)
	}
	var gathered comparisons
	c := &lab.Client{Host: l.A, BeforeClose: gathered.hook(t, eng)}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		dst := srv4.Addr
		if i%2 == 1 {
			dst = srv6.Addr
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.BulkSend(ctx, dst, 1<<20, 0); err != nil {
				t.Errorf("bulk send to %v: %v", dst, err)
			}
		}()
	}
	wg.Wait()
	if err := l.SetImpairment(delayline.Dir{}, delayline.Dir{}); err != nil {
		t.Fatal(err)
	}
	var kernelRetrans uint32
	var kernelConnect, engineConnect [2]time.Duration // sums, v4 and v6
	var connects [2]int
	for _, s := range gathered.all() {
		if !s.ok {
			t.Errorf("%s: the engine has no flow", s.rec.Key())
			continue
		}
		k := s.rec.Final.TotalRetrans
		kernelRetrans += k
		t.Logf("%s: retransmits kernel %d engine %d (duplicates %d); connect RTT kernel %v engine %v",
			s.rec.Key(), k, s.flow.Retransmits, s.flow.Health.Duplicates, s.rec.Established.RTT, time.Duration(s.flow.Health.Handshake))
		if s.flow.Retransmits != uint64(k) {
			t.Errorf("%s: engine counts %d retransmitted segments, the kernel's tcpi_total_retrans is %d", s.rec.Key(), s.flow.Retransmits, k)
		}
		if s.rec.HandshakeRetransmitted() {
			continue // Karn: neither side times a retransmitted SYN
		}
		got, want := time.Duration(s.flow.Health.Handshake), s.rec.Established.RTT
		if d := (got - want).Abs(); d > srttTolerance(want) {
			t.Errorf("%s: connect RTT %v, kernel %v (off by %v)", s.rec.Key(), got, want, d)
		}
		fam := 0
		if s.rec.Remote.Addr().Is6() {
			fam = 1
		}
		kernelConnect[fam] += want
		engineConnect[fam] += got
		connects[fam]++
	}
	if kernelRetrans == 0 {
		t.Errorf("2 %% loss made the kernel retransmit nothing: the comparison is void")
	}
	// The engine's final view of every flow to B, after all have closed
	// (a FIN can be retransmitted too): the check must count the same.
	time.Sleep(delivered)
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	snap, err := eng.Snapshot(sctx)
	scancel()
	if err != nil {
		t.Fatal(err)
	}
	var engineRetrans [2]uint64
	for _, f := range snap.Flows {
		switch f.Remote.Addr().Unmap() {
		case lab.AddrB4:
			engineRetrans[0] += f.Retransmits
		case lab.AddrB6:
			engineRetrans[1] += f.Retransmits
		}
	}
	r := run()
	for fam, tags := range [][]string{pair4, pair6} {
		name := [2]string{"v4", "v6"}[fam]
		if got := totals[rttcheck.MetricRetransmits+" "+name]; got != float64(engineRetrans[fam]) {
			t.Errorf("%s: the check counts %v retransmits, the engine's flows %d", name, got, engineRetrans[fam])
		}
		if got := totals[rttcheck.MetricOpened+" "+name]; got != 3 {
			t.Errorf("%s: the check counts %v connections opened, the workload opened 3", name, got)
		}
		if got := totals[rttcheck.MetricClosed+" "+name]; got != 3 {
			t.Errorf("%s: the check counts %v connections closed, the workload closed 3", name, got)
		}
		if connects[fam] == 3 {
			got, ok := r.Value(rttcheck.MetricRTTHandshake, tags...)
			want := kernelConnect[fam] / 3
			if !ok || (time.Duration(got*1e6)-want).Abs() > srttTolerance(want) {
				t.Errorf("%s: the check's handshake RTT %v ms (sent: %v), the kernel's mean %v", name, got, ok, want)
			}
		}
	}
	t.Logf("retransmits: kernel %d in all; engine v4 %d v6 %d; check v4 %v v6 %v",
		kernelRetrans, engineRetrans[0], engineRetrans[1],
		totals[rttcheck.MetricRetransmits+" v4"], totals[rttcheck.MetricRetransmits+" v6"])

	// Refusals: B's closed ports answer SYNs with RST.
	scan, err := l.A.Scan(ctx, lab.AddrB4, 200, 50, time.Second, srv4.Addr.Port())
	if err != nil {
		t.Fatal(err)
	}
	if scan.Refused == 0 || scan.Connected != 0 {
		t.Fatalf("scan of closed ports: %+v", scan)
	}
	time.Sleep(delivered)
	r = run()
	if got := totals[rttcheck.MetricRefused+" v4"]; got != float64(scan.Refused) {
		t.Errorf("the check counts %v refusals, the scanner saw %d", got, scan.Refused)
	}
	// The RST/ACKs are timed: the path has no added delay now, so their
	// RTT is the delay line's forwarding time, far below the 20 ms of the
	// bulk phase (a few ms at most on a loaded machine).
	if v, ok := r.Value(rttcheck.MetricRTTHandshake, pair4...); !ok || v <= 0 || v >= 20 {
		t.Errorf("refused connects: handshake RTT %v ms (sent: %v), want the RST/ACK's RTT, under 20 ms", v, ok)
	} else {
		t.Logf("refused connects: handshake RTT %.3f ms", v)
	}

	// Server response time: request/response exchanges over a 20 ms path
	// with 30 ms pauses between them. The wire's response time is one RTT
	// plus the server's turnaround, so the check's mean must lie between
	// the kernel's srtt and the client's own mean time from writing a
	// request to reading the answer's first byte (which adds the client's
	// wake-up): timing from the wrong frame would add a pause.
	path := delayline.Dir{Delay: 10 * ms}
	if err := l.SetImpairment(path, path); err != nil {
		t.Fatal(err)
	}
	srtt, clientMean := requestResponse(t, l, srv4.Addr, 20, 300, 2000, 30*ms)
	time.Sleep(delivered)
	r = run()
	if got, ok := r.Value(rttcheck.MetricResponseTime, pair4...); !ok ||
		time.Duration(got*1e6) < srtt-srttTolerance(srtt) || time.Duration(got*1e6) > clientMean+srttAbsTol {
		t.Errorf("response time %v ms (sent: %v), want between the kernel's srtt %v and the client's mean %v", got, ok, srtt, clientMean)
	} else {
		t.Logf("response time %.3f ms; kernel srtt %v, client's mean %v", got, srtt, clientMean)
	}
	if err := l.SetImpairment(delayline.Dir{}, delayline.Dir{}); err != nil {
		t.Fatal(err)
	}

	// Zero windows: a client with a small receive buffer that stops
	// reading while the server streams to it advertises a zero window;
	// the kernel counts each transition to one (TCPToZeroWindowAdv, per
	// namespace, and this is A's only connection now).
	before := tcpExt(t, l.A, "TCPToZeroWindowAdv")
	slowReader(t, l, srv4.Addr, 1<<20, 64<<10, 200*ms)
	time.Sleep(delivered)
	kernelZero := tcpExt(t, l.A, "TCPToZeroWindowAdv") - before
	run()
	if got := totals[rttcheck.MetricZeroWinLocal+" v4"]; kernelZero == 0 || got != float64(kernelZero) {
		t.Errorf("the check counts %v zero-window episodes of ours, the kernel's TCPToZeroWindowAdv %d", got, kernelZero)
	} else {
		t.Logf("zero-window episodes: check %v, kernel %d", got, kernelZero)
	}

	// SYN timeouts: nobody answers the silent address; each connect is
	// abandoned after 2.5 s (SYN, one retransmission at 1 s).
	start := time.Now()
	scan, err = l.A.Scan(ctx, silent, 5, 5, 2500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if scan.Pending != 5 {
		t.Fatalf("connects to the silent address: %+v", scan)
	}
	time.Sleep(time.Until(start.Add(3500 * time.Millisecond)))
	run()
	if got := totals[rttcheck.MetricSYNTimeouts+" silent"]; got != 5 {
		t.Errorf("the check counts %v SYN timeouts, the workload abandoned 5 unanswered connects", got)
	}
	for k, v := range totals {
		t.Logf("check total %s = %v", k, v)
	}
	if st := stop().Stats; st.Kernel.Dropped != 0 {
		t.Errorf("the capture's kernel ring dropped %d frames: the comparison is void", st.Kernel.Dropped)
	}
}

// requestResponse makes count exchanges with the lab server on one
// connection from A (its wire protocol: a 16-byte header, mode 3, the
// request's size, the response's size) and returns the kernel's srtt at the
// end and the client's mean time from writing a request to reading the
// first byte of its answer.
func requestResponse(t *testing.T, l *lab.Lab, srv netip.AddrPort, count, reqSize, respSize int, pause time.Duration) (time.Duration, time.Duration) {
	t.Helper()
	var conn net.Conn
	if err := l.A.Do(func() (err error) { conn, err = net.Dial("tcp", srv.String()); return err }); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := make([]byte, reqSize)
	req[0] = 3
	binary.BigEndian.PutUint32(req[4:], uint32(reqSize))
	binary.BigEndian.PutUint64(req[8:], uint64(respSize))
	resp := make([]byte, respSize)
	var total time.Duration
	for i := 0; i < count; i++ {
		time.Sleep(pause)
		start := time.Now()
		if _, err := conn.Write(req); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(conn, resp[:1]); err != nil {
			t.Fatal(err)
		}
		total += time.Since(start)
		if _, err := io.ReadFull(conn, resp[1:]); err != nil {
			t.Fatal(err)
		}
	}
	info, err := lab.ReadTCPInfo(conn.(*net.TCPConn))
	if err != nil {
		t.Fatal(err)
	}
	return info.RTT, total / time.Duration(count)
}

// slowReader asks the server for n bytes on a connection from A whose
// receive buffer is small, and reads them chunk bytes at a time with a
// pause before each read, so that the window closes again and again.
func slowReader(t *testing.T, l *lab.Lab, srv netip.AddrPort, n, chunk int, pause time.Duration) {
	t.Helper()
	var conn net.Conn
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 16<<10) })
		return errors.Join(err, serr)
	}}
	if err := l.A.Do(func() (err error) { conn, err = d.Dial("tcp", srv.String()); return err }); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hdr := make([]byte, 16)
	hdr[0] = 2 // source: the server streams b bytes, unpaced
	binary.BigEndian.PutUint64(hdr[8:], uint64(n))
	if _, err := conn.Write(hdr); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, chunk)
	for got := 0; got < n; {
		time.Sleep(pause)
		k, err := io.ReadFull(conn, buf[:min(chunk, n-got)])
		if err != nil {
			t.Fatal(err)
		}
		got += k
	}
}

// tcpExt reads one TcpExt counter of h's network namespace.
func tcpExt(t *testing.T, h *lab.Host, name string) uint64 {
	t.Helper()
	out, err := h.Run("cat", "/proc/net/netstat")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out, "\n")
	for i := 0; i+1 < len(lines); i++ {
		keys, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(keys) == 0 || keys[0] != "TcpExt:" || len(vals) != len(keys) {
			continue
		}
		for k := range keys {
			if keys[k] == name {
				v, err := strconv.ParseUint(vals[k], 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
		}
	}
	t.Fatalf("no TcpExt %s in /proc/net/netstat", name)
	return 0
}

// TestDuplicatesOnAny captures on interface "any" in the delay line's
// namespace M, where every frame is seen twice: received on one veth, sent
// on the other (what a mirror port or "any" on a bridge delivers). With A's
// addresses configured as local, each of A's segments arrives as two copies,
// microseconds apart but a whole batch of the delay line's frames between
// them on a bulk flow. Over a lossy path every connection must still be
// timed (taking the copies for retransmissions, Karn's rule would discard
// every sample), count the copies as duplicates and count exactly the
// kernel's retransmissions, IPv6 bulk flows too: without an IP ID, a copy
// that follows a SACK within one TSval tick is told from a retransmission
// by the interface it was captured on (the far side of M).
func TestDuplicatesOnAny(t *testing.T) {
	l := lab.New(t, lab.Config{})
	lossy := delayline.Dir{Loss: 0.01}
	if err := l.SetImpairment(lossy, lossy); err != nil {
		t.Fatal(err)
	}
	srv4, srv6 := serveBoth(t, l)
	eng, err := capture.New(capture.Config{Interface: "any", Remotes: l.Remotes(),
		LocalIPs: []netip.Prefix{netip.PrefixFrom(lab.AddrA4, 32), netip.PrefixFrom(lab.AddrA6, 128)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := l.M.Go(func() error { return eng.Run(ctx) })
	defer func() {
		cancel()
		if err := <-runErr; err != nil {
			t.Errorf("engine Run: %v", err)
		}
	}()
	for deadline := time.Now().Add(10 * time.Second); ; {
		if snap, err := eng.Snapshot(ctx); err == nil && snap.Stats.SourceOpens > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("engine did not open its source")
		}
		time.Sleep(10 * time.Millisecond)
	}
	var gathered comparisons
	c := &lab.Client{Host: l.A, BeforeClose: gathered.hook(t, eng)}
	wctx, wcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer wcancel()
	var wg sync.WaitGroup
	for _, dst := range []netip.AddrPort{srv4.Addr, srv6.Addr} {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if _, err := c.BulkSend(wctx, dst, 1<<20, 0); err != nil {
				t.Errorf("bulk send to %v: %v", dst, err)
			}
		}()
		go func() {
			defer wg.Done()
			if _, err := c.RequestResponse(wctx, dst, 50, 300, 3000, 0); err != nil {
				t.Errorf("request/response to %v: %v", dst, err)
			}
		}()
	}
	wg.Wait()
	var retrans uint32
	for _, cm := range gathered.all() {
		k := cm.rec.Final.TotalRetrans
		retrans += k
		t.Logf("%-10s %s: samples %d, duplicates %d, retransmits %d (kernel %d)", cm.rec.Kind, cm.rec.Key(),
			cm.flow.RTT.Samples, cm.flow.Health.Duplicates, cm.flow.Retransmits, k)
		switch {
		case !cm.ok:
			t.Errorf("%s: the engine has no flow", cm.rec.Key())
		case cm.flow.RTT.Samples == 0:
			t.Errorf("%s: no RTT sample: the copies were taken for retransmissions", cm.rec.Key())
		case cm.flow.Health.Duplicates == 0:
			t.Errorf("%s: no duplicates counted, but \"any\" in M sees every frame twice", cm.rec.Key())
		case cm.flow.Retransmits < uint64(k):
			t.Errorf("%s: %d retransmits counted, fewer than the kernel's tcpi_total_retrans %d", cm.rec.Key(), cm.flow.Retransmits, k)
		case cm.flow.Retransmits != uint64(k):
			t.Errorf("%s: %d retransmits counted, the kernel's tcpi_total_retrans is %d", cm.rec.Key(), cm.flow.Retransmits, k)
		}
	}
	if retrans == 0 {
		t.Errorf("1 %% loss made the kernel retransmit nothing: the retransmission check is void")
	}
}
