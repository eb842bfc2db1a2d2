package source

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/gometro/go-metro/capture/packet"
	"github.com/google/gopacket/layers"
)

// blockEnds returns the offsets at which the file's header, records or
// blocks end: the places where a cut leaves a well-formed (shorter) file.
func blockEnds(t *testing.T, b []byte, ng bool) []int {
	t.Helper()
	if !ng {
		ends := []int{24}
		for o := 24; o < len(b); {
			o += 16 + int(binary.LittleEndian.Uint32(b[o+8:]))
			ends = append(ends, o)
		}
		return ends
	}
	var ends []int
	for o := 0; o < len(b); {
		o += int(binary.LittleEndian.Uint32(b[o+4:]))
		ends = append(ends, o)
	}
	return ends
}

// TestCutFile cuts capture files at every byte offset, the way a killed
// tcpdump or a full disk leaves them. A cut before the first record can be
// read fails to open (and is not ErrTruncated: there is nothing to report);
// any later cut returns every record before it, then ErrTruncated, and
// ErrTruncated again on the next call; a cut on a record boundary is a clean,
// shorter file.
func TestCutFile(t *testing.T) {
	files := []struct {
		name string
		b    []byte
		ng   bool
		// open: bytes OpenFile reads (a cut before is an open error);
		// first: index in blockEnds of the first record's end.
		open, first int
	}{
		{"pcap", pcapBytes(t, false, layers.LinkTypeEthernet, testRecords), false, 24, 1},
		{"pcap nanoseconds", pcapBytes(t, true, layers.LinkTypeRaw, testRecords), false, 24, 1},
		// Section header, interface 0 (read by OpenFile), interface 1.
		{"pcapng two interfaces", pcapngBytes(t, []layers.LinkType{layers.LinkTypeEthernet, layers.LinkTypeRaw}, testRecords, func(i int) int { return i % 2 }), true, -1, 3},
	}
	for _, f := range files {
		t.Run(f.name, func(t *testing.T) {
			ends := blockEnds(t, f.b, f.ng)
			if f.open < 0 {
				f.open = ends[1] // section header and first interface
			}
			isEnd := map[int]bool{}
			for _, e := range ends {
				isEnd[e] = true
			}
			for cut := 0; cut < len(f.b); cut++ {
				path := writeFile(t, f.b[:cut])
				s, err := OpenFile(path)
				if cut < f.open {
					if err == nil || errors.Is(err, ErrTruncated) {
						t.Fatalf("cut at %d: OpenFile err = %v, want an open error that is not ErrTruncated", cut, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("cut at %d: OpenFile: %v", cut, err)
				}
				var n int
				for {
					data, _, _, err := s.Next()
					if err != nil {
						var want error = ErrTruncated
						if isEnd[cut] {
							want = io.EOF
						}
						if !errors.Is(err, want) {
							t.Fatalf("cut at %d after %d records: err = %v, want %v", cut, n, err, want)
						}
						if _, _, _, again := s.Next(); !errors.Is(again, want) {
							t.Fatalf("cut at %d: second Next err = %v, want %v again", cut, again, want)
						}
						break
					}
					if n >= len(testRecords) || !bytes.Equal(data, testRecords[n].data) {
						t.Fatalf("cut at %d: record %d is %x", cut, n, data)
					}
					n++
				}
				s.Close()
				// Every record that ends at or before the cut was returned.
				var want int
				for _, e := range ends[f.first:] {
					if e <= cut {
						want++
					}
				}
				if n != want {
					t.Fatalf("cut at %d: %d records, want %d", cut, n, want)
				}
			}
		})
	}
}

// TestPcapngMixedLinkTypes: each record comes with its own interface's link
// type, the unsupported ones included (the decoder counts those).
func TestPcapngMixedLinkTypes(t *testing.T) {
	lts := []layers.LinkType{layers.LinkTypeEthernet, layers.LinkTypeRaw, layers.LinkTypeLinuxSLL, layers.LinkTypeIEEE802_11}
	recs := append(append([]rec(nil), testRecords...), testRecords...)
	iface := func(i int) int { return (i * 3) % len(lts) } // 0 3 2 1 0 3
	s, err := OpenFile(writeFile(t, pcapngBytes(t, lts, recs, iface)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.LinkType(); got != packet.LinkTypeEthernet {
		t.Errorf("LinkType before the first record = %d, want the first interface's", got)
	}
	for i := range recs {
		data, _, _, err := s.Next()
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if want := packet.LinkType(lts[iface(i)]); s.LinkType() != want || !bytes.Equal(data, recs[i].data) {
			t.Errorf("record %d: link type %d, want %d", i, s.LinkType(), want)
		}
	}
	if _, _, _, err := s.Next(); err != io.EOF {
		t.Errorf("end: %v", err)
	}
}
