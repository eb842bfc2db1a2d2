package capture

import (
	"errors"
	"fmt"
	"io"
	"net/netip"

	"github.com/gometro/go-metro/capture/packet"
	"github.com/gometro/go-metro/capture/source"
)

// inferScanLimit bounds how many packets InferLocal reads. The scan costs
// about 30 ns a packet, and a prefix is not enough: a capture can start with
// minutes of one IPv4 bulk flow before its first IPv6 connection.
const inferScanLimit = 50_000_000

// ErrNoTCPTraffic: a file without a single TCP segment the decoder reads
// (InferLocal has nothing to go on).
var ErrNoTCPTraffic = errors.New("no TCP traffic")

// InferLocal guesses which addresses belong to the host that made a capture
// file: per address family, the address that talks to the most distinct
// peers (the capturing host is an endpoint of every flow it sees). Ties go
// to the address that sent the most SYNs without ACK (it initiated the
// connections), then to the one that sent the most packets.
func InferLocal(path string) ([]netip.Addr, error) {
	src, err := source.OpenFile(path)
	if err != nil {
		return nil, err // names the file already
	}
	defer src.Close()

	type score struct {
		peers map[[16]byte]struct{}
		syns  int
		sent  int
	}
	scores := map[[16]byte]*score{}
	get := func(a [16]byte) *score {
		s := scores[a]
		if s == nil {
			s = &score{peers: map[[16]byte]struct{}{}}
			scores[a] = s
		}
		return s
	}
	var p packet.Packet
	for n := 0; n < inferScanLimit; n++ {
		data, _, wireLen, err := src.Next()
		if errors.Is(err, io.EOF) || errors.Is(err, source.ErrTruncated) {
			break // the engine reports the cut when it reaches it
		}
		if err != nil {
			return nil, err // names the file already
		}
		if p.Decode(src.LinkType(), data, wireLen) != packet.OK {
			continue
		}
		s, d := get(p.Src), get(p.Dst)
		s.peers[p.Dst] = struct{}{}
		d.peers[p.Src] = struct{}{}
		s.sent++
		if p.SYN() && !p.ACK() {
			s.syns++
		}
	}
	var best [2]*score
	var bestAddr [2][16]byte
	for a, s := range scores {
		fam := 0
		if !netip.AddrFrom16(a).Is4In6() {
			fam = 1
		}
		b := best[fam]
		better := b == nil ||
			len(s.peers) > len(b.peers) ||
			len(s.peers) == len(b.peers) && (s.syns > b.syns ||
				s.syns == b.syns && (s.sent > b.sent ||
					s.sent == b.sent && string(a[:]) < string(bestAddr[fam][:])))
		if better {
			best[fam], bestAddr[fam] = s, a
		}
	}
	var out []netip.Addr
	for fam := range best {
		if best[fam] != nil {
			out = append(out, netip.AddrFrom16(bestAddr[fam]).Unmap())
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("capture: %s: %w to infer the local address from; pass it explicitly", path, ErrNoTCPTraffic)
	}
	return out, nil
}
