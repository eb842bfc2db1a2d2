package rttcheck

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/gometro/go-metro/capture"
	"github.com/gometro/go-metro/capture/flow"
)

func mustParse(t *testing.T, instance, init string) *Config {
	t.Helper()
	cfg, err := ParseConfig([]byte(instance), []byte(init), -1)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestCheckInstances: a file may not capture the same thing twice, nor
// reserve more than MaxReservedBytes in all.
func TestCheckInstances(t *testing.T) {
	repeat := func(n int, instance string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = strings.ReplaceAll(instance, "PORT", fmt.Sprint(1000+i))
		}
		return out
	}
	// What a default live instance reserves, and how many fit.
	each := flow.ReservedBytes(capture.DefaultMaxFlows) + 32<<20
	fit := int(MaxReservedBytes / each)
	tests := []struct {
		name      string
		init      string
		instances []string
		wantErr   string
	}{
		{name: "different interfaces", instances: []string{"interface: eth0\nips: [10.0.0.1]", "interface: eth1\nips: [10.0.0.1]"}},
		{name: "different filters", instances: []string{"interface: eth0\nips: [10.0.0.1]", "interface: eth0\nips: [10.0.0.1]\nports: [443]"}},
		{name: "identical", instances: []string{"interface: lo\nall_remote_hosts: true", "interface: eth0\nips: [10.0.0.1]", "interface: lo\nall_remote_hosts: true\ntags: [b]"},
			wantErr: "instances[2]: interface: captures what instances[0] captures (interface lo, all_remote_hosts): remove one"},
		{name: "same filter in another order", instances: []string{"interface: eth0\nips: [10.0.0.1, 10.0.0.2]\nports: [80, 443]", "interface: eth0\nips: [10.0.0.2, 10.0.0.1/32]\nports: [443, 80]"},
			wantErr: "instances[1]: interface: captures what instances[0] captures (interface eth0, ips [10.0.0.1/32 10.0.0.2/32], ports [443 80])"},
		{name: "same replay", instances: []string{"interface: file\npcap: /x.pcap\nall_remote_hosts: true", "interface: file\npcap: /x.pcap\nall_remote_hosts: true"},
			wantErr: "captures what instances[0] captures (pcap /x.pcap, all_remote_hosts)"},
		{name: "within the cap", instances: repeat(fit, "interface: lo\nall_remote_hosts: true\nports: [PORT]")},
		{name: "over the cap", instances: repeat(fit+1, "interface: lo\nall_remote_hosts: true\nports: [PORT]"),
			wantErr: fmt.Sprintf("instances[%d]: instances[0..%d] reserve %s, over the 2048 MiB that one go-metro may reserve (each: %s (capture ring 32 MiB + flow table of max_flows %d %s)): lower max_flows or capture_buffer_mb",
				fit, fit, mib(int64(fit+1)*each), mib(each), capture.DefaultMaxFlows, mib(flow.ReservedBytes(capture.DefaultMaxFlows)))},
		{name: "smaller rings fit more", instances: repeat(100, "interface: lo\nall_remote_hosts: true\nports: [PORT]\ncapture_buffer_mb: 4"), init: "max_flows: 4096"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var cfgs []*Config
			for _, in := range tc.instances {
				cfgs = append(cfgs, mustParse(t, in, tc.init))
			}
			err := CheckInstances(cfgs)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v\nwant %q", err, tc.wantErr)
			}
			if len(err.Error()) > 400 {
				t.Errorf("message of %d bytes", len(err.Error()))
			}
		})
	}
}

// TestConfigureRefusesDuplicateCapture: inside the agent each instance is
// configured on its own; a second instance capturing what a running one
// captures is refused naming it, and allowed again once that one is
// cancelled. So is an instance that would take the process past
// MaxReservedBytes.
func TestConfigureRefusesDuplicateCapture(t *testing.T) {
	configure := func(instance string) (*Check, error) {
		c := New(Options{})
		c.timing = testTiming
		fe := &fakeEngine{}
		c.newEngine = func(_ capture.Config) (engine, error) { return fe, nil }
		c.res = &fakeResolver{}
		err := configureYAML(c, instance, "")
		t.Cleanup(c.Cancel)
		return c, err
	}
	first, err := configure("interface: eth0\nips: [10.0.0.1]")
	if err != nil {
		t.Fatal(err)
	}
	_, err = configure("interface: eth0\nips: [10.0.0.1]\ntags: [other]")
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Key != "interface" || !strings.Contains(err.Error(), `instance "eth0": interface: another go-metro instance already captures this (interface eth0, ips [10.0.0.1/32])`) {
		t.Fatalf("second identical Configure: %v", err)
	}
	if _, err := configure("interface: eth0\nips: [10.0.0.2]"); err != nil {
		t.Errorf("another filter on the same interface: %v", err)
	}
	first.Cancel()
	if _, err := configure("interface: eth0\nips: [10.0.0.1]"); err != nil {
		t.Errorf("after the first was cancelled: %v", err)
	}

	// Up to the cap, then refused naming it.
	var n int
	for n = 0; n < 100; n++ {
		if _, err = configure(fmt.Sprintf("interface: lo\nall_remote_hosts: true\nports: [%d]", 2000+n)); err != nil {
			break
		}
	}
	if err == nil || !strings.Contains(err.Error(), "over the 2048 MiB that one go-metro may reserve") {
		t.Fatalf("after %d instances: %v", n, err)
	}
}
