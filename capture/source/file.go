package source

// Capture files are parsed here rather than with gopacket/pcapgo because
// pcapgo v1.1.19 reports a pcapng file cut in the middle of a block as a
// clean io.EOF, sizes its buffers from untrusted header fields (a crafted
// pcapng file of under 100 bytes makes it allocate 4 GiB), and copies every
// record. This reader returns records straight out of its read buffer,
// checks every length against the bytes left in the file before trusting
// it, and knows exactly where each record ends.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"

	"github.com/gometro/go-metro/capture/packet"
	"golang.org/x/net/bpf"
)

const (
	readBufSize = 1 << 20
	// maxRecord bounds a record or block whatever the file claims: far above
	// any real frame (64 KiB, or 512 KiB with BIG TCP GSO), low enough that a
	// corrupt length cannot exhaust memory.
	maxRecord = 64 << 20

	pcapMagicMicro = 0xa1b2c3d4
	pcapMagicNano  = 0xa1b23c4d
	ngSHB          = 0x0a0d0d0a
	ngByteOrder    = 0x1a2b3c4d
	ngIDB          = 1
	ngPB           = 2 // obsolete Packet Block
	ngSPB          = 3
	ngEPB          = 6
)

// fileLinkType maps a LINKTYPE_ value of a file header to the link types the
// decoder understands.
func fileLinkType(v uint32) (packet.LinkType, error) {
	switch lt := packet.LinkType(v); lt {
	case packet.LinkTypeNull, packet.LinkTypeEthernet, packet.LinkTypeRaw,
		packet.LinkTypeIPv4, packet.LinkTypeIPv6, packet.LinkTypeLinuxSLL, packet.LinkTypeSLL2:
		return lt, nil
	}
	return 0, fmt.Errorf("%w %d (%s)", ErrUnsupportedLinkType, v, linkTypeName(v))
}

type file struct {
	f      *os.File
	br     *bufio.Reader
	name   string
	size   int64 // -1 when not a regular file
	pos    int64 // bytes consumed so far
	big    bool  // byte order of the file (pcap) or current section (pcapng)
	ng     bool
	link   packet.LinkType // of the record Next returned last
	iface  int             // of the record Next returned last (Interface)
	record int             // records returned so far, for error messages
	opened bool            // the headers are read: a cut from now on is ErrTruncated
	err    error           // sticky: once Next failed it fails the same way
	buf    []byte
	hdr    [28]byte

	// pcap
	nano bool

	// pcapng
	ifaces []ngIface
}

type ngIface struct {
	link    packet.LinkType // passed on as is: the decoder counts unknown ones
	snaplen uint32
	// Timestamps are in units of 10^-decExp s when bin is false, of
	// 2^-binExp s when it is true.
	bin      bool
	exp      uint8
	offsetNs int64
}

// OpenFile opens a pcap (microsecond or nanosecond) or pcapng capture file.
// Next returns records in file order with timestamps in ns since the epoch
// and io.EOF at the end. Errors are one line naming the file and wrap
// ErrEmptyFile, ErrNotCaptureFile, ErrUnsupportedLinkType or ErrCorrupt; a
// file cut inside a record ends with ErrTruncated after the records before
// the cut. A pcapng file's interfaces may have different link types: each
// record is returned with its own interface's (see LinkType).
func OpenFile(path string) (Source, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("capture file: %w", err)
	}
	s := &file{f: f, name: path, size: -1, br: bufio.NewReaderSize(f, readBufSize)}
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		s.size = fi.Size()
	}
	if err := s.open(); err != nil {
		f.Close()
		return nil, err
	}
	s.opened = true
	return s, nil
}

// cut is the error a record or block that the file ends inside of wraps:
// ErrTruncated once the file's headers have been read (the records before
// the cut are good), io.ErrUnexpectedEOF while opening (nothing to report).
func (s *file) cut() error {
	if s.opened {
		return ErrTruncated
	}
	return io.ErrUnexpectedEOF
}

func (s *file) errorf(format string, args ...any) error {
	return fmt.Errorf("capture file %s: "+format, append([]any{s.name}, args...)...)
}

func (s *file) u16(b []byte) uint16 {
	if s.big {
		return binary.BigEndian.Uint16(b)
	}
	return binary.LittleEndian.Uint16(b)
}

func (s *file) u32(b []byte) uint32 {
	if s.big {
		return binary.BigEndian.Uint32(b)
	}
	return binary.LittleEndian.Uint32(b)
}

// readFull reads exactly len(b) bytes. It returns io.EOF only when nothing
// at all was left; a partial read is io.ErrUnexpectedEOF.
func (s *file) readFull(b []byte) error {
	n, err := io.ReadFull(s.br, b)
	s.pos += int64(n)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return s.errorf("reading at byte %d: %w", s.pos, err)
	}
	return err
}

