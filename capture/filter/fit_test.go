package filter

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/gometro/go-metro/capture/packet"
	"golang.org/x/net/bpf"
)

// hosts6 returns n IPv6 /128s, each in its own /64: host i is
// 2001:H:0:L::1 with H = i/perSlash32 and L = i%perSlash32, so perSlash32
// consecutive hosts share a /48 and a /32.
func hosts6(n, perSlash32 int) []netip.Prefix {
	var out []netip.Prefix
	for i := range n {
		hi, lo := i/perSlash32, i%perSlash32
		b := [16]byte{0x20, 0x01, byte(hi >> 8), byte(hi), 0, 0, byte(lo >> 8), byte(lo), 15: 1}
		out = append(out, netip.PrefixFrom(netip.AddrFrom16(b), 128))
	}
	return out
}

func ports(n int) []uint16 {
	var out []uint16
	for i := range n {
		out = append(out, uint16(1000+i))
	}
	return out
}

// TestFit checks which level Fit picks as the request grows, and that the
// program it returns still accepts every monitored frame (a coarser level
// is a superset, never stricter) and still rejects what its level checks.
func TestFit(t *testing.T) {
	tests := []struct {
		name    string
		remotes []netip.Prefix
		ports   []uint16
		want    Level
		// A frame from outside the request that the chosen level must
		// still reject ("" when the level checks nothing it could fail).
		reject frame
	}{
		{"few remotes", hosts6(10, 1000), []uint16{443}, Exact,
			frame{src: "2001:0:0:1::2", dst: "2001:db8::1", sport: 443, dport: 40000}},
		// 300 /128s cost 18 each (ErrTooLarge); as /64s 10 each.
		{"300 IPv6 hosts", hosts6(300, 1000), []uint16{443}, Aggregated,
			frame{src: "2001:1::1", dst: "2001:db8::1", sport: 443, dport: 40000}},
		// 700 hosts in 700 /32s: /64 and /48 too large, /32 (6 each) too.
		{"700 IPv6 /32s", hosts6(700, 1), []uint16{443}, PortsOnly,
			frame{src: "2001:0:0:1::1", dst: "2001:db8::1", sport: 444, dport: 40000}},
		{"700 IPv6 /32s, no ports", hosts6(700, 1), nil, TCPOnly, frame{}},
		{"600 IPv6 /32s, no ports", hosts6(600, 1), nil, Aggregated,
			frame{src: "2002::1", dst: "2001:db8::1", sport: 1, dport: 2}},
		{"2000 ports", nil, ports(2000), TCPOnly, frame{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Fit(packet.LinkTypeEthernet, tt.remotes, tt.ports, snap, Pass{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if p.Level != tt.want {
				t.Fatalf("level = %v, want %v (%s)", p.Level, tt.want, p.Describe())
			}
			if len(p.Instructions) > MaxInstructions {
				t.Fatalf("%d instructions", len(p.Instructions))
			}
			if (p.Level == Exact) != (p.Reason == nil) || (p.Level != Exact && !errors.Is(p.Reason, ErrTooLarge)) {
				t.Errorf("level %v with reason %v", p.Level, p.Reason)
			}
			port := uint16(443)
			if len(tt.ports) > 0 {
				port = tt.ports[len(tt.ports)-1]
			}
			for _, r := range tt.remotes {
				f := frame{src: "2001:db8::1", dst: r.Addr().String(), sport: 40000, dport: port}
				if data := f.build(t, packet.LinkTypeEthernet); run(t, p.Instructions, data) != acceptLen(f, len(data)) {
					t.Fatalf("monitored frame to %v rejected by the %v program", r.Addr(), p.Level)
				}
			}
			if tt.reject.src != "" {
				if got := run(t, p.Instructions, tt.reject.build(t, packet.LinkTypeEthernet)); got != 0 {
					t.Errorf("%v program accepted %+v", p.Level, tt.reject)
				}
			}
			udp := frame{src: "2001:db8::1", dst: "2001:db8::2", sport: 443, dport: 443, proto: 17}
			if got := run(t, p.Instructions, udp.build(t, packet.LinkTypeEthernet)); got != 0 {
				t.Errorf("%v program accepted UDP", p.Level)
			}
		})
	}
}

// TestFitKernelRefusal: a level the kernel refuses (optmem_max) moves Fit to
// the next; when every level is refused Fit fails with the refusals.
func TestFitKernelRefusal(t *testing.T) {
	refuse := errors.New("ENOMEM")
	var sizes []int
	limit := 1000
	attach := func(ins []bpf.RawInstruction) error {
		sizes = append(sizes, len(ins))
		if len(ins) > limit {
			return refuse
		}
		return nil
	}
	p, err := Fit(packet.LinkTypeEthernet, hosts6(100, 1000), []uint16{443}, snap, Pass{}, attach)
	if err != nil {
		t.Fatal(err)
	}
	// 100 /128s (1872 instructions) and 100 /64s (1072) refused, one /48 taken.
	if p.Level != Aggregated || len(p.Remotes) != 1 || !errors.Is(p.Reason, refuse) || len(sizes) != 3 {
		t.Errorf("got %s after attaching %v", p.Describe(), sizes)
	}
	limit = 0
	if _, err := Fit(packet.LinkTypeEthernet, hosts6(100, 1000), []uint16{443}, snap, Pass{}, attach); !errors.Is(err, refuse) {
		t.Errorf("every level refused: err = %v", err)
	}
	if _, err := Fit(packet.LinkTypeEthernet, []netip.Prefix{{}}, nil, snap, Pass{}, attach); err == nil || errors.Is(err, refuse) {
		t.Errorf("invalid prefix: err = %v", err)
	}
}

// TestFitTunnels: with tunnels the levels are tried with the tunnel prologue
// in front, and the program Fit reports is the one attach installed; a
// level that only the prologue pushes past MaxInstructions gives way to a
// coarser one.
func TestFitTunnels(t *testing.T) {
	var installed []bpf.RawInstruction
	attach := func(ins []bpf.RawInstruction) error { installed = ins; return nil }
	p, err := Fit(packet.LinkTypeEthernet, hosts6(10, 1000), []uint16{443}, snap, Pass{Tunnels: packet.EncapVXLAN}, attach)
	if err != nil {
		t.Fatal(err)
	}
	bare, err := Build(packet.LinkTypeEthernet, hosts6(10, 1000), []uint16{443}, snap)
	if err != nil {
		t.Fatal(err)
	}
	if p.Level != Exact || !slices.Equal(p.Instructions, installed) || len(p.Instructions) <= len(bare) {
		t.Errorf("%s: reported %d instructions, installed %d, bare program %d", p.Describe(), len(p.Instructions), len(installed), len(bare))
	}
	// Find how many /128s fit bare but not with the prologue.
	for n := 200; n < 240; n++ {
		if _, err := Build(packet.LinkTypeEthernet, hosts6(n, 1000), nil, snap); err != nil {
			t.Fatalf("%d hosts do not fit even bare: the search range is stale", n)
		}
		if _, err := WithTunnels(mustBuild(t, hosts6(n, 1000)), packet.LinkTypeEthernet, packet.EncapAll, snap); !errors.Is(err, ErrTooLarge) {
			continue
		}
		p, err := Fit(packet.LinkTypeEthernet, hosts6(n, 1000), nil, snap, Pass{Tunnels: packet.EncapAll}, nil)
		if err != nil || p.Level == Exact || !errors.Is(p.Reason, ErrTooLarge) || len(p.Instructions) > MaxInstructions {
			t.Errorf("%d hosts with every tunnel: %s, %v", n, p.Describe(), err)
		}
		return
	}
	t.Fatal("no host count in 200-239 fits bare but not with the tunnel prologue")
}

func mustBuild(t *testing.T, remotes []netip.Prefix) []bpf.RawInstruction {
	t.Helper()
	ins, err := Build(packet.LinkTypeEthernet, remotes, nil, snap)
	if err != nil {
		t.Fatal(err)
	}
	return ins
}

func TestAggregate(t *testing.T) {
	in := prefixes(
		"192.0.2.10/32",
		"192.0.2.200/32",
		"198.51.100.0/22",
		"10.0.0.0/8",
		"10.1.2.3/32",
		"::ffff:203.0.113.9/128",
		"2001:db8::1/128",
		"2001:db8::2/128",
		"2001:db8:0:1::/64",
	)
	got := aggregate(in, 24, 64)
	want := prefixes(
		"10.0.0.0/8",
		"192.0.2.0/24",
		"198.51.100.0/22",
		"203.0.113.0/24",
		"2001:db8::/64",
		"2001:db8:0:1::/64",
	)
	if !slices.Equal(got, want) {
		t.Errorf("aggregate = %v, want %v", got, want)
	}
}

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}
