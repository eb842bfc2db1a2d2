package lab

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// TCPInfo is the kernel's view of one connection at one instant: the ground
// truth go-metro is compared with. RTT is the kernel's smoothed RTT (srtt,
// tcpi_rtt) and RTTVar its mdev-based variation (tcpi_rttvar), both kept by
// the kernel in microseconds.
type TCPInfo struct {
	At           time.Time
	State        uint8
	RTT          time.Duration // tcpi_rtt: srtt
	RTTVar       time.Duration // tcpi_rttvar (Linux damps decreases: not RFC 6298's RTTVAR)
	MinRTT       time.Duration // tcpi_min_rtt
	RTO          time.Duration
	Unacked      uint32
	NotSent      uint32 // bytes written but not yet sent
	TotalRetrans uint32
	Lost         uint32
	SegsOut      uint32
	SegsIn       uint32
	DataSegsOut  uint32
	DataSegsIn   uint32
	BytesAcked   uint64
	BytesSent    uint64
	BytesRetrans uint64
	BytesRecv    uint64
}

func fromKernel(k *unix.TCPInfo, at time.Time) TCPInfo {
	us := func(v uint32) time.Duration { return time.Duration(v) * time.Microsecond }
	return TCPInfo{
		At: at, State: k.State,
		RTT: us(k.Rtt), RTTVar: us(k.Rttvar), MinRTT: us(k.Min_rtt), RTO: us(k.Rto),
		Unacked: k.Unacked, NotSent: k.Notsent_bytes, TotalRetrans: k.Total_retrans, Lost: k.Lost,
		SegsOut: k.Segs_out, SegsIn: k.Segs_in, DataSegsOut: k.Data_segs_out, DataSegsIn: k.Data_segs_in,
		BytesAcked: k.Bytes_acked, BytesSent: k.Bytes_sent, BytesRetrans: k.Bytes_retrans, BytesRecv: k.Bytes_received,
	}
}

// ReadTCPInfo reads TCP_INFO from a connected socket.
func ReadTCPInfo(c *net.TCPConn) (TCPInfo, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return TCPInfo{}, fmt.Errorf("lab: tcp info: %w", err)
	}
	var k *unix.TCPInfo
	var serr error
	if err := rc.Control(func(fd uintptr) {
		k, serr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil {
		return TCPInfo{}, fmt.Errorf("lab: tcp info: %w", err)
	}
	if serr != nil {
		return TCPInfo{}, fmt.Errorf("lab: getsockopt TCP_INFO: %w", serr)
	}
	return fromKernel(k, time.Now()), nil
}

// ConnRecord is everything the lab learned about one client connection,
// keyed by its addresses so it can be matched with a capture's flow.
type ConnRecord struct {
	Kind          string         // workload that made it: "bulk-send", "req-resp", ...
	Local, Remote netip.AddrPort // as seen from the client (A)
	Start, End    time.Time
	BytesSent     int64 // application bytes written
	BytesRecv     int64 // application bytes read

	// Established is read right after connect returned, before any data.
	Established TCPInfo

	mu      sync.Mutex
	samples []TCPInfo
	// Final is read after the workload finished and every byte was ACKed,
	// just before close: the connection is quiet, so the kernel's estimate
	// no longer moves.
	Final TCPInfo
}

// Samples returns the periodic TCP_INFO readings taken while the workload ran.
func (r *ConnRecord) Samples() []TCPInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]TCPInfo(nil), r.samples...)
}

func (r *ConnRecord) addSample(s TCPInfo) {
	r.mu.Lock()
	r.samples = append(r.samples, s)
	r.mu.Unlock()
}

// HandshakeRetransmitted reports whether the SYN had to be sent again.
func (r *ConnRecord) HandshakeRetransmitted() bool { return r.Established.TotalRetrans > 0 }

// Key is "local->remote", the same for a capture's flow.
func (r *ConnRecord) Key() string { return r.Local.String() + "->" + r.Remote.String() }

// sampler reads TCP_INFO every interval until stop is closed.
func sampler(c *net.TCPConn, rec *ConnRecord, every time.Duration, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if s, err := ReadTCPInfo(c); err == nil {
				rec.addSample(s)
			}
		}
	}
}

// waitQuiet waits until the kernel has nothing unacknowledged and nothing
// unsent on c (so its RTT estimate stops moving), or the timeout expires.
func waitQuiet(c *net.TCPConn, timeout time.Duration) (TCPInfo, error) {
	deadline := time.Now().Add(timeout)
	for {
		s, err := ReadTCPInfo(c)
		if err != nil {
			return s, err
		}
		if s.Unacked == 0 && s.NotSent == 0 {
			return s, nil
		}
		if time.Now().After(deadline) {
			return s, fmt.Errorf("lab: connection not quiet after %v: %d segments unacked, %d bytes unsent",
				timeout, s.Unacked, s.NotSent)
		}
		time.Sleep(time.Millisecond)
	}
}
