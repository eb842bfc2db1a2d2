// Package dns reads DNS answers (RFC 1035) from captured packets, without
// allocating, so that the engine can name a remote address by the name a
// host asked for, and keeps what it learnt in a cache of fixed size.
//
// Parse reads the header, the question and the answer section of a
// response, follows the CNAME chain from the question's name, and returns
// the A and AAAA addresses at its end, each with its TTL, under the
// question's name (the name that was asked for, not a CNAME target). The
// authority and additional sections are not read. Every length and
// compression pointer is checked before it is followed: the bytes come
// from the network and are not trusted.
package dns

// Limits of what Parse reads. A message beyond them is not malformed: the
// records past MaxRecords, the addresses past MaxAddrs and the links past
// MaxChain are ignored.
const (
	// MaxName is the longest name in text form: 255 bytes in wire form
	// (RFC 1035 3.1) less the first length byte and the root label.
	MaxName = 253
	// MaxAddrs bounds the addresses kept per answer.
	MaxAddrs = 32
	// MaxRecords bounds the answer records read per message.
	MaxRecords = 64
	// MaxChain bounds the CNAME links followed from the question's name.
	MaxChain = 8

	headerLen = 12
	// maxNameWire is a name's longest wire form, RFC 1035 3.1.
	maxNameWire = 255
	// maxNameSteps bounds the labels and pointers walked in one name, so
	// that a chain of pointers costs a bounded number of steps whatever
	// the message.
	maxNameSteps = 128
)

// Record types and the class read (RFC 1035 3.2.2, 3.2.4; RFC 3596 2.1).
const (
	typeA     = 1
	typeCNAME = 5
	typeAAAA  = 28
	classIN   = 1
)

// Result is what Parse made of a message.
type Result uint8

const (
	// Named: a response that gives the question's name addresses; the
	// Answer holds them.
	Named Result = iota
	// Unnamed: a well-formed message that names no address: a query, an
	// opcode other than QUERY, an error RCODE, a truncated (TC) response
	// (RFC 2181 9: not to be cached), a question of a class other than
	// IN, no A or AAAA record on the chain from the question, or a
	// question name that is not a host name (bytes other than letters,
	// digits, '-' and '_').
	Unnamed
	// Malformed: a length, count, pointer or record that does not fit the
	// message.
	Malformed
)

func (r Result) String() string {
	switch r {
	case Named:
		return "named"
	case Unnamed:
		return "unnamed"
	case Malformed:
		return "malformed"
	}
	return "unknown"
}

// Answer is what Parse learnt from one message. It is meant to be reused:
// Parse overwrites it, and allocates nothing.
type Answer struct {
	// Addrs are the first N addresses the question's name resolved to,
	// IPv4 in IPv4-mapped form, and TTLs their times to live in seconds:
	// the least TTL of the address record and of the CNAME links that lead
	// to it (RFC 2181 8: a TTL with the top bit set counts as 0).
	Addrs [MaxAddrs][16]byte
	TTLs  [MaxAddrs]uint32
	N     int

	name    [MaxName]byte
	nameLen int

	records [MaxRecords]record // the answer section's A, AAAA and CNAME records
	chain   [MaxChain + 1]link // the question's name, then each CNAME target
}

// record is an answer record Parse may use.
type record struct {
	owner, rdata int // offsets of the owner name and of the RDATA
	hash         uint64
	typ          uint16
	ttl          uint32
}

// link is a name on the CNAME chain.
type link struct {
	off  int // offset of the name in the message
	hash uint64
	ttl  uint32 // least TTL of the links so far
}

// Name is the question's name of the last Named message: lower case, the
// labels joined by dots, without the root's trailing dot.
func (a *Answer) Name() []byte { return a.name[:a.nameLen] }

