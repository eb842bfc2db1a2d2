//go:build pcap

package source

import (
	"cmp"
	"errors"
	"fmt"
	"sync"

	"github.com/gometro/go-metro/capture/packet"
	"github.com/google/gopacket/pcap"
	"golang.org/x/net/bpf"
)

// pcapSource captures through libpcap (built with -tags pcap). libpcap
// keeps its own cumulative counters and reports a deleted interface as an
// error from its read call.
type pcapSource struct {
	h       *pcap.Handle
	ifname  string
	link    packet.LinkType
	snaplen int
	mu      sync.Mutex // guards h against Stats/SetFilter racing Close
	closed  bool
	last    Stats
	iface   int // of the latest frame, as libpcap reports it (Interface)
}

func openPcap(opts Options) (Source, error) {
	name := opts.Interface
	if name == "" {
		name = "any"
	}
	if opts.Fanout != nil {
		return nil, fmt.Errorf("capture: pcap %q: %w: capture workers need the afpacket backend", name, ErrUnsupportedBackend)
	}
	if name != "any" {
		if _, err := interfaceByName(name); err != nil {
			return nil, err
		}
	}
	// libpcap reports a missing CAP_NET_RAW as a status code that gopacket
	// keeps unexported (or, in older versions, only as text): ask the
	// kernel directly instead.
	if err := captureAllowed(); err != nil {
		return nil, fmt.Errorf("capture: pcap %q: %w (capturing needs CAP_NET_RAW)", name, err)
	}
	in, err := pcap.NewInactiveHandle(name)
	if err != nil {
		return nil, fmt.Errorf("capture: pcap %q: %w", name, err)
	}
	defer in.CleanUp()
	buffer := cmp.Or(opts.RingSize, DefaultRingSize) // libpcap's buffer is never sized by need
	for _, step := range []error{
		in.SetSnapLen(max(opts.Snaplen, opts.WholeLen)),
		in.SetPromisc(name != "any" && isBridge(name)), // see isBridge
		in.SetTimeout(min(opts.PollTimeout, unwakeableTimeout)),
		in.SetBufferSize(buffer),
	} {
		if step != nil {
			return nil, fmt.Errorf("capture: pcap %q: %w", name, step)
		}
	}
	h, err := in.Activate()
	if err != nil {
		return nil, fmt.Errorf("capture: pcap %q: %w", name, err)
	}
	// pcap_datalink returns DLT_ numbers; on Linux DLT_RAW is 12 (and 14
	// on some BSDs) where files say LINKTYPE_RAW 101.
	dlt := uint32(h.LinkType())
	if dlt == 12 || dlt == 14 {
		dlt = uint32(packet.LinkTypeRaw)
	}
	lt, err := fileLinkType(dlt)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("capture: pcap %q: %w", name, err)
	}
	s := &pcapSource{h: h, ifname: name, link: lt, snaplen: opts.Snaplen, last: Stats{RingSize: buffer}}
	// libpcap binds in Activate, before the link type is known; frames that
	// entered its ring before the kernel filter are run through the same
	// program in user space by pcap_setfilter (pcap-linux.c,
	// blocks_to_filter_in_userland), so none gets through unfiltered.
	if opts.Filter != nil {
		err = opts.Filter(lt, s.SetFilter)
	} else {
		err = s.SetFilter(nil)
	}
	if err != nil {
		h.Close()
		return nil, err
	}
	return s, nil
}

func (s *pcapSource) LinkType() packet.LinkType { return s.link }

// Interface is what libpcap reports of the latest frame's interface: 0
// when it does not say.
func (s *pcapSource) Interface() int { return s.iface }

// Wake does nothing: libpcap's read returns within its timeout, which
// OpenLive caps at unwakeableTimeout.
func (s *pcapSource) Wake() {}

func (s *pcapSource) Next() ([]byte, int64, int, error) {
	if s.closed {
		return nil, 0, 0, ErrClosed
	}
	data, ci, err := s.h.ZeroCopyReadPacketData()
	switch {
	case err == nil:
		s.iface = ci.InterfaceIndex
		return data, ci.Timestamp.UnixNano(), ci.Length, nil
	case errors.Is(err, pcap.NextErrorTimeoutExpired):
		return nil, 0, 0, ErrTimeout
	}
	if s.ifname != "any" {
		if _, ierr := interfaceByName(s.ifname); errors.Is(ierr, ErrNoSuchInterface) {
			return nil, 0, 0, fmt.Errorf("capture: pcap %q: %v: %w", s.ifname, err, ErrInterfaceGone)
		}
	}
	return nil, 0, 0, fmt.Errorf("capture: pcap %q: %w", s.ifname, err)
}

func (s *pcapSource) SetFilter(prog []bpf.RawInstruction) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if len(prog) == 0 {
		prog = []bpf.RawInstruction{{Op: 0x06, K: uint32(s.snaplen)}}
	}
	ins := make([]pcap.BPFInstruction, len(prog))
	for i, r := range prog {
		ins[i] = pcap.BPFInstruction{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	if err := s.h.SetBPFInstructionFilter(ins); err != nil {
		return fmt.Errorf("capture: pcap %q: attaching BPF filter (%d instructions): %w", s.ifname, len(prog), err)
	}
	return nil
}

func (s *pcapSource) Stats() (Stats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return s.last, nil
	}
	st, err := s.h.Stats()
	if err != nil {
		return s.last, fmt.Errorf("capture: pcap %q: statistics: %w", s.ifname, err)
	}
	s.last.Received, s.last.Dropped = uint64(st.PacketsReceived), uint64(st.PacketsDropped)
	return s.last, nil
}

func (s *pcapSource) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	if st, err := s.h.Stats(); err == nil {
		s.last.Received, s.last.Dropped = uint64(st.PacketsReceived), uint64(st.PacketsDropped)
	}
	s.h.Close()
	s.closed = true
	return nil
}
