package lab

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Wire protocol between the lab's clients and its server: every exchange
// starts with a 16-byte header.
//
//	mode u8 | pad [3] | a u32 | b u64
//
//	modeSink:    client streams bytes until it closes.
//	modeSource:  server streams b bytes at a KiB/s (0: as fast as it can),
//	             then waits for the client to close.
//	modeRequest: a request of a bytes in total (header included); the
//	             server answers with b bytes. Repeats until the client closes.
const (
	hdrLen      = 16
	modeSink    = 1
	modeSource  = 2
	modeRequest = 3
)

func putHdr(buf []byte, mode byte, a uint32, b uint64) {
	clear(buf[:hdrLen])
	buf[0] = mode
	binary.BigEndian.PutUint32(buf[4:], a)
	binary.BigEndian.PutUint64(buf[8:], b)
}

// Server is the lab's TCP server in B: bulk sink, bulk source and
// request/response on one port, chosen per connection by the header.
type Server struct {
	Addr netip.AddrPort
	ln   *net.TCPListener
	wg   sync.WaitGroup
	mu   sync.Mutex
	errs []error
	conn map[net.Conn]struct{}
}

// SocketBuffer is what the lab's sockets ask for (SO_RCVBUF/SO_SNDBUF) where
// bulk transfers need room for a 150 ms round trip; the kernel caps it at
// rmem_max/wmem_max of the namespace.
const SocketBuffer = 4 << 20