// Parse reads a DNS message (RFC 1035 4.1) into a.
func (a *Answer) Parse(msg []byte) Result {
	a.N, a.nameLen = 0, 0
	if len(msg) < headerLen {
		return Malformed
	}
	// Header, RFC 1035 4.1.1: ID, flags (QR, opcode, AA, TC, RD, RA, Z,
	// RCODE), then the four section counts.
	flags := be16(msg[2:])
	qdCount, anCount := int(be16(msg[4:])), int(be16(msg[6:]))
	const qr, tc = 0x8000, 0x0200
	opcode, rcode := flags>>11&0xf, flags&0xf
	if flags&qr == 0 || opcode != 0 {
		return Unnamed // a query, or not a standard query's response
	}
	if qdCount != 1 {
		// Every response to a standard query repeats its one question;
		// 0 comes with some errors (FORMERR, NOTIMP).
		return Unnamed
	}
	// Question, RFC 1035 4.1.2: QNAME, QTYPE, QCLASS.
	off, ok := skipName(msg, headerLen)
	if !ok || off+4 > len(msg) {
		return Malformed
	}
	qclass := be16(msg[off+2:])
	off += 4
	if rcode != 0 || flags&tc != 0 || qclass != classIN {
		return Unnamed
	}
	// Answer section, RFC 1035 4.1.3: NAME, TYPE, CLASS, TTL, RDLENGTH,
	// RDATA.
	n := 0
	for i := 0; i < anCount && i < MaxRecords; i++ {
		owner := off
		if off, ok = skipName(msg, off); !ok || off+10 > len(msg) {
			return Malformed
		}
		typ, class := be16(msg[off:]), be16(msg[off+2:])
		ttl := be32(msg[off+4:])
		rdLen := int(be16(msg[off+8:]))
		rdata := off + 10
		off = rdata + rdLen
		if off > len(msg) {
			return Malformed
		}
		if ttl&0x80000000 != 0 {
			ttl = 0 // RFC 2181 8
		}
		switch {
		case class != classIN:
			continue
		case typ == typeA && rdLen != 4, typ == typeAAAA && rdLen != 16:
			return Malformed
		case typ == typeCNAME:
			// The target may be compressed (RFC 1035 4.1.4) and must
			// fill the RDATA exactly.
			if end, ok := skipName(msg, rdata); !ok || end != off {
				return Malformed
			}
		case typ != typeA && typ != typeAAAA:
			continue
		}
		a.records[n] = record{owner: owner, rdata: rdata, hash: hashName(msg, owner), typ: typ, ttl: ttl}
		n++
	}
	if !a.follow(msg, n) {
		return Unnamed
	}
	if !a.setName(msg) {
		a.N = 0
		return Unnamed
	}
	return Named
}

// follow walks the CNAME chain from the question's name through the first
// n records, then gathers the addresses of every name on it. It reports
// whether there is one.
func (a *Answer) follow(msg []byte, n int) bool {
	a.chain[0] = link{off: headerLen, hash: hashName(msg, headerLen), ttl: ^uint32(0)}
	links := 1
	// Each round looks for the CNAME of the chain's last name (RFC 1034
	// 3.6.2: a name with a CNAME has no other data); MaxChain bounds a
	// loop of aliases.
	for links <= MaxChain {
		last := &a.chain[links-1]
		next := -1
		for i := range n {
			r := &a.records[i]
			if r.typ == typeCNAME && r.hash == last.hash && sameName(msg, r.owner, last.off) {
				next = i
				break
			}
		}
		if next < 0 {
			break
		}
		r := &a.records[next]
		a.chain[links] = link{off: r.rdata, hash: hashName(msg, r.rdata), ttl: min(last.ttl, r.ttl)}
		links++
	}
	for i := 0; i < n && a.N < MaxAddrs; i++ {
		r := &a.records[i]
		if r.typ == typeCNAME {
			continue
		}
		for j := range links {
			l := &a.chain[j]
			if r.hash != l.hash || !sameName(msg, r.owner, l.off) {
				continue
			}
			if r.typ == typeA {
				a.Addrs[a.N] = [16]byte{10: 0xff, 11: 0xff, 12: msg[r.rdata], 13: msg[r.rdata+1], 14: msg[r.rdata+2], 15: msg[r.rdata+3]}
			} else {
				a.Addrs[a.N] = [16]byte(msg[r.rdata : r.rdata+16])
			}
			a.TTLs[a.N] = min(l.ttl, r.ttl)
			a.N++
			break
		}
	}
	return a.N > 0
}

// setName writes the question's name, in lower case, to a.name. It reports
// false for the root and for a name with a byte a host name has no use for
// (RFC 952 and 1123: letters, digits and '-'; '_' too, which real names
// carry), which would not make a tag.
func (a *Answer) setName(msg []byte) bool {
	n := 0
	ok := walkName(msg, headerLen, func(label []byte) bool {
		if n > 0 {
			if n == MaxName {
				return false
			}
			a.name[n] = '.'
			n++
		}
		if n+len(label) > MaxName {
			return false
		}
		for _, c := range label {
			switch {
			case 'A' <= c && c <= 'Z':
				c += 'a' - 'A'
			case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
			default:
				return false
			}
			a.name[n] = c
			n++
		}
		return true
	})
	a.nameLen = n
	return ok && n > 0
}