// head returns the next n (small) bytes from the read buffer, like
// readFull but without copying.
func (s *file) head(n int) ([]byte, error) {
	b, err := s.br.Peek(n)
	if err != nil {
		if len(b) == 0 && errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		s.pos += int64(len(b))
		if errors.Is(err, io.EOF) {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, s.errorf("reading at byte %d: %w", s.pos, err)
	}
	_, _ = s.br.Discard(n)
	s.pos += int64(n)
	return b, nil
}

// body returns the next n bytes, from the read buffer when they fit.
func (s *file) body(n int) ([]byte, error) {
	if s.size >= 0 && int64(n) > s.size-s.pos {
		return nil, io.ErrUnexpectedEOF
	}
	if n <= s.br.Size() {
		// head's bytes stay intact until the next read: Discard only
		// advances the buffer's read index. A body cut short is a
		// truncated record, even where nothing of it was there.
		b, err := s.head(n)
		if errors.Is(err, io.EOF) {
			return nil, io.ErrUnexpectedEOF
		}
		return b, err
	}
	if cap(s.buf) < n {
		s.buf = make([]byte, n)
	}
	b := s.buf[:n]
	if err := s.readFull(b); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return b, nil
}

func (s *file) open() error {
	magic := s.hdr[:4]
	if err := s.readFull(magic); err != nil {
		if errors.Is(err, io.EOF) {
			return s.errorf("%w", ErrEmptyFile)
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return s.errorf("%w (only %d bytes)", ErrNotCaptureFile, s.pos)
		}
		return err
	}
	le, be := binary.LittleEndian.Uint32(magic), binary.BigEndian.Uint32(magic)
	switch {
	case le == pcapMagicMicro || le == pcapMagicNano:
		s.nano = le == pcapMagicNano
		return s.openPcap()
	case be == pcapMagicMicro || be == pcapMagicNano:
		s.big, s.nano = true, be == pcapMagicNano
		return s.openPcap()
	case le == ngSHB:
		s.ng = true
		return s.openPcapng()
	}
	return s.errorf("%w (starts with %#08x)", ErrNotCaptureFile, be)
}

func (s *file) openPcap() error {
	h := s.hdr[4:24]
	if err := s.readFull(h); err != nil {
		return s.errorf("pcap file header is truncated: %w", s.cut())
	}
	if major := s.u16(h[0:2]); major != 2 {
		return s.errorf("%w: pcap version %d.%d", ErrCorrupt, major, s.u16(h[2:4]))
	}
	// The upper bits of the link type field may carry FCS information.
	lt, err := fileLinkType(s.u32(h[16:20]) & 0xffff)
	if err != nil {
		return s.errorf("%w", err)
	}
	s.link = lt
	return nil
}

// openPcapng reads the section header and the blocks up to the first
// interface description. A file whose first interface has a link type the
// decoder does not know is refused (the error names the type); records of
// later interfaces with such link types are passed on for the decoder to
// count and skip.
func (s *file) openPcapng() error {
	if err := s.sectionHeader(); err != nil {
		return err
	}
	for {
		typ, body, err := s.block()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return s.errorf("pcapng file has no interface description block (no packets)")
			}
			return err
		}
		switch typ {
		case ngIDB:
			if err := s.interfaceBlock(body); err != nil {
				return err
			}
			lt, err := fileLinkType(uint32(s.ifaces[0].link))
			if err != nil {
				return s.errorf("interface 0: %w", err)
			}
			s.link = lt
			return nil
		case ngSHB:
			if err := s.sectionHeader(); err != nil {
				return err
			}
		case ngEPB, ngSPB, ngPB:
			return s.errorf("%w: packet block at byte %d before any interface description", ErrCorrupt, s.pos)
		}
	}
}

// sectionHeader parses a Section Header Block whose type has been read.
func (s *file) sectionHeader() error {
	h := s.hdr[4:12] // total length, byte-order magic
	if err := s.readFull(h); err != nil {
		if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return err
		}
		return s.errorf("pcapng section header at byte %d is truncated: %w", s.pos, s.cut())
	}
	switch uint32(ngByteOrder) {
	case binary.LittleEndian.Uint32(h[4:8]):
		s.big = false
	case binary.BigEndian.Uint32(h[4:8]):
		s.big = true
	default:
		return s.errorf("%w: bad pcapng byte-order magic at byte %d", ErrNotCaptureFile, s.pos-4)
	}
	total := s.u32(h[0:4])
	if total < 28 || total%4 != 0 || total > maxRecord {
		return s.errorf("%w: pcapng section header length %d", ErrCorrupt, total)
	}
	body, err := s.body(int(total) - 12)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return s.errorf("pcapng section header (%d bytes) is truncated: %w", total, s.cut())
	}
	if err != nil {
		return err
	}
	if major := s.u16(body[0:2]); major != 1 {
		return s.errorf("%w: pcapng version %d.%d", ErrCorrupt, major, s.u16(body[2:4]))
	}
	s.ifaces = s.ifaces[:0] // interface ids restart in each section
	return nil
}

