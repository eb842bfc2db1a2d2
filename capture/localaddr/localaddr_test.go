package localaddr

import (
	"net/netip"
	"slices"
	"sync"
	"testing"
)

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

// contains asks Sides about one address: an IPv4 address and its
// IPv4-mapped form are the same.
func contains(s *Set, addr netip.Addr) bool {
	a := addr.As16()
	local, _ := s.Sides(&a, &a)
	return local
}

func TestContains(t *testing.T) {
	var s Set
	if contains(&s, ip("10.0.0.1")) {
		t.Fatal("zero Set contains an address")
	}
	s.Set([]netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fe80::1%eth0"), netip.MustParseAddr("::ffff:192.0.2.7")})
	if err := s.SetPrefixes([]netip.Prefix{
		netip.MustParsePrefix("172.16.0.0/12"),
		netip.MustParsePrefix("2001:db8::/32"),
		netip.MustParsePrefix("198.51.100.9/32"),
		netip.MustParsePrefix("::ffff:203.0.113.0/120"),
	}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr string
		want bool
	}{
		{"10.0.0.1", true},
		{"10.0.0.2", false},
		{"::ffff:10.0.0.1", true}, // same key as 10.0.0.1
		{"fe80::1", true},         // zone dropped
		{"192.0.2.7", true},       // mapped input unmapped
		{"172.31.255.255", true},
		{"172.32.0.0", false},
		{"2001:db8:1::5", true},
		{"2001:db9::1", false},
		{"198.51.100.9", true},
		{"198.51.100.10", false},
		{"203.0.113.200", true},
		{"203.0.114.1", false},
		{"::a00:1", false}, // IPv4-compatible (not mapped) 10.0.0.1 is a different address
	}
	for _, tt := range tests {
		if got := contains(&s, ip(tt.addr)); got != tt.want {
			t.Errorf("Contains(%s) = %v, want %v", tt.addr, got, tt.want)
		}
		// Sides answers the same for either end, whatever the other is.
		a := ip(tt.addr).As16()
		for _, other := range []string{"10.0.0.1", "10.0.0.2", "2001:db8:1::5", "203.0.114.1"} {
			o := ip(other).As16()
			src, dst := s.Sides(&a, &o)
			src2, dst2 := s.Sides(&o, &a)
			if src != tt.want || dst2 != tt.want || dst != contains(&s, ip(other)) || src2 != dst {
				t.Errorf("Sides(%s, %s) = %v, %v; Sides(%s, %s) = %v, %v", tt.addr, other, src, dst, other, tt.addr, src2, dst2)
			}
		}
	}
	want := []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("198.51.100.9"), netip.MustParseAddr("fe80::1")}
	if got := s.Addrs(); !slices.Equal(got, want) {
		t.Errorf("Addrs() = %v, want %v", got, want)
	}
	// Replacing addresses keeps the prefixes and forgets old addresses.
	s.Set([]netip.Addr{netip.MustParseAddr("10.9.9.9")})
	if contains(&s, ip("10.0.0.1")) || !contains(&s, ip("10.9.9.9")) || !contains(&s, ip("172.16.1.1")) {
		t.Error("Set did not replace addresses while keeping prefixes")
	}
	if err := s.SetPrefixes([]netip.Prefix{{}}); err == nil {
		t.Error("SetPrefixes accepted an invalid prefix")
	}
}

func TestConcurrentReadersAndWriters(t *testing.T) {
	// Run with -race: readers must never see a half-built snapshot.
	var s Set
	a := netip.MustParseAddr("10.0.0.1")
	s.Set([]netip.Addr{a})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if !contains(&s, a) {
					t.Error("address vanished during concurrent updates")
					return
				}
			}
		}()
	}
	for i := range 1000 {
		s.Set([]netip.Addr{a, netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})})
	}
	close(stop)
	wg.Wait()
}

func TestInterfaceAddrs(t *testing.T) {
	all, err := InterfaceAddrs("any")
	if err != nil {
		t.Fatal(err)
	}
	lo, err := InterfaceAddrs("lo")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(lo, netip.MustParseAddr("127.0.0.1")) {
		t.Errorf("lo addresses %v lack 127.0.0.1", lo)
	}
	for _, a := range lo {
		if !slices.Contains(all, a) {
			t.Errorf("address %v of lo missing from all-interface list %v", a, all)
		}
	}
	if _, err := InterfaceAddrs("no-such-if0"); err == nil {
		t.Error("no error for a missing interface")
	}
}

// BenchmarkSides measures the hot path's question, one packet's source and
// destination, against a host's handful of addresses.
func BenchmarkSides(b *testing.B) {
	var s Set
	s.Set([]netip.Addr{
		netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1"),
		netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fe80::1"),
		netip.MustParseAddr("2001:db8::1"),
	})
	local, remote := ip("2001:db8::1").As16(), ip("192.0.2.1").As16()
	b.Run("one-local", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if src, dst := s.Sides(&remote, &local); src || !dst {
				b.Fatal("wrong sides")
			}
		}
	})
	if err := s.SetPrefixes([]netip.Prefix{netip.MustParsePrefix("172.16.0.0/12"), netip.MustParsePrefix("2001:db8:ff::/48")}); err != nil {
		b.Fatal(err)
	}
	b.Run("one-local-with-prefixes", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if src, dst := s.Sides(&remote, &local); src || !dst {
				b.Fatal("wrong sides")
			}
		}
	})
	many := manyAddrs(200)
	s.Set(many)
	workload := many[150].As16()
	b.Run("200-workloads", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if src, dst := s.Sides(&remote, &workload); src || !dst {
				b.Fatal("wrong sides")
			}
		}
	})
}

// manyAddrs is n addresses of containers or pods: 10.244.x.y.
func manyAddrs(n int) []netip.Addr {
	out := make([]netip.Addr, n)
	for i := range out {
		out[i] = netip.AddrFrom4([4]byte{10, 244, byte(i >> 8), byte(i + 2)})
	}
	return out
}

// TestManyAddrs: past linearMax the exact addresses are a set, with the
// same answers.
func TestManyAddrs(t *testing.T) {
	var s Set
	for _, n := range []int{linearMax, linearMax + 1, 200} {
		addrs := manyAddrs(n)
		if err := s.SetPrefixes([]netip.Prefix{netip.MustParsePrefix("172.16.0.0/12")}); err != nil {
			t.Fatal(err)
		}
		s.Set(append(addrs, netip.MustParseAddr("fd00::1")))
		for _, a := range append(addrs, netip.MustParseAddr("fd00::1"), netip.MustParseAddr("172.16.0.9")) {
			if !contains(&s, a) {
				t.Errorf("%d addresses: %v is not local", n, a)
			}
		}
		for _, a := range []string{"10.244.200.1", "10.245.0.2", "fd00::2"} {
			if contains(&s, ip(a)) {
				t.Errorf("%d addresses: %s is local", n, a)
			}
		}
		if !contains(&s, ip("::ffff:10.244.0.2")) {
			t.Errorf("%d addresses: the IPv4-mapped form of 10.244.0.2 is not local", n)
		}
		if got := len(s.Addrs()); got != n+1 {
			t.Errorf("%d addresses: Addrs() has %d", n, got)
		}
	}
}
