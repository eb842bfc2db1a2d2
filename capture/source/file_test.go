package source

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gometro/go-metro/capture/packet"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

type rec struct {
	data []byte
	ts   int64 // ns
	wire int
}

// testRecords have distinct sizes (one odd, to exercise pcapng padding) and
// timestamps with sub-microsecond digits.
var testRecords = []rec{
	{bytes.Repeat([]byte{0xaa}, 60), 1700000000_123456789, 60},
	{bytes.Repeat([]byte{0xbb}, 33), 1700000001_000000999, 1500}, // snapped
	{bytes.Repeat([]byte{0xcc}, 1), 1700000002_999999001, 1},
}

func ci(r rec, iface int) gopacket.CaptureInfo {
	return gopacket.CaptureInfo{Timestamp: time.Unix(0, r.ts), CaptureLength: len(r.data), Length: r.wire, InterfaceIndex: iface}
}

func writeFile(t testing.TB, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func pcapBytes(t testing.TB, nanos bool, lt layers.LinkType, recs []rec) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := pcapgo.NewWriter(&buf)
	if nanos {
		w = pcapgo.NewWriterNanos(&buf)
	}
	if err := w.WriteFileHeader(65535, lt); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := w.WritePacket(ci(r, 0), r.data); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func pcapngBytes(t testing.TB, lts []layers.LinkType, recs []rec, ifaceOf func(int) int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := pcapgo.NewNgWriterInterface(&buf, pcapgo.NgInterface{LinkType: lts[0], SnapLength: 65535}, pcapgo.DefaultNgWriterOptions)
	if err != nil {
		t.Fatal(err)
	}
	for _, lt := range lts[1:] {
		if _, err := w.AddInterface(pcapgo.NgInterface{LinkType: lt, SnapLength: 65535}); err != nil {
			t.Fatal(err)
		}
	}
	for i, r := range recs {
		if err := w.WritePacket(ci(r, ifaceOf(i)), r.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// ngBlock builds a little-endian pcapng block (pcapgo cannot write
// resolutions other than ns).
func ngBlock(typ uint32, body []byte) []byte {
	for len(body)%4 != 0 {
		body = append(body, 0)
	}
	n := uint32(len(body) + 12)
	b := binary.LittleEndian.AppendUint32(nil, typ)
	b = binary.LittleEndian.AppendUint32(b, n)
	b = append(b, body...)
	return binary.LittleEndian.AppendUint32(b, n)
}

func ngSection() []byte {
	body := binary.LittleEndian.AppendUint32(nil, ngByteOrder)
	body = binary.LittleEndian.AppendUint16(body, 1)
	body = binary.LittleEndian.AppendUint16(body, 0)
	body = binary.LittleEndian.AppendUint64(body, ^uint64(0))
	return ngBlock(ngSHB, body)
}

func mkIDB(lt uint16, tsresol byte, offsetSec uint64) []byte {
	body := binary.LittleEndian.AppendUint16(nil, lt)
	body = append(body, 0, 0)
	body = binary.LittleEndian.AppendUint32(body, 0)
	body = append(body, 9, 0, 1, 0, tsresol, 0, 0, 0) // if_tsresol
	if offsetSec != 0 {
		body = append(body, 14, 0, 8, 0)
		body = binary.LittleEndian.AppendUint64(body, offsetSec)
	}
	return ngBlock(ngIDB, append(body, 0, 0, 0, 0))
}

func mkEPB(iface uint32, ts uint64, data []byte, wire int) []byte {
	body := binary.LittleEndian.AppendUint32(nil, iface)
	body = binary.LittleEndian.AppendUint32(body, uint32(ts>>32))
	body = binary.LittleEndian.AppendUint32(body, uint32(ts))
	body = binary.LittleEndian.AppendUint32(body, uint32(len(data)))
	body = binary.LittleEndian.AppendUint32(body, uint32(wire))
	return ngBlock(ngEPB, append(body, data...))
}

func truncUs(recs []rec) []rec {
	out := make([]rec, len(recs))
	for i, r := range recs {
		r.ts -= r.ts % 1000
		out[i] = r
	}
	return out
}

func TestOpenFile(t *testing.T) {
	us := truncUs(testRecords)
	bigEndian := func() []byte {
		h := binary.BigEndian.AppendUint32(nil, pcapMagicMicro)
		h = binary.BigEndian.AppendUint16(h, 2)
		h = binary.BigEndian.AppendUint16(h, 4)
		h = append(h, make([]byte, 8)...)
		h = binary.BigEndian.AppendUint32(h, 65535)
		h = binary.BigEndian.AppendUint32(h, 101)
		for _, r := range us {
			h = binary.BigEndian.AppendUint32(h, uint32(r.ts/1e9))
			h = binary.BigEndian.AppendUint32(h, uint32(r.ts%1e9/1000))
			h = binary.BigEndian.AppendUint32(h, uint32(len(r.data)))
			h = binary.BigEndian.AppendUint32(h, uint32(r.wire))
			h = append(h, r.data...)
		}
		return h
	}
	handNg := func(tsresol byte, offset uint64, conv func(ns int64) uint64) []byte {
		b := append(ngSection(), mkIDB(1, tsresol, offset)...)
		b = append(b, ngBlock(5, make([]byte, 12))...) // statistics block: skipped
		for _, r := range testRecords {
			b = append(b, mkEPB(0, conv(r.ts), r.data, r.wire)...)
		}
		return b
	}
	const off = 1000
	binRecs := make([]rec, len(testRecords))
	for i, r := range testRecords {
		// 2^-20 s units, plus a 1000 s offset; conversion truncates.
		units := uint64(r.ts-off*1e9) * (1 << 20) / 1e9
		r.ts = int64(units>>20)*1e9 + int64((units&(1<<20-1))*1e9>>20) + off*1e9
		binRecs[i] = r
	}
	tests := []struct {
		name string
		file []byte
		link packet.LinkType
		want []rec
	}{
		{"pcap us", pcapBytes(t, false, layers.LinkTypeEthernet, testRecords), packet.LinkTypeEthernet, us},
		{"pcap ns", pcapBytes(t, true, layers.LinkTypeEthernet, testRecords), packet.LinkTypeEthernet, testRecords},
		{"pcap big-endian us raw", bigEndian(), packet.LinkTypeRaw, us},
		{"pcap no records", pcapBytes(t, true, layers.LinkTypeLinuxSLL, nil), packet.LinkTypeLinuxSLL, nil},
		{"pcap IPv4", pcapBytes(t, true, layers.LinkTypeIPv4, testRecords), packet.LinkTypeIPv4, testRecords},
		{"pcap null", pcapBytes(t, true, layers.LinkTypeNull, testRecords), packet.LinkTypeNull, testRecords},
		{"pcapng ns", pcapngBytes(t, []layers.LinkType{layers.LinkTypeEthernet}, testRecords, func(int) int { return 0 }), packet.LinkTypeEthernet, testRecords},
		{"pcapng two interfaces same link", pcapngBytes(t, []layers.LinkType{layers.LinkTypeRaw, layers.LinkTypeRaw}, testRecords, func(i int) int { return i % 2 }), packet.LinkTypeRaw, testRecords},
		{"pcapng us", handNg(6, 0, func(ns int64) uint64 { return uint64(ns / 1000) }), packet.LinkTypeEthernet, us},
		{"pcapng 2^-20 with offset", handNg(0x80|20, off, func(ns int64) uint64 { return uint64(ns-off*1e9) * (1 << 20) / 1e9 }), packet.LinkTypeEthernet, binRecs},
		{"pcapng two sections", append(pcapngBytes(t, []layers.LinkType{layers.LinkTypeEthernet}, testRecords[:1], func(int) int { return 0 }),
			pcapngBytes(t, []layers.LinkType{layers.LinkTypeEthernet}, testRecords[1:], func(int) int { return 0 })...), packet.LinkTypeEthernet, testRecords},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := OpenFile(writeFile(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.LinkType() != tt.link {
				t.Errorf("LinkType = %d, want %d", s.LinkType(), tt.link)
			}
			for i, w := range tt.want {
				data, ts, wire, err := s.Next()
				if err != nil {
					t.Fatalf("record %d: %v", i, err)
				}
				if !bytes.Equal(data, w.data) || ts != w.ts || wire != w.wire {
					t.Errorf("record %d: got (%d bytes, ts %d, wire %d), want (%d bytes, ts %d, wire %d)", i, len(data), ts, wire, len(w.data), w.ts, w.wire)
				}
			}
			if _, _, _, err := s.Next(); err != io.EOF {
				t.Errorf("after the records: err = %v, want io.EOF", err)
			}
			if st, err := s.Stats(); err != nil || st != (Stats{}) {
				t.Errorf("Stats = %+v, %v", st, err)
			}
			if err := s.SetFilter(nil); err != nil {
				t.Errorf("SetFilter: %v", err)
			}
		})
	}
}

func TestOpenFileErrors(t *testing.T) {
	good := pcapBytes(t, true, layers.LinkTypeEthernet, testRecords)
	goodNg := pcapngBytes(t, []layers.LinkType{layers.LinkTypeEthernet}, testRecords, func(int) int { return 0 })
	hugeCaplen := append([]byte(nil), good[:24+16]...)
	binary.LittleEndian.PutUint32(hugeCaplen[24+8:], 0xfffffff0)
	beyondFile := append([]byte(nil), good...)
	binary.LittleEndian.PutUint32(beyondFile[24+8:], 1<<20)
	tests := []struct {
		name     string
		file     []byte
		openErr  error // error from OpenFile, or nil
		readErr  error // error from a Next after the good records, or nil
		msgParts []string
	}{
		{"empty", nil, ErrEmptyFile, nil, []string{"empty"}},
		{"garbage", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), ErrNotCaptureFile, nil, []string{"not a pcap", "0x47455420"}},
		{"two bytes", []byte{0xd4, 0xc3}, ErrNotCaptureFile, nil, []string{"only 2 bytes"}},
		{"pcap header cut", good[:20], io.ErrUnexpectedEOF, nil, []string{"header is truncated"}},
		{"unsupported link type", pcapBytes(t, true, layers.LinkTypeIEEE802_11, nil), ErrUnsupportedLinkType, nil, []string{"link type 105"}},
		{"pcapng unsupported link type", pcapngBytes(t, []layers.LinkType{layers.LinkTypeFDDI}, nil, nil), ErrUnsupportedLinkType, nil, []string{"link type 10"}},
		{"pcapng without interfaces", ngSection(), nil, nil, []string{"no interface description"}},
		{"pcap record header cut", good[:len(good)-len(testRecords[2].data)-16+5], nil, ErrTruncated, []string{"record 3 header", "truncated"}},
		{"pcap record data cut", good[:len(good)-1], nil, ErrTruncated, []string{"record 3", "truncated"}},
		{"pcap record data missing", good[:len(good)-len(testRecords[2].data)], nil, ErrTruncated, []string{"record 3", "truncated"}},
		{"pcap caplen huge", hugeCaplen, nil, ErrCorrupt, []string{"claims 4294967280 bytes"}},
		{"pcap caplen beyond file", beyondFile, nil, ErrTruncated, []string{"record 1", "truncated"}},
		{"pcapng block cut", goodNg[:len(goodNg)-3], nil, ErrTruncated, []string{"block at byte", "truncated"}},
		{"pcapng block header cut", goodNg[:len(goodNg)-len(testRecords[2].data)-32-3+6], nil, ErrTruncated, []string{"truncated"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, tt.file)
			check := func(err, want error) {
				t.Helper()
				if want != nil && !errors.Is(err, want) {
					t.Fatalf("err = %v, want %v", err, want)
				}
				// A cut before the first record is no capture to report.
				if want != ErrTruncated && errors.Is(err, ErrTruncated) {
					t.Fatalf("err = %v is ErrTruncated", err)
				}
				if err == nil {
					t.Fatal("no error")
				}
				msg := err.Error()
				if strings.Contains(msg, "\n") || !strings.Contains(msg, path) {
					t.Errorf("message %q is not one line naming the file", msg)
				}
				for _, p := range tt.msgParts {
					if !strings.Contains(msg, p) {
						t.Errorf("message %q lacks %q", msg, p)
					}
				}
			}
			s, err := OpenFile(path)
			if tt.readErr == nil {
				check(err, tt.openErr)
				return
			}
			if err != nil {
				t.Fatalf("OpenFile: %v", err)
			}
			defer s.Close()
			for i := 0; ; i++ {
				_, _, _, err := s.Next()
				if err == nil {
					continue
				}
				if err == io.EOF {
					t.Fatalf("clean io.EOF after %d records", i)
				}
				check(err, tt.readErr)
				return
			}
		})
	}
	if _, err := OpenFile(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v, want os.ErrNotExist", err)
	}
}

func TestFileClose(t *testing.T) {
	s, err := OpenFile(writeFile(t, pcapBytes(t, true, layers.LinkTypeEthernet, testRecords)))
	if err != nil {
		t.Fatal(err)
	}
	checkClose(t, s)
}

// checkClose closes s twice, expecting no error either time (Close is
// idempotent), and then Next to fail with os.ErrClosed: the contract file
// and live sources share.
func checkClose(t *testing.T, s Source) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, _, _, err := s.Next(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Next after Close: err = %v, want os.ErrClosed", err)
	}
}

// TestLargeRecords crosses the read buffer: records larger than it are read
// into a separate buffer, and many small ones straddle buffer refills.
func TestLargeRecords(t *testing.T) {
	var recs []rec
	for i := range 3000 {
		n := 1 + i*7%1500
		if i%1000 == 999 {
			n = readBufSize + 12345
		}
		recs = append(recs, rec{bytes.Repeat([]byte{byte(i)}, n), int64(i) * 1e6, n})
	}
	for _, ng := range []bool{false, true} {
		var b []byte
		if ng {
			b = pcapngBytes(t, []layers.LinkType{layers.LinkTypeEthernet}, recs, func(int) int { return 0 })
		} else {
			b = pcapBytes(t, true, layers.LinkTypeEthernet, recs)
		}
		s, err := OpenFile(writeFile(t, b))
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range recs {
			data, ts, _, err := s.Next()
			if err != nil {
				t.Fatalf("pcapng=%v record %d: %v", ng, i, err)
			}
			if !bytes.Equal(data, r.data) || ts != r.ts {
				t.Fatalf("pcapng=%v record %d differs (len %d, want %d)", ng, i, len(data), len(r.data))
			}
		}
		if _, _, _, err := s.Next(); err != io.EOF {
			t.Errorf("pcapng=%v: err = %v, want io.EOF", ng, err)
		}
		s.Close()
	}
}

func BenchmarkFileNext(b *testing.B) {
	// 100k 66-byte frames (headers only, as a snaplen-limited capture).
	recs := make([]rec, 100000)
	frame := make([]byte, 66)
	for i := range recs {
		recs[i] = rec{frame, int64(i) * 1000, 1514}
	}
	for _, ng := range []bool{false, true} {
		name := "pcap"
		var data []byte
		if ng {
			name = "pcapng"
			data = pcapngBytes(b, []layers.LinkType{layers.LinkTypeEthernet}, recs, func(int) int { return 0 })
		} else {
			data = pcapBytes(b, true, layers.LinkTypeEthernet, recs)
		}
		path := writeFile(b, data)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)) / int64(len(recs)))
			s, err := OpenFile(path)
			if err != nil {
				b.Fatal(err)
			}
			defer func() { s.Close() }()
			b.ResetTimer()
			for range b.N {
				if _, _, _, err := s.Next(); err != nil {
					if err != io.EOF {
						b.Fatal(err)
					}
					s.Close()
					b.StopTimer()
					if s, err = OpenFile(path); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
			}
		})
	}
}