// block reads the next pcapng block and returns its type and body (without
// the trailing length). For a Section Header Block it returns typ ngSHB and
// a nil body: the caller parses it with sectionHeader.
func (s *file) block() (uint32, []byte, error) {
	start := s.pos
	h, err := s.br.Peek(8)
	if len(h) < 4 {
		if len(h) == 0 && errors.Is(err, io.EOF) {
			return 0, nil, io.EOF // clean end of file
		}
		if errors.Is(err, io.EOF) {
			return 0, nil, s.errorf("block at byte %d is truncated: %w", start, s.cut())
		}
		return 0, nil, s.errorf("reading at byte %d: %w", start, err)
	}
	typ := s.u32(h)
	if typ == ngSHB {
		_, _ = s.br.Discard(4)
		s.pos += 4
		return ngSHB, nil, nil
	}
	if len(h) < 8 {
		return 0, nil, s.errorf("block at byte %d is truncated: %w", start, s.cut())
	}
	total := s.u32(h[4:8])
	_, _ = s.br.Discard(8)
	s.pos += 8
	if total < 12 || total%4 != 0 || total > maxRecord {
		return 0, nil, s.errorf("%w: block at byte %d has length %d", ErrCorrupt, start, total)
	}
	b, err := s.body(int(total) - 8)
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, nil, s.errorf("block at byte %d (%d bytes) is truncated: %w", start, total, s.cut())
		}
		return 0, nil, err
	}
	return typ, b[:len(b)-4], nil
}

func (s *file) interfaceBlock(b []byte) error {
	if len(b) < 8 {
		return s.errorf("%w: interface description of %d bytes", ErrCorrupt, len(b))
	}
	ifc := ngIface{link: packet.LinkType(s.u16(b[0:2])), snaplen: s.u32(b[4:8]), exp: 6}
	for o := b[8:]; len(o) >= 4; {
		code, n := s.u16(o[0:2]), int(s.u16(o[2:4]))
		if code == 0 || 4+n > len(o) {
			break
		}
		v := o[4 : 4+n]
		switch {
		case code == 9 && n == 1: // if_tsresol
			ifc.bin, ifc.exp = v[0]&0x80 != 0, v[0]&0x7f
			if (!ifc.bin && ifc.exp > 18) || (ifc.bin && ifc.exp > 63) {
				return s.errorf("%w: interface %d timestamp resolution %#x", ErrCorrupt, len(s.ifaces), v[0])
			}
		case code == 14 && n == 8: // if_tsoffset, seconds
			if s.big {
				ifc.offsetNs = int64(binary.BigEndian.Uint64(v)) * 1e9
			} else {
				ifc.offsetNs = int64(binary.LittleEndian.Uint64(v)) * 1e9
			}
		}
		o = o[4+(n+3)&^3:]
	}
	s.ifaces = append(s.ifaces, ifc)
	return nil
}

var pow10 = [...]uint64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9}

// ns converts a pcapng timestamp in the interface's units to ns.
func (ifc *ngIface) ns(ts uint64) int64 {
	var ns uint64
	switch {
	case ifc.bin:
		// (ts / 2^e) seconds, without overflowing: whole seconds, then the
		// fraction scaled by 1e9 in 128 bits.
		sec := ts >> ifc.exp
		frac := ts & (1<<ifc.exp - 1)
		hi, lo := bits.Mul64(frac, 1e9)
		// (hi:lo) >> exp; with exp 0, frac and so hi and lo are 0 (and Go
		// defines hi<<64 as 0).
		ns = sec*1e9 + (hi<<(64-ifc.exp) | lo>>ifc.exp)
	case ifc.exp <= 9:
		ns = ts * pow10[9-ifc.exp]
	default:
		ns = ts / pow10[ifc.exp-9]
	}
	return int64(ns) + ifc.offsetNs
}

// LinkType is the link type of the record Next returned last: a pcapng
// file's interfaces can differ (a capture on "any" merged with one on a
// tunnel, say). Before the first record it is the file's (pcap) or its first
// interface's (pcapng).
func (s *file) LinkType() packet.LinkType { return s.link }

