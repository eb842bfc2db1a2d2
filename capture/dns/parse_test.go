package dns

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// Test messages are built with x/net's dnsmessage (with name compression,
// as servers send them), so that the tests do not share the parser's idea
// of where fields live; what it cannot build is patched by hand.

type rr struct {
	name string
	typ  dnsmessage.Type
	ttl  uint32
	data string // an address for A and AAAA, a name for CNAME
}

type msgOpts struct {
	rcode    dnsmessage.RCode
	query    bool // QR 0
	trunc    bool
	class    dnsmessage.Class // of the question; 0: IN
	qtype    dnsmessage.Type  // 0: A
	compress bool
}

func build(tb testing.TB, q string, o msgOpts, answers ...rr) []byte {
	tb.Helper()
	class := o.class
	if class == 0 {
		class = dnsmessage.ClassINET
	}
	qtype := o.qtype
	if qtype == 0 {
		qtype = dnsmessage.TypeA
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 0x1234, Response: !o.query, RCode: o.rcode, Truncated: o.trunc, RecursionDesired: true})
	if o.compress {
		b.EnableCompression()
	}
	must := func(err error) {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
	}
	must(b.StartQuestions())
	must(b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(q), Type: qtype, Class: class}))
	must(b.StartAnswers())
	for _, a := range answers {
		h := dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName(a.name), Class: dnsmessage.ClassINET, TTL: a.ttl}
		switch a.typ {
		case dnsmessage.TypeA:
			must(b.AResource(h, dnsmessage.AResource{A: netip.MustParseAddr(a.data).As4()}))
		case dnsmessage.TypeAAAA:
			must(b.AAAAResource(h, dnsmessage.AAAAResource{AAAA: netip.MustParseAddr(a.data).As16()}))
		case dnsmessage.TypeCNAME:
			must(b.CNAMEResource(h, dnsmessage.CNAMEResource{CNAME: dnsmessage.MustNewName(a.data)}))
		case dnsmessage.TypeTXT:
			must(b.TXTResource(h, dnsmessage.TXTResource{TXT: []string{a.data}}))
		}
	}
	msg, err := b.Finish()
	must(err)
	return msg
}

func a4(name string, ttl uint32, addr string) rr {
	return rr{name: name, typ: dnsmessage.TypeA, ttl: ttl, data: addr}
}
func a6(name string, ttl uint32, addr string) rr {
	return rr{name: name, typ: dnsmessage.TypeAAAA, ttl: ttl, data: addr}
}
func cname(name string, ttl uint32, target string) rr {
	return rr{name: name, typ: dnsmessage.TypeCNAME, ttl: ttl, data: target}
}

// got is a Named answer as address -> TTL.
func got(a *Answer) map[netip.Addr]uint32 {
	m := map[netip.Addr]uint32{}
	for i := range a.N {
		m[netip.AddrFrom16(a.Addrs[i]).Unmap()] = a.TTLs[i]
	}
	return m
}

