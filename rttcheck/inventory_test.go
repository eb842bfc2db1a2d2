package rttcheck

import (
	"fmt"
	"net/netip"
	"strconv"
	"testing"

	"github.com/gometro/go-metro/capture"
	"github.com/gometro/go-metro/capture/filter"
	"github.com/gometro/go-metro/capture/packet"
	"github.com/gometro/go-metro/capture/source"
)

func TestInventory(t *testing.T) {
	fe := &fakeEngine{snap: healthySnapshot()}
	c := newTestCheck(t, Options{}, "interface: lo\nips: [10.0.0.1]\nports: [80, 443]", "", fe, nil)
	prog, err := filter.Build(packet.LinkTypeEthernet, []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32")}, []uint16{80, 443}, capture.DefaultSnaplen)
	if err == nil {
		prog, err = filter.WithDNS(prog, packet.LinkTypeEthernet, capture.DefaultSnaplen)
	}
	if err != nil {
		t.Fatal(err)
	}
	got := c.Inventory()
	wantInv := map[string]string{
		"version": Version, "interface": "lo", "capture.backend": "afpacket",
		"snaplen": "220", "max_flows": strconv.Itoa(capture.DefaultMaxFlows), "ring_size.max": strconv.Itoa(source.DefaultRingSize), "capture.workers": "1", "capture.nice": "0",
		"filter.instructions": strconv.Itoa(len(prog)), "filter.level": "exact", "dns_names": "true",
	}
	if fmt.Sprint(got) != fmt.Sprint(wantInv) {
		t.Errorf("inventory %v\nwant %v", got, wantInv)
	}
	if New(Options{}).Inventory() != nil {
		t.Error("inventory before Configure")
	}
	c2 := newTestCheck(t, Options{}, "interface: lo\nall_remote_hosts: true\ncapture_backend: pcap\ncapture_buffer_mb: 4\ndns_names: false", "snaplen: 150\nmax_flows: 100", &fakeEngine{}, nil)
	got = c2.Inventory()
	if got["filter.instructions"] != "none" || got["capture.backend"] != "pcap" || got["ring_size.max"] != strconv.Itoa(4<<20) ||
		got["snaplen"] != "150" || got["max_flows"] != "100" || got["dns_names"] != "false" {
		t.Errorf("inventory %v", got)
	}
	// Every remote, with DNS names: the DNS check alone.
	dnsOnly, err := filter.WithDNS(nil, packet.LinkTypeEthernet, capture.DefaultSnaplen)
	if err != nil {
		t.Fatal(err)
	}
	c3 := newTestCheck(t, Options{}, "interface: lo\nall_remote_hosts: true", "", &fakeEngine{}, nil)
	if got := c3.Inventory(); got["filter.instructions"] != strconv.Itoa(len(dnsOnly)) || got["dns_names"] != "true" {
		t.Errorf("inventory %v, want the DNS check's %d instructions", got, len(dnsOnly))
	}
	c4 := newTestCheck(t, Options{}, "interface: lo\nall_remote_hosts: true\nports: [443]\ncapture_workers: 2", "", &fakeEngine{}, nil)
	if got = c4.Inventory(); got["capture.workers"] != "2" || got["ring_size.max"] != strconv.Itoa(2*source.FanoutRingSize(2)) {
		t.Errorf("inventory with 2 workers %v", got)
	}
}

// TestFilterPlan: Inventory's cached filter follows the remotes: a new
// list (a re-resolve) gives the new program, the same list the same one.
func TestFilterPlan(t *testing.T) {
	in := &InstanceConfig{Interface: "lo"}
	one := []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32")}
	two := []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32"), netip.MustParsePrefix("10.0.0.2/32")}
	var p filterPlan
	var sizes []int
	for _, remotes := range [][]netip.Prefix{one, one, two, one} {
		prog, err := p.get(in, remotes, capture.DefaultSnaplen)
		if err != nil {
			t.Fatal(err)
		}
		want, err := plannedFilter(in, remotes, capture.DefaultSnaplen)
		if err != nil {
			t.Fatal(err)
		}
		if len(prog.Instructions) != len(want.Instructions) {
			t.Fatalf("cached program of %d instructions, plannedFilter's %d", len(prog.Instructions), len(want.Instructions))
		}
		sizes = append(sizes, len(prog.Instructions))
	}
	if sizes[0] != sizes[1] || sizes[2] <= sizes[0] || sizes[3] != sizes[0] {
		t.Errorf("program sizes %v for remotes one, one, two, one", sizes)
	}
}
