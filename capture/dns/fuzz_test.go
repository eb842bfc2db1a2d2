package dns

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// FuzzParse feeds arbitrary bytes to Parse, as a capture of UDP or TCP port
// 53 may, and checks what must hold whatever they are: no panic, no
// allocation, a Named answer with 1 to MaxAddrs addresses under a host
// name of at most MaxName bytes, and agreement with x/net's dnsmessage on
// every message Parse names: the same question, a response with RCODE 0,
// and addresses each of which is an A or AAAA record of the answer section.
// The seeds (the messages of the unit tests, well-formed and broken) run
// with `go test`.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		var a Answer
		var res Result
		if n := testing.AllocsPerRun(1, func() { res = a.Parse(msg) }); n != 0 {
			t.Fatalf("Parse allocates %v times", n)
		}
		switch res {
		case Unnamed, Malformed:
			if a.N != 0 {
				t.Fatalf("%v with %d addresses", res, a.N)
			}
			return
		case Named:
		default:
			t.Fatalf("result %d", res)
		}
		name := string(a.Name())
		if a.N < 1 || a.N > MaxAddrs || name == "" || len(name) > MaxName ||
			strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789-_.") != "" {
			t.Fatalf("named %q with %d addresses", name, a.N)
		}
		checkWithDNSMessage(t, msg, &a)
	})
}

// checkWithDNSMessage checks a Named answer against dnsmessage's reading of
// the same bytes. Two differences are accepted: dnsmessage follows at most
// 10 compression pointers per name, Parse more (its names are still bounded
// by 255 bytes and by pointers that point back); and dnsmessage rejects a
// label holding a dot (golang/go#56246), which the wire format allows and
// Parse follows in the answers' names (the question's name, the one it
// reports, must be a host name).
func checkWithDNSMessage(t *testing.T, msg []byte, a *Answer) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		t.Fatalf("we name addresses, dnsmessage cannot read the header: %v", err)
	}
	if !h.Response || h.RCode != dnsmessage.RCodeSuccess || h.Truncated || h.OpCode != 0 {
		t.Fatalf("we name addresses from %+v", h)
	}
	q, err := p.AllQuestions()
	if accepted(err) {
		return
	}
	if err != nil || len(q) != 1 || q[0].Class != dnsmessage.ClassINET {
		t.Fatalf("we name addresses, dnsmessage reads the questions as %v, %v", q, err)
	}
	if got := strings.TrimSuffix(strings.ToLower(q[0].Name.String()), "."); got != string(a.Name()) {
		t.Fatalf("we name %q, the question is %q", a.Name(), got)
	}
	records := map[[16]byte]bool{}
	for i := 0; i < MaxRecords; i++ {
		rh, err := p.AnswerHeader()
		if errors.Is(err, dnsmessage.ErrSectionDone) {
			break
		}
		if accepted(err) {
			return
		}
		if err != nil {
			t.Fatalf("we name addresses, dnsmessage reads answer %d as %v", i, err)
		}
		switch {
		case rh.Class == dnsmessage.ClassINET && rh.Type == dnsmessage.TypeA:
			r, err := p.AResource()
			if err != nil {
				t.Fatalf("answer %d: %v", i, err)
			}
			records[netip.AddrFrom4(r.A).As16()] = true
		case rh.Class == dnsmessage.ClassINET && rh.Type == dnsmessage.TypeAAAA:
			r, err := p.AAAAResource()
			if err != nil {
				t.Fatalf("answer %d: %v", i, err)
			}
			records[r.AAAA] = true
		case rh.Class == dnsmessage.ClassINET && rh.Type == dnsmessage.TypeCNAME:
			if _, err := p.CNAMEResource(); accepted(err) {
				return
			} else if err != nil {
				t.Fatalf("answer %d: %v", i, err)
			}
		default:
			if err := p.SkipAnswer(); err != nil {
				t.Fatalf("answer %d: %v", i, err)
			}
		}
	}
	for i := range a.N {
		if !records[a.Addrs[i]] {
			t.Fatalf("we name %v, which no answer record holds (%v)", netip.AddrFrom16(a.Addrs[i]), records)
		}
	}
}

// accepted reports whether err is one of the accepted differences.
func accepted(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "too many pointers") || strings.Contains(err.Error(), "invalid dns name"))
}

// fuzzSeeds are well-formed responses of every shape the tests build and
// some broken ones.
func fuzzSeeds(tb testing.TB) [][]byte {
	c := msgOpts{compress: true}
	chain := build(tb, "www.example.org.", c, cname("www.example.org.", 300, "edge.cdn.net."),
		cname("edge.cdn.net.", 60, "e1.cdn.net."), a4("e1.cdn.net.", 120, "192.0.2.10"), a6("e1.cdn.net.", 20, "2001:db8::10"))
	seeds := [][]byte{
		build(tb, "web.example.", c, a4("web.example.", 300, "192.0.2.1")),
		build(tb, "v6.example.", msgOpts{qtype: dnsmessage.TypeAAAA}, a6("v6.example.", 60, "2001:db8::7")),
		chain,
		build(tb, "a.example.", c, cname("a.example.", 30, "b.example."), cname("b.example.", 30, "a.example.")),
		build(tb, "web.example.", msgOpts{rcode: dnsmessage.RCodeNameError}),
		build(tb, "web.example.", msgOpts{query: true}),
		build(tb, "web.example.", c, rr{name: "web.example.", typ: dnsmessage.TypeTXT, ttl: 5, data: "v=spf1"}, a4("web.example.", 9, "192.0.2.1")),
		chain[:len(chain)-7],
		patch(chain, func(b []byte) { b[len(b)-30] = 0xc0 }),
		{},
	}
	return seeds
}