func TestParse(t *testing.T) {
	c := msgOpts{compress: true}
	type want = map[string]uint32
	chain := []rr{cname("www.Example.org.", 300, "edge.cdn.net."), cname("edge.cdn.net.", 60, "e1.cdn.net."),
		a4("e1.cdn.net.", 120, "192.0.2.10"), a4("e1.cdn.net.", 20, "192.0.2.11")}
	many := []rr{}
	for i := range MaxAddrs + 5 {
		many = append(many, a4("big.example.", 30, netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}).String()))
	}
	cases := []struct {
		name   string
		msg    []byte
		res    Result
		qname  string
		addrs  want
		noSame bool // the addresses differ from what build's order gives
	}{
		{name: "a", msg: build(t, "web.example.", c, a4("web.example.", 300, "192.0.2.1")),
			res: Named, qname: "web.example", addrs: want{"192.0.2.1": 300}},
		{name: "aaaa", msg: build(t, "v6.example.", msgOpts{qtype: dnsmessage.TypeAAAA, compress: true}, a6("v6.example.", 60, "2001:db8::7")),
			res: Named, qname: "v6.example", addrs: want{"2001:db8::7": 60}},
		{name: "uncompressed", msg: build(t, "web.example.", msgOpts{}, a4("web.example.", 300, "192.0.2.1")),
			res: Named, qname: "web.example", addrs: want{"192.0.2.1": 300}},
		{name: "cname chain: the question's name, the least ttl on the way", msg: build(t, "www.Example.org.", c, chain...),
			res: Named, qname: "www.example.org", addrs: want{"192.0.2.10": 60, "192.0.2.11": 20}},
		{name: "cname chain out of order", msg: build(t, "www.example.org.", c, chain[3], chain[1], chain[2], chain[0]),
			res: Named, qname: "www.example.org", addrs: want{"192.0.2.10": 60, "192.0.2.11": 20}},
		{name: "case differs between question and records (0x20)", msg: build(t, "WwW.eXaMpLe.oRg.", c, chain...),
			res: Named, qname: "www.example.org", addrs: want{"192.0.2.10": 60, "192.0.2.11": 20}},
		{name: "records of other names are not the question's", msg: build(t, "web.example.", c,
			a4("other.example.", 300, "192.0.2.9"), a4("web.example.", 30, "192.0.2.1"), cname("x.example.", 5, "web.example.")),
			res: Named, qname: "web.example", addrs: want{"192.0.2.1": 30}},
		{name: "only other names", msg: build(t, "web.example.", c, a4("other.example.", 300, "192.0.2.9")), res: Unnamed},
		{name: "a cname to nowhere", msg: build(t, "web.example.", c, cname("web.example.", 30, "gone.example.")), res: Unnamed},
		{name: "a loop of cnames", msg: build(t, "a.example.", c, cname("a.example.", 30, "b.example."), cname("b.example.", 30, "a.example."),
			a4("b.example.", 30, "192.0.2.3")), res: Named, qname: "a.example", addrs: want{"192.0.2.3": 30}},
		{name: "txt records are skipped", msg: build(t, "web.example.", c, rr{name: "web.example.", typ: dnsmessage.TypeTXT, ttl: 5, data: "v=spf1"},
			a4("web.example.", 9, "192.0.2.1")), res: Named, qname: "web.example", addrs: want{"192.0.2.1": 9}},
		{name: "at most MaxAddrs addresses", msg: build(t, "big.example.", c, many...), res: Named, qname: "big.example"},
		{name: "nxdomain", msg: build(t, "web.example.", msgOpts{rcode: dnsmessage.RCodeNameError}), res: Unnamed},
		{name: "a query", msg: build(t, "web.example.", msgOpts{query: true}), res: Unnamed},
		{name: "truncated (TC)", msg: build(t, "web.example.", msgOpts{trunc: true}, a4("web.example.", 300, "192.0.2.1")), res: Unnamed},
		{name: "class CHAOS", msg: build(t, "version.bind.", msgOpts{class: dnsmessage.ClassCHAOS}), res: Unnamed},
		{name: "no answer", msg: build(t, "web.example.", c), res: Unnamed},
		{name: "a name that is no host name", msg: build(t, "we b.example.", c, a4("we b.example.", 300, "192.0.2.1")), res: Unnamed},
		{name: "underscore and digits", msg: build(t, "_svc.a-1.example.", c, a4("_svc.a-1.example.", 300, "192.0.2.1")),
			res: Named, qname: "_svc.a-1.example", addrs: want{"192.0.2.1": 300}},
		{name: "header only", msg: make([]byte, 11), res: Malformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var a Answer
			if res := a.Parse(tc.msg); res != tc.res {
				t.Fatalf("Parse = %v, want %v", res, tc.res)
			}
			if tc.res != Named {
				return
			}
			if string(a.Name()) != tc.qname {
				t.Errorf("name %q, want %q", a.Name(), tc.qname)
			}
			if tc.addrs == nil {
				if a.N != MaxAddrs {
					t.Errorf("%d addresses, want %d", a.N, MaxAddrs)
				}
				return
			}
			g := got(&a)
			if len(g) != len(tc.addrs) || a.N != len(tc.addrs) {
				t.Fatalf("addresses %v, want %v", g, tc.addrs)
			}
			for s, ttl := range tc.addrs {
				if g[netip.MustParseAddr(s)] != ttl {
					t.Errorf("addresses %v, want %v", g, tc.addrs)
				}
			}
		})
	}
}

