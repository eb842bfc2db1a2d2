package source

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/google/gopacket/layers"
)

// TestFileInterface: a file source tells which interface each record was
// captured on where the file says: a pcapng record's interface (its number
// plus one), a Linux cooked v2 header's ifindex; a classic pcap record of
// another link type, nothing (0).
func TestFileInterface(t *testing.T) {
	sll2 := func(ifindex byte) rec {
		// protocol(2) reserved(2) ifindex(4) hatype(2) pkttype(1) halen(1) addr(8), then IPv4.
		h := []byte{0x08, 0x00, 0, 0, 0, 0, 0, ifindex, 0, 1, 4, 6, 2, 0, 0, 0, 0, 1, 0, 0}
		return rec{append(h, bytes.Repeat([]byte{0x45}, 20)...), 1700000000_000000000 + int64(ifindex), 40}
	}
	iface := func(i int) int { return (i + 2) % 3 } // 2 0 1
	tests := []struct {
		name string
		file []byte
		want []int
	}{
		{"pcap", pcapBytes(t, false, layers.LinkTypeEthernet, testRecords), []int{0, 0, 0}},
		{"pcap, Linux cooked v2", pcapSLL2(sll2(7), sll2(3)), []int{7, 3}},
		{"pcapng, three interfaces", pcapngBytes(t, []layers.LinkType{layers.LinkTypeRaw, layers.LinkTypeRaw, layers.LinkTypeEthernet}, testRecords, iface),
			[]int{3, 1, 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := OpenFile(writeFile(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for i, want := range tc.want {
				if _, _, _, err := s.Next(); err != nil {
					t.Fatalf("record %d: %v", i, err)
				}
				if got := s.Interface(); got != want {
					t.Errorf("record %d: interface %d, want %d", i, got, want)
				}
			}
		})
	}
}

// pcapSLL2 is a little-endian µs pcap file of link type LINUX_SLL2 (276),
// which gopacket's writer cannot name.
func pcapSLL2(recs ...rec) []byte {
	le := binary.LittleEndian
	b := le.AppendUint32(nil, 0xa1b2c3d4)
	b = le.AppendUint16(b, 2)
	b = le.AppendUint16(b, 4)
	b = le.AppendUint64(b, 0) // thiszone, sigfigs
	b = le.AppendUint32(b, 65535)
	b = le.AppendUint32(b, 276)
	for _, r := range recs {
		b = le.AppendUint32(b, uint32(r.ts/1e9))
		b = le.AppendUint32(b, uint32(r.ts%1e9/1e3))
		b = le.AppendUint32(b, uint32(len(r.data)))
		b = le.AppendUint32(b, uint32(r.wire))
		b = append(b, r.data...)
	}
	return b
}