// Next returns the next record. data points into the reader's buffer and
// is valid until the next call. After an error (io.EOF included) every
// later call returns the same error: the reader's position inside a cut or
// corrupt record means nothing.
func (s *file) Next() ([]byte, int64, int, error) {
	if s.f == nil {
		return nil, 0, 0, ErrClosed
	}
	if s.err != nil {
		return nil, 0, 0, s.err
	}
	next := s.nextPcap
	if s.ng {
		next = s.nextPcapng
	}
	data, ts, wire, err := next()
	if err != nil {
		s.err = err
	}
	if s.link == packet.LinkTypeSLL2 && len(data) >= 8 {
		// protocol(2) reserved(2) ifindex(4): the capturing host's index.
		s.iface = int(int32(binary.BigEndian.Uint32(data[4:8])))
	}
	return data, ts, wire, err
}

// Interface is the index in the record's Linux cooked v2 header, if it
// has one, else its pcapng interface's number plus one, else 0.
func (s *file) Interface() int { return s.iface }

func (s *file) nextPcap() ([]byte, int64, int, error) {
	start := s.pos
	h, err := s.head(16)
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, 0, 0, s.errorf("record %d header at byte %d is truncated: %w", s.record+1, start, s.cut())
		}
		return nil, 0, 0, err
	}
	// Decode the header now: h points into the read buffer, which reading
	// a large body refills.
	caplen, wire := s.u32(h[8:12]), s.u32(h[12:16])
	ts, frac := int64(s.u32(h[0:4])), int64(s.u32(h[4:8]))
	if !s.nano {
		frac *= 1000
	}
	if caplen > maxRecord {
		return nil, 0, 0, s.errorf("%w: record %d at byte %d claims %d bytes", ErrCorrupt, s.record+1, start, caplen)
	}
	data, err := s.body(int(caplen))
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, 0, 0, s.errorf("record %d at byte %d (%d bytes) is truncated: %w", s.record+1, start, caplen, s.cut())
		}
		return nil, 0, 0, err
	}
	s.record++
	return data, ts*1e9 + frac, int(max(wire, caplen)), nil
}

func (s *file) nextPcapng() ([]byte, int64, int, error) {
	for {
		start := s.pos
		typ, b, err := s.block()
		if err != nil {
			return nil, 0, 0, err
		}
		var ifID, caplen, wire uint32
		var ts uint64
		var data []byte
		switch typ {
		case ngSHB:
			if err := s.sectionHeader(); err != nil {
				return nil, 0, 0, err
			}
			continue
		case ngIDB:
			if err := s.interfaceBlock(b); err != nil {
				return nil, 0, 0, err
			}
			continue
		case ngEPB, ngPB:
			if len(b) < 20 {
				return nil, 0, 0, s.errorf("%w: packet block at byte %d has %d bytes", ErrCorrupt, start, len(b))
			}
			if typ == ngEPB {
				ifID = s.u32(b[0:4])
			} else {
				ifID = uint32(s.u16(b[0:2]))
			}
			ts = uint64(s.u32(b[4:8]))<<32 | uint64(s.u32(b[8:12]))
			caplen, wire = s.u32(b[12:16]), s.u32(b[16:20])
			if uint64(caplen) > uint64(len(b)-20) {
				return nil, 0, 0, s.errorf("%w: packet block at byte %d claims %d captured bytes in %d", ErrCorrupt, start, caplen, len(b)-20)
			}
			data = b[20 : 20+caplen]
		case ngSPB:
			// Simple packets carry no timestamp (ts stays 0) and belong to
			// interface 0.
			if len(b) < 4 {
				return nil, 0, 0, s.errorf("%w: simple packet block at byte %d has %d bytes", ErrCorrupt, start, len(b))
			}
			wire = s.u32(b[0:4])
			caplen = min(wire, uint32(len(b)-4))
			if len(s.ifaces) > 0 && s.ifaces[0].snaplen != 0 {
				caplen = min(caplen, s.ifaces[0].snaplen)
			}
			data = b[4 : 4+caplen]
		default:
			continue // statistics, name resolution, custom blocks...
		}
		if int(ifID) >= len(s.ifaces) {
			return nil, 0, 0, s.errorf("%w: packet block at byte %d names interface %d of %d", ErrCorrupt, start, ifID, len(s.ifaces))
		}
		ifc := &s.ifaces[ifID]
		s.link = ifc.link
		s.iface = int(ifID) + 1
		s.record++
		var ns int64
		if typ != ngSPB {
			ns = ifc.ns(ts)
		}
		return data, ns, int(max(wire, caplen)), nil
	}
}

// SetFilter is accepted and ignored: files are filtered in user space.
func (s *file) SetFilter([]bpf.RawInstruction) error { return nil }

// Stats are zero for files: there is no kernel to drop anything.
func (s *file) Stats() (Stats, error) { return Stats{}, nil }

// Wake does nothing: reading a file never waits.
func (s *file) Wake() {}

func (s *file) Close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f, s.br = nil, nil
	if err != nil {
		return fmt.Errorf("capture file %s: closing: %w", s.name, err)
	}
	return nil
}