// TestParseMalformed: every cut of a response inside its header, question
// or answers is malformed, and so are the hand-made corruptions; none is
// ever Named.
func TestParseMalformed(t *testing.T) {
	msg := build(t, "www.example.org.", msgOpts{compress: true},
		cname("www.example.org.", 300, "edge.example.org."), a4("edge.example.org.", 60, "192.0.2.10"))
	var a Answer
	for cut := range len(msg) {
		if res := a.Parse(msg[:cut]); res != Malformed {
			t.Fatalf("cut at %d of %d: %v, want Malformed", cut, len(msg), res)
		}
	}
	if a.Parse(msg) != Named {
		t.Fatal("the whole message does not parse")
	}
	const q = 12 // the question's name
	qEnd := q + len("\x03www\x07example\x03org\x00")
	first := qEnd + 4 // the first answer's owner
	ptr := func(to int) []byte { return []byte{0xc0 | byte(to>>8), byte(to)} }
	cases := []struct {
		name string
		msg  []byte
	}{
		{"pointer to itself", patch(msg, func(b []byte) { copy(b[first:], ptr(first)) })},
		{"pointer forward", patch(msg, func(b []byte) { copy(b[first:], ptr(first+4)) })},
		{"pointer into the header", patch(msg, func(b []byte) { copy(b[first:], ptr(4)) })},
		{"pointer past the end", patch(msg, func(b []byte) { copy(b[first:], ptr(0x3fff)) })},
		{"extended label type", patch(msg, func(b []byte) { b[q] = 0x41 })},
		{"label past the end", patch(msg, func(b []byte) { b[q] = 63 })[:q+20]},
		{"a count past the records", patch(msg, func(b []byte) { binary.BigEndian.PutUint16(b[6:], 3) })},
		{"rdlength past the end", patch(msg, func(b []byte) { binary.BigEndian.PutUint16(b[len(b)-6:], 5) })},
		{"an A record of 5 bytes", append(patch(msg, func(b []byte) { binary.BigEndian.PutUint16(b[len(b)-6:], 5) }), 0)},
		{"a cname shorter than its rdata", func() []byte {
			// The CNAME's RDATA (a pointer to "example.org") gets one
			// more byte, which the name does not use.
			rdl := first + 2 + 2 + 2 + 4 // owner pointer, type, class, ttl
			b := patch(msg, func(b []byte) { binary.BigEndian.PutUint16(b[rdl:], binary.BigEndian.Uint16(b[rdl:])+1) })
			end := rdl + 2 + int(binary.BigEndian.Uint16(msg[rdl:]))
			return append(b[:end:end], append([]byte{0}, msg[end:]...)...)
		}()},
		{"a name longer than 255 bytes", func() []byte {
			var name []byte
			for range 5 {
				name = append(name, 63)
				name = append(name, bytes.Repeat([]byte{'a'}, 63)...)
			}
			b := append([]byte(nil), msg[:q]...)
			b = append(b, name...)
			return append(b, msg[qEnd-1:]...)
		}()},
	}
	for _, tc := range cases {
		if res := a.Parse(tc.msg); res != Malformed {
			t.Errorf("%s: %v, want Malformed", tc.name, res)
		}
	}
}

// TestParseLongestName: a name of 255 bytes in wire form is valid, and its
// text fills MaxName.
func TestParseLongestName(t *testing.T) {
	label := string(bytes.Repeat([]byte{'a'}, 63))
	name := label + "." + label + "." + label + "." + string(bytes.Repeat([]byte{'b'}, 61)) + "."
	msg := build(t, name, msgOpts{compress: true}, a4(name, 7, "192.0.2.1"))
	var a Answer
	if res := a.Parse(msg); res != Named || len(a.Name()) != MaxName {
		t.Fatalf("Parse = %v, name of %d bytes; want Named, %d", res, len(a.Name()), MaxName)
	}
}

