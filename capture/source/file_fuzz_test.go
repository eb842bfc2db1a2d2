package source

import (
	"errors"
	"io"
	"testing"

	"github.com/google/gopacket/layers"
)

// FuzzOpenFile feeds arbitrary bytes to the file reader: it must never
// panic, never loop, and end every file with io.EOF or a wrapped error.
func FuzzOpenFile(f *testing.F) {
	f.Add(pcapBytes(f, false, layers.LinkTypeEthernet, testRecords))
	f.Add(pcapBytes(f, true, layers.LinkTypeRaw, testRecords))
	f.Add(pcapngBytes(f, []layers.LinkType{layers.LinkTypeEthernet, layers.LinkTypeEthernet}, testRecords, func(i int) int { return i % 2 }))
	f.Add(append(append(ngSection(), mkIDB(1, 0x80|20, 5)...), mkEPB(0, 1<<40, []byte{1, 2, 3}, 3)...))
	mixed := pcapngBytes(f, []layers.LinkType{layers.LinkTypeEthernet, layers.LinkTypeRaw, layers.LinkTypeIEEE802_11}, testRecords, func(i int) int { return i })
	f.Add(mixed)
	f.Add(mixed[:len(mixed)-5]) // cut inside the last block
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := OpenFile(writeFile(t, data))
		if err != nil {
			return
		}
		defer s.Close()
		// Each record consumes at least 8 bytes, so a file cannot hold more
		// records than this.
		for i := 0; i <= len(data)/8+1; i++ {
			d, _, wire, err := s.Next()
			if err != nil {
				if err != io.EOF && errors.Unwrap(err) == nil {
					t.Fatalf("unwrapped error %v", err)
				}
				if _, _, _, again := s.Next(); again != err {
					t.Fatalf("Next after %v returned %v", err, again)
				}
				return
			}
			if wire < len(d) {
				t.Fatalf("wire %d < captured %d", wire, len(d))
			}
		}
		t.Fatalf("more records than the file can hold")
	})
}
