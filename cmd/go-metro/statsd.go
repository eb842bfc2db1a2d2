package main

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/DataDog/datadog-go/v5/statsd"
)

// Unix socket forms of statsd_ip, as datadog-go and the agent's
// DD_DOGSTATSD_URL spell them. Both are datagram sockets: the agent's
// dogstatsd_socket is one.
var statsdUnixPrefixes = []string{"unix://", "unixgram://"}

// statsdTarget is where `go-metro run` sends: UDP to host:port, or a unix
// datagram socket.
type statsdTarget struct {
	network string // "udp" or "unixgram"
	addr    string // host:port, or the socket's path
}

func (t statsdTarget) String() string {
	if t.network == "unixgram" {
		return "unix://" + t.addr
	}
	return t.addr
}

// parseStatsdTarget reads init_config's statsd_ip and statsd_port. It does
// not resolve the host: DogStatsD may start after go-metro, so an address
// that does not resolve yet is retried while sending, not refused here.
func parseStatsdTarget(ip string, port int) (statsdTarget, error) {
	for _, p := range statsdUnixPrefixes {
		if path, ok := strings.CutPrefix(ip, p); ok {
			if !strings.HasPrefix(path, "/") {
				return statsdTarget{}, fmt.Errorf("init_config: statsd_ip: %q: the socket path must be absolute, as in unix:///var/run/datadog/dsd.socket", truncate(ip))
			}
			return statsdTarget{network: "unixgram", addr: path}, nil
		}
	}
	if strings.Contains(ip, "://") {
		return statsdTarget{}, fmt.Errorf("init_config: statsd_ip: %q: want a host name, an IP address or unix:///path/to/dsd.socket (a datagram socket)", truncate(ip))
	}
	host := strings.TrimSuffix(strings.TrimPrefix(ip, "["), "]") // [::1] as ::1
	return statsdTarget{network: "udp", addr: net.JoinHostPort(host, strconv.Itoa(port))}, nil
}

// truncate caps a configured value echoed in a message.
func truncate(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + fmt.Sprintf("... (%d bytes)", len(s))
}

// Payload sizes: DogStatsD reads at most 8 KiB per unix datagram; over
// UDP datadog-go's default keeps a datagram within a 1500-byte MTU.
const (
	statsdUnixPayload = statsd.DefaultMaxAgentPayloadSize
	statsdDialTimeout = 2 * time.Second
	// statsdWriteTimeout bounds a write to a unix socket whose reader has
	// fallen behind (its buffer full): the payload is dropped, not queued.
	statsdWriteTimeout = 100 * time.Millisecond
	// statsdRedialEvery spaces connection attempts after one failed (no
	// such host, no such socket, no route): a flush of many payloads
	// must not wait for a DNS timeout per payload.
	statsdRedialEvery = time.Second
)

// newStatsdClient returns a DogStatsD client for t whose sends are
// watched by h. It never fails for an unreachable target: the socket is
// connected on the first write and reconnected after a failure.
func newStatsdClient(t statsdTarget, h *sendHealth) (*statsd.Client, error) {
	opts := []statsd.Option{
		statsd.WithoutTelemetry(),
		// Every Commit flushes, so the client's periodic buffer flush (100 ms
		// by default: ten wake-ups a second, a fifth of an idle go-metro's
		// CPU) only needs to be a backstop.
		statsd.WithBufferFlushInterval(5 * time.Second),
		// Write errors reach h from the transport itself; what the client
		// drops before writing (its queue full) is lost too.
		statsd.WithErrorHandler(func(err error) {
			if _, full := err.(*statsd.ErrorSenderChannelFull); full {
				h.record(err)
			}
		}),
	}
	if t.network == "unixgram" {
		opts = append(opts, statsd.WithMaxBytesPerPayload(statsdUnixPayload))
	}
	return statsd.NewWithWriter(&statsdConn{target: t, health: h}, opts...)
}