// skipName checks the name at msg[off] (RFC 1035 3.1 and 4.1.4) and returns
// the offset just past it where it is written: after its terminating zero
// byte, or after the pointer that ends it. A pointer must point before
// itself, to a prior occurrence, so that no name can loop; the name must
// fit the message and maxNameWire bytes.
func skipName(msg []byte, off int) (end int, ok bool) {
	end = -1
	wire := 0
	for range maxNameSteps {
		if off >= len(msg) {
			return 0, false
		}
		c := int(msg[off])
		switch c & 0xc0 {
		case 0x00:
			wire += c + 1
			if wire > maxNameWire || off+1+c > len(msg) {
				return 0, false
			}
			if c == 0 {
				if end < 0 {
					end = off + 1
				}
				return end, true
			}
			off += 1 + c
		case 0xc0:
			if off+2 > len(msg) {
				return 0, false
			}
			target := (c&0x3f)<<8 | int(msg[off+1])
			if target >= off || target < headerLen {
				return 0, false
			}
			if end < 0 {
				end = off + 2
			}
			off = target
		default:
			// 0x40 and 0x80: extended label types (RFC 6891 5, RFC 2673,
			// obsolete), which nobody sends.
			return 0, false
		}
	}
	return 0, false
}

// walkName calls fn with each label of the name at msg[off], which
// skipName has checked, until fn returns false; it reports whether every
// label was walked.
func walkName(msg []byte, off int, fn func(label []byte) bool) bool {
	for range maxNameSteps {
		if off >= len(msg) {
			return false
		}
		c := int(msg[off])
		switch {
		case c == 0:
			return true
		case c&0xc0 == 0xc0:
			if off+2 > len(msg) {
				return false
			}
			off = (c&0x3f)<<8 | int(msg[off+1])
		case off+1+c <= len(msg):
			if !fn(msg[off+1 : off+1+c]) {
				return false
			}
			off += 1 + c
		default:
			return false
		}
	}
	return false
}

// nextLabel returns the label of the checked name at msg[off], after any
// pointers, and the offset of the label after it. The root label is empty.
func nextLabel(msg []byte, off int) (label []byte, next int) {
	for range maxNameSteps {
		if off >= len(msg) {
			return nil, -1
		}
		c := int(msg[off])
		if c&0xc0 == 0xc0 {
			if off+2 > len(msg) {
				return nil, -1
			}
			off = (c&0x3f)<<8 | int(msg[off+1])
			continue
		}
		if off+1+c > len(msg) {
			return nil, -1
		}
		return msg[off+1 : off+1+c], off + 1 + c
	}
	return nil, -1
}

// sameName reports whether the checked names at msg[x] and msg[y] are equal,
// comparing ASCII letters without regard to case (RFC 1035 2.3.3, RFC 4343).
func sameName(msg []byte, x, y int) bool {
	for range maxNameSteps {
		lx, nx := nextLabel(msg, x)
		ly, ny := nextLabel(msg, y)
		if nx < 0 || ny < 0 || len(lx) != len(ly) {
			return false
		}
		for i := range lx {
			if lower(lx[i]) != lower(ly[i]) {
				return false
			}
		}
		if len(lx) == 0 {
			return true
		}
		x, y = nx, ny
	}
	return false
}

// hashName hashes the checked name at msg[off] as sameName compares it
// (FNV-1a over the lower-cased labels and their lengths), so that names
// whose hashes differ need no comparison. Equal hashes are compared in
// full: a collision costs a comparison, never a wrong match.
func hashName(msg []byte, off int) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	for range maxNameSteps {
		label, next := nextLabel(msg, off)
		if next < 0 {
			break
		}
		h = (h ^ uint64(len(label))) * prime
		for _, c := range label {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			h = (h ^ uint64(c)) * prime
		}
		if len(label) == 0 {
			break
		}
		off = next
	}
	return h
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func be16(b []byte) uint16 { return uint16(b[0])<<8 | uint16(b[1]) }

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