// Serve starts a server listening on addr inside h (port 0 picks one).
func (h *Host) Serve(addr netip.AddrPort) (*Server, error) {
	var ln *net.TCPListener
	err := h.Do(func() error {
		var err error
		lc := net.ListenConfig{Control: h.control}
		l, err := lc.Listen(context.Background(), "tcp", addr.String())
		if err != nil {
			return err
		}
		ln = l.(*net.TCPListener)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("lab: listen on %v in %s: %w", addr, h.Name, err)
	}
	s := &Server{Addr: ln.Addr().(*net.TCPAddr).AddrPort(), ln: ln, conn: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	for {
		c, err := s.ln.AcceptTCP()
		if err != nil {
			return // closed
		}
		s.mu.Lock()
		s.conn[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				if r := recover(); r != nil {
					s.fail(fmt.Errorf("panic serving %v: %v", c.RemoteAddr(), r))
				}
			}()
			if err := serveConn(c); err != nil && !errors.Is(err, net.ErrClosed) {
				s.fail(fmt.Errorf("serving %v: %w", c.RemoteAddr(), err))
			}
			s.mu.Lock()
			delete(s.conn, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
}

func (s *Server) fail(err error) {
	s.mu.Lock()
	s.errs = append(s.errs, err)
	s.mu.Unlock()
}

// Close stops the server, closes its connections and returns the errors its
// handlers met (connection resets caused by a lossy test link included).
func (s *Server) Close() error {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conn {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.errs...)
}

func serveConn(c *net.TCPConn) error {
	_ = c.SetReadBuffer(SocketBuffer)
	_ = c.SetWriteBuffer(SocketBuffer)
	hdr := make([]byte, hdrLen)
	buf := make([]byte, 64<<10)
	for {
		if _, err := io.ReadFull(c, hdr); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		a, b := binary.BigEndian.Uint32(hdr[4:]), binary.BigEndian.Uint64(hdr[8:])
		switch hdr[0] {
		case modeSink:
			_, err := io.CopyBuffer(io.Discard, c, buf)
			return err
		case modeSource:
			if err := writePaced(c, int64(b), int64(a)*1024, buf); err != nil {
				return err
			}
			_, err := io.CopyBuffer(io.Discard, c, buf) // until the client closes
			return err
		case modeRequest:
			if a < hdrLen {
				return fmt.Errorf("request size %d below header size", a)
			}
			if _, err := io.CopyN(io.Discard, c, int64(a-hdrLen)); err != nil {
				return err
			}
			if err := writePaced(c, int64(b), 0, buf); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unknown mode %d", hdr[0])
		}
	}
}

// writePaced writes n bytes, at rate bytes/s if rate > 0, in chunks of
// len(buf) at most (pacing by sleeping between chunks).
func writePaced(w io.Writer, n, rate int64, buf []byte) error {
	start := time.Now()
	var sent int64
	for sent < n {
		chunk := min(int64(len(buf)), n-sent)
		if rate > 0 {
			chunk = min(chunk, max(rate/100, 1448)) // ~10 ms worth
			due := start.Add(time.Duration(float64(sent) / float64(rate) * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
		}
		m, err := w.Write(buf[:chunk])
		sent += int64(m)
		if err != nil {
			return err
		}
	}
	return nil
}

// Client runs workloads from a host (A) against a Server.
type Client struct {
	Host *Host
	// InfoEvery is the period of TCP_INFO samples while a connection runs;
	// 0 takes 50 ms, negative disables them.
	InfoEvery time.Duration
	// QuietTimeout bounds the wait for every byte to be ACKed before the
	// final TCP_INFO read; 0 takes 10 s.
	QuietTimeout time.Duration
	// BeforeClose, if set, is called with the record (Final filled in) after
	// the connection went quiet and before it is closed: the moment to read
	// a capture engine's view of the same connection.
	BeforeClose func(*ConnRecord)

	mu      sync.Mutex
	records []*ConnRecord
}

// Records returns every connection the client made, in start order.
func (c *Client) Records() []*ConnRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*ConnRecord(nil), c.records...)
}

// dial connects from inside the client's host.
func (c *Client) dial(ctx context.Context, kind string, remote netip.AddrPort) (*net.TCPConn, *ConnRecord, error) {
	var conn net.Conn
	err := c.Host.Do(func() error {
		d := net.Dialer{Control: c.Host.control}
		var err error
		conn, err = d.DialContext(ctx, "tcp", remote.String())
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("lab: %s: dial %v from %s: %w", kind, remote, c.Host.Name, err)
	}
	tc := conn.(*net.TCPConn)
	rec := &ConnRecord{
		Kind: kind, Start: time.Now(),
		Local:  unmap(tc.LocalAddr().(*net.TCPAddr).AddrPort()),
		Remote: unmap(tc.RemoteAddr().(*net.TCPAddr).AddrPort()),
	}
	// Read at once, before any data: a non-zero TotalRetrans here means the
	// handshake itself was retransmitted.
	if info, err := ReadTCPInfo(tc); err == nil {
		rec.Established = info
	}
	c.mu.Lock()
	c.records = append(c.records, rec)
	c.mu.Unlock()
	return tc, rec, nil
}

// session wraps one connection's life: periodic TCP_INFO samples while body
// runs, then quiet, final sample, BeforeClose, close.
func (c *Client) session(ctx context.Context, kind string, remote netip.AddrPort, body func(*net.TCPConn, *ConnRecord) error) (*ConnRecord, error) {
	conn, rec, err := c.dial(ctx, kind, remote)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stopCtx := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stopCtx()
	every := c.InfoEvery
	if every == 0 {
		every = 50 * time.Millisecond
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go sampler(conn, rec, every, stop, done)
	berr := body(conn, rec)
	close(stop)
	<-done
	if berr != nil {
		rec.End = time.Now()
		return rec, fmt.Errorf("lab: %s %v: %w", kind, rec.Key(), berr)
	}
	qt := c.QuietTimeout
	if qt == 0 {
		qt = 10 * time.Second
	}
	final, qerr := waitQuiet(conn, qt)
	rec.Final = final
	rec.End = time.Now()
	if qerr != nil {
		return rec, fmt.Errorf("lab: %s %v: %w", kind, rec.Key(), qerr)
	}
	if c.BeforeClose != nil {
		c.BeforeClose(rec)
	}
	return rec, nil
}

// BulkSend streams n bytes to the server's sink at rate bytes/s (0: as fast
// as TCP allows; the delay line then becomes the bottleneck and its queue
// inflates the RTT, so RTT tests pace).
func (c *Client) BulkSend(ctx context.Context, remote netip.AddrPort, n, rate int64) (*ConnRecord, error) {
	return c.bulkSend(ctx, "bulk-send", remote, Phase{Bytes: n, Rate: rate})
}

// Phase is one stretch of a BulkSendPhases transfer.
type Phase struct {
	Bytes int64
	Rate  int64 // bytes/s; 0: as fast as TCP allows
}

// BulkSendPhases streams to the server's sink in phases on one connection,
// e.g. a burst that fills a bottleneck's queue, then a paced stretch that
// lets it drain.
func (c *Client) BulkSendPhases(ctx context.Context, remote netip.AddrPort, phases ...Phase) (*ConnRecord, error) {
	return c.bulkSend(ctx, "bulk-phases", remote, phases...)
}

func (c *Client) bulkSend(ctx context.Context, kind string, remote netip.AddrPort, phases ...Phase) (*ConnRecord, error) {
	return c.session(ctx, kind, remote, func(conn *net.TCPConn, rec *ConnRecord) error {
		_ = conn.SetWriteBuffer(SocketBuffer)
		buf := make([]byte, 64<<10)
		putHdr(buf, modeSink, 0, 0)
		if _, err := conn.Write(buf[:hdrLen]); err != nil {
			return err
		}
		cw := &countWriter{w: conn}
		defer func() { rec.BytesSent = cw.n + hdrLen }()
		for _, ph := range phases {
			if err := writePaced(cw, ph.Bytes, ph.Rate, buf); err != nil {
				return err
			}
		}
		return nil
	})
}

// BulkReceive asks the server's source for n bytes at rate bytes/s (rounded
// down to KiB/s; 0: unpaced) and reads them all.
func (c *Client) BulkReceive(ctx context.Context, remote netip.AddrPort, n, rate int64) (*ConnRecord, error) {
	return c.session(ctx, "bulk-receive", remote, func(conn *net.TCPConn, rec *ConnRecord) error {
		_ = conn.SetReadBuffer(SocketBuffer)
		buf := make([]byte, 64<<10)
		putHdr(buf, modeSource, uint32(rate/1024), uint64(n))
		if _, err := conn.Write(buf[:hdrLen]); err != nil {
			return err
		}
		rec.BytesSent = hdrLen
		got, err := io.CopyBuffer(io.Discard, io.LimitReader(conn, n), buf)
		rec.BytesRecv = got
		if err == nil && got != n {
			err = fmt.Errorf("received %d of %d bytes", got, n)
		}
		return err
	})
}

// RequestResponse sends count requests of reqSize bytes, each answered by
// respSize bytes, pausing pause between an answer and the next request.
func (c *Client) RequestResponse(ctx context.Context, remote netip.AddrPort, count, reqSize, respSize int, pause time.Duration) (*ConnRecord, error) {
	return c.session(ctx, "req-resp", remote, func(conn *net.TCPConn, rec *ConnRecord) error {
		return exchange(ctx, conn, rec, count, reqSize, respSize, pause)
	})
}

func exchange(ctx context.Context, conn *net.TCPConn, rec *ConnRecord, count, reqSize, respSize int, pause time.Duration) error {
	reqSize = max(reqSize, hdrLen)
	req := make([]byte, reqSize)
	buf := make([]byte, 64<<10)
	for i := 0; i < count; i++ {
		if i > 0 && pause > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(pause):
			}
		}
		putHdr(req, modeRequest, uint32(reqSize), uint64(respSize))
		if _, err := conn.Write(req); err != nil {
			return err
		}
		rec.BytesSent += int64(reqSize)
		got, err := io.CopyBuffer(io.Discard, io.LimitReader(conn, int64(respSize)), buf)
		rec.BytesRecv += got
		if err != nil {
			return err
		}
		if got != int64(respSize) {
			return fmt.Errorf("response %d: %d of %d bytes", i, got, respSize)
		}
	}
	return nil
}

// ShortConns opens n connections one after another (at most parallel at a
// time), each doing one request/response, and returns their records.
func (c *Client) ShortConns(ctx context.Context, remote netip.AddrPort, n, parallel, reqSize, respSize int) ([]*ConnRecord, error) {
	parallel = max(parallel, 1)
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	var mu sync.Mutex
	recs := make([]*ConnRecord, 0, n)
	var errs []error
	for i := 0; i < n && ctx.Err() == nil; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			rec, err := c.session(ctx, "short", remote, func(conn *net.TCPConn, rec *ConnRecord) error {
				return exchange(ctx, conn, rec, 1, reqSize, respSize, 0)
			})
			mu.Lock()
			defer mu.Unlock()
			if rec != nil {
				recs = append(recs, rec)
			}
			if err != nil {
				errs = append(errs, err)
			}
		}()
	}
	wg.Wait()
	return recs, errors.Join(errs...)
}

// unmap turns ::ffff:a.b.c.d (how the net package may report IPv4) into
// a.b.c.d, so keys match a capture's.
func unmap(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ScanResult counts what a Scan provoked.
type ScanResult struct {
	Attempts  int // connection attempts (SYNs) made
	Refused   int // answered by RST (closed port)
	Connected int // answered by SYN/ACK (open port)
	Pending   int // no answer before the attempt was abandoned
}

// Scan sends count SYNs from h to random ports of target in [1024, 65535),
// batch at a time, using non-blocking connects: each closed port answers with
// a RST, so every attempt is a short-lived flow for a capture on the path
// (what a port scan or a SYN flood looks like). Each batch waits at most wait
// for answers; the whole scan stops at ctx's deadline. Ports in skip are not
// probed.
func (h *Host) Scan(ctx context.Context, target netip.Addr, count, batch int, wait time.Duration, skip ...uint16) (ScanResult, error) {
	var res ScanResult
	skipSet := map[uint16]bool{}
	for _, p := range skip {
		skipSet[p] = true
	}
	batch = max(batch, 1)
	if wait <= 0 {
		wait = time.Second
	}
	err := h.Do(func() error {
		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
		for res.Attempts < count && ctx.Err() == nil {
			n := min(batch, count-res.Attempts)
			fds := make([]unix.PollFd, 0, n)
			for i := 0; i < n; i++ {
				port := uint16(1024 + rng.IntN(65535-1024))
				if skipSet[port] {
					continue
				}
				fd, err := nonblockingConnect(target, port)
				if err != nil {
					closeAll(fds)
					return err
				}
				fds = append(fds, unix.PollFd{Fd: int32(fd), Events: unix.POLLOUT})
				res.Attempts++
			}
			open := append([]unix.PollFd(nil), fds...) // awaitConnects clears answered ones
			r, c, p := awaitConnects(ctx, open, wait)
			res.Refused += r
			res.Connected += c
			res.Pending += p
			closeAll(fds)
		}
		return nil
	})
	return res, err
}

func nonblockingConnect(target netip.Addr, port uint16) (int, error) {
	var sa unix.Sockaddr
	family := unix.AF_INET
	if target.Is4() {
		sa = &unix.SockaddrInet4{Port: int(port), Addr: target.As4()}
	} else {
		family = unix.AF_INET6
		sa = &unix.SockaddrInet6{Port: int(port), Addr: target.As16()}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("lab: scan socket: %w", err)
	}
	// SO_LINGER 0: closing an unanswered attempt must not leave it retrying.
	_ = unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	if err := unix.Connect(fd, sa); err != nil && !errors.Is(err, unix.EINPROGRESS) {
		unix.Close(fd)
		return -1, fmt.Errorf("lab: scan connect to port %d: %w", port, err)
	}
	return fd, nil
}

// awaitConnects polls until every attempt has an answer or wait expires.
func awaitConnects(ctx context.Context, fds []unix.PollFd, wait time.Duration) (refused, connected, pending int) {
	deadline := time.Now().Add(wait)
	open := len(fds)
	done := make([]bool, len(fds))
	for open > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		ms := int(min(time.Until(deadline), 50*time.Millisecond) / time.Millisecond)
		if _, err := unix.Poll(fds, max(ms, 1)); err != nil && !errors.Is(err, unix.EINTR) {
			break
		}
		for i := range fds {
			if done[i] || fds[i].Revents == 0 {
				continue
			}
			done[i] = true
			open--
			soerr, err := unix.GetsockoptInt(int(fds[i].Fd), unix.SOL_SOCKET, unix.SO_ERROR)
			switch {
			case err == nil && soerr == 0:
				connected++
			default:
				refused++
			}
			fds[i].Fd = -1 // poll ignores negative descriptors
		}
	}
	return refused, connected, open
}

func closeAll(fds []unix.PollFd) {
	for _, p := range fds {
		unix.Close(int(p.Fd))
	}
}