// statsdConn is the client's transport: a connected datagram socket,
// dialled on the first write and again after any write error (an agent
// that restarted made a new socket; a host name may resolve anew).
// Failed dials are retried at most every statsdRedialEvery.
type statsdConn struct {
	target statsdTarget
	health *sendHealth

	mu       sync.Mutex
	conn     net.Conn
	dialErr  error
	nextDial time.Time
}

func (w *statsdConn) Write(p []byte) (int, error) {
	n, err := w.write(p)
	w.health.record(err)
	return n, err
}

func (w *statsdConn) write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conn == nil {
		now := time.Now()
		if now.Before(w.nextDial) {
			return 0, w.dialErr
		}
		c, err := net.DialTimeout(w.target.network, w.target.addr, statsdDialTimeout)
		if err != nil {
			w.dialErr, w.nextDial = err, now.Add(statsdRedialEvery)
			return 0, err
		}
		w.conn = c
	}
	if w.target.network == "unixgram" {
		w.conn.SetWriteDeadline(time.Now().Add(statsdWriteTimeout))
	}
	n, err := w.conn.Write(p)
	if err != nil {
		w.conn.Close()
		w.conn = nil
	}
	return n, err
}

func (w *statsdConn) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conn == nil {
		return nil
	}
	err := w.conn.Close()
	w.conn = nil
	return err
}

// Outage reporting.
const (
	// statsdReportEvery: while sending fails, how often the count of
	// lost payloads is logged after the first warning.
	statsdReportEvery = 5 * time.Minute
	// statsdCleanCommits: sending has recovered after this many commits
	// in a row whose every write succeeded. One is not enough over UDP:
	// with nothing listening, the kernel reports the refusal of a
	// datagram on the next write, so writes alternate between success
	// and failure.
	statsdCleanCommits = 2
)

// sendHealth turns the transport's write results into log lines: one
// warning when sending starts failing, then a count of lost payloads every
// statsdReportEvery while it lasts, and one line when it recovers.
type sendHealth struct {
	target string
	log    *logger
	now    func() time.Time

	mu            sync.Mutex
	down          bool
	since         time.Time // when the outage began
	lastReport    time.Time
	lost          uint64 // payloads lost in this outage
	errs, oks     int    // writes since the last commit
	cleanCommits  int
	reportedCount uint64 // lost at the last report
}

func newSendHealth(target string, log *logger) *sendHealth {
	return &sendHealth{target: target, log: log, now: time.Now}
}

// record is told the outcome of every payload written.
func (h *sendHealth) record(err error) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		h.oks++
		return
	}
	h.errs++
	now := h.now()
	if !h.down {
		h.down, h.since, h.lastReport, h.cleanCommits, h.lost, h.reportedCount = true, now, now, 0, 1, 1
		h.log.Warnf("go-metro: dogstatsd at %s: sending failed: %v; metrics are lost until it recovers", h.target, err)
		return
	}
	h.lost++
	if now.Sub(h.lastReport) >= statsdReportEvery {
		h.log.Warnf("go-metro: dogstatsd at %s: still failing after %s: %d payload(s) lost since the last report, %d in all (last error: %v)",
			h.target, now.Sub(h.since).Round(time.Second), h.lost-h.reportedCount, h.lost, err)
		h.lastReport, h.reportedCount = now, h.lost
	}
}

// commit is told that a flush has written everything it had.
func (h *sendHealth) commit() {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	errs, oks := h.errs, h.oks
	h.errs, h.oks = 0, 0
	switch {
	case !h.down:
	case errs > 0:
		h.cleanCommits = 0
	case oks > 0:
		h.cleanCommits++
		if h.cleanCommits >= statsdCleanCommits {
			h.down = false
			h.log.Infof("go-metro: dogstatsd at %s: sending again after %s; %d payload(s) were lost",
				h.target, h.now().Sub(h.since).Round(time.Second), h.lost)
		}
	}
}