func TestParseTTL(t *testing.T) {
	msg := build(t, "web.example.", msgOpts{compress: true}, a4("web.example.", 0x80000005, "192.0.2.1"))
	var a Answer
	if a.Parse(msg) != Named || a.TTLs[0] != 0 {
		t.Fatalf("a TTL with the top bit set: %d, want 0 (RFC 2181 8)", a.TTLs[0])
	}
}

func TestParseAllocs(t *testing.T) {
	msgs := [][]byte{
		build(t, "www.example.org.", msgOpts{compress: true}, cname("www.example.org.", 300, "edge.example.org."), a4("edge.example.org.", 60, "192.0.2.10")),
		build(t, "v6.example.", msgOpts{compress: true}, a6("v6.example.", 60, "2001:db8::7")),
		build(t, "web.example.", msgOpts{rcode: dnsmessage.RCodeNameError}),
		[]byte("garbage that is not a message"),
	}
	var a Answer
	if n := testing.AllocsPerRun(100, func() {
		for _, m := range msgs {
			a.Parse(m)
		}
	}); n != 0 {
		t.Fatalf("Parse allocates %v times per run", n)
	}
}

func TestWholeTCP(t *testing.T) {
	m := build(t, "web.example.", msgOpts{compress: true}, a4("web.example.", 300, "192.0.2.1"))
	framed := binary.BigEndian.AppendUint16(nil, uint16(len(m)))
	framed = append(framed, m...)
	two := append(append([]byte(nil), framed...), framed...)
	for _, tc := range []struct {
		name    string
		payload []byte
		whole   bool
		n       int
	}{
		{"one", framed, true, 1},
		{"two", two, true, 2},
		{"empty", nil, false, 0},
		{"first part of a split answer", framed[:20], false, 0},
		{"rest of a split answer", framed[20:], false, 0},
		{"one and a half", two[:len(framed)+9], false, 0},
		{"one length byte", framed[:1], false, 0},
	} {
		if got := WholeTCP(tc.payload); got != tc.whole {
			t.Errorf("%s: WholeTCP = %v, want %v", tc.name, got, tc.whole)
			continue
		}
		n := 0
		for p := tc.payload; tc.whole && len(p) > 0; n++ {
			var msg []byte
			msg, p = NextTCP(p)
			if !bytes.Equal(msg, m) {
				t.Errorf("%s: message %d is %q", tc.name, n, msg)
			}
		}
		if n != tc.n {
			t.Errorf("%s: %d messages, want %d", tc.name, n, tc.n)
		}
	}
}

func patch(b []byte, f func(b []byte)) []byte {
	c := append([]byte(nil), b...)
	f(c)
	return c
}

// BenchmarkParse: a one-address answer, and a CDN's (a CNAME chain of two
// links to four addresses), as resolvers send them.
func BenchmarkParse(b *testing.B) {
	for _, m := range []struct {
		name string
		msg  []byte
	}{
		{"a", build(b, "web.example.", msgOpts{compress: true}, a4("web.example.", 300, "192.0.2.1"))},
		{"cdn", build(b, "www.example.org.", msgOpts{compress: true}, cname("www.example.org.", 300, "edge.cdn.net."),
			cname("edge.cdn.net.", 60, "e1.cdn.net."), a4("e1.cdn.net.", 20, "192.0.2.10"), a4("e1.cdn.net.", 20, "192.0.2.11"),
			a4("e1.cdn.net.", 20, "192.0.2.12"), a4("e1.cdn.net.", 20, "192.0.2.13"))},
	} {
		b.Run(m.name, func(b *testing.B) {
			b.ReportAllocs()
			var a Answer
			for range b.N {
				if a.Parse(m.msg) != Named {
					b.Fatal("not named")
				}
			}
		})
	}
}
