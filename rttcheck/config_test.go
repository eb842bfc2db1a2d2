package rttcheck

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v2"

	"github.com/gometro/go-metro/capture/packet"

	"github.com/gometro/go-metro/capture"
)

const minimalInstance = "interface: eth0\nips: [10.0.0.1]\n"

func TestConfigDefaults(t *testing.T) {
	cfg, err := ParseConfig([]byte(minimalInstance), nil, -1)
	if err != nil {
		t.Fatal(err)
	}
	want := InitConfig{Snaplen: 220, IdleTTL: 300 * time.Second, ExpTTL: 60 * time.Second, MaxFlows: capture.DefaultMaxFlows,
		StatsdIP: "127.0.0.1", StatsdPort: 8125, LogLevel: "info"}
	if cfg.Init != want {
		t.Errorf("init defaults = %+v, want %+v", cfg.Init, want)
	}
	in := cfg.Instance
	if in.Interface != "eth0" || in.MinCollectionInterval != 15*time.Second || in.HostsRefresh != 5*time.Minute ||
		!in.ReverseDNS || in.Sample || in.AllRemoteHosts || in.Backend != "" {
		t.Errorf("instance defaults = %+v", in)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings = %q", cfg.Warnings)
	}
}

// TestConfigKeys exercises every key with a good value (checking what it
// parses to) and bad values (checking the error names the instance, the key
// and the reason).
func TestConfigKeys(t *testing.T) {
	pfx := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	tests := []struct {
		name     string
		init     string
		instance string // appended to minimalInstance unless it sets interface itself
		wantErr  string // substring; empty: must parse
		check    func(t *testing.T, c *Config)
	}{
		// init_config
		{name: "snaplen ok", init: "snaplen: 128", check: func(t *testing.T, c *Config) { eq(t, c.Init.Snaplen, 128) }},
		{name: "snaplen minimum", init: "snaplen: 122", check: func(t *testing.T, c *Config) { eq(t, c.Init.Snaplen, 122) }},
		{name: "snaplen too small", init: "snaplen: 104", wantErr: "init_config: snaplen: 104 is too small: the minimum is 122 bytes"},
		{name: "snaplen too large", init: "snaplen: 70000", wantErr: "init_config: snaplen: 70000 is too large"},
		{name: "snaplen not int", init: "snaplen: lots", wantErr: `init_config: snaplen: "lots" is not an integer`},
		{name: "idle_ttl seconds", init: "idle_ttl: 120", check: func(t *testing.T, c *Config) { eq(t, c.Init.IdleTTL, 2*time.Minute) }},
		{name: "idle_ttl duration string", init: "idle_ttl: 10m", check: func(t *testing.T, c *Config) { eq(t, c.Init.IdleTTL, 10*time.Minute) }},
		{name: "idle_ttl zero", init: "idle_ttl: 0", wantErr: "init_config: idle_ttl: 0s is out of range"},
		{name: "idle_ttl list", init: "idle_ttl: [1]", wantErr: "init_config: idle_ttl: expected a number of seconds, got a list"},
		{name: "exp_ttl", init: "exp_ttl: 30", check: func(t *testing.T, c *Config) { eq(t, c.Init.ExpTTL, 30*time.Second) }},
		{name: "expired_ttl (v5 binary's spelling)", init: "expired_ttl: 45", check: func(t *testing.T, c *Config) { eq(t, c.Init.ExpTTL, 45*time.Second) }},
		{name: "exp_ttl preferred over expired_ttl", init: "exp_ttl: 30\nexpired_ttl: 45", check: func(t *testing.T, c *Config) {
			eq(t, c.Init.ExpTTL, 30*time.Second)
			wantWarning(t, c, "both exp_ttl (30s) and expired_ttl (45s) are set: using exp_ttl")
		}},
		{name: "exp_ttl equal to expired_ttl no warning", init: "exp_ttl: 30\nexpired_ttl: 30", check: func(t *testing.T, c *Config) { eq(t, len(c.Warnings), 0) }},
		{name: "exp_ttl negative", init: "exp_ttl: -5", wantErr: "init_config: exp_ttl: -5s is out of range"},
		{name: "expired_ttl too long", init: "expired_ttl: 2d", wantErr: `init_config: expired_ttl: "2d" is not a duration`},
		{name: "expired_ttl out of range names the key as written", init: "expired_ttl: 0", wantErr: "init_config: expired_ttl: 0s is out of range"},
		{name: "duration beyond int64 nanoseconds", init: "idle_ttl: 100000000000", wantErr: "init_config: idle_ttl: 1e+11 seconds is out of range"},
		{name: "max_flows", init: "max_flows: 100", check: func(t *testing.T, c *Config) { eq(t, c.Init.MaxFlows, 100) }},
		{name: "max_flows zero", init: "max_flows: 0", wantErr: "init_config: max_flows: 0 is out of range: must be between 1 and 4194304"},
		{name: "max_flows huge", init: "max_flows: 100000000", wantErr: "init_config: max_flows: 100000000 is out of range"},
		{name: "statsd_ip", init: "statsd_ip: 10.1.2.3", check: func(t *testing.T, c *Config) { eq(t, c.Init.StatsdIP, "10.1.2.3") }},
		{name: "statsd_ip empty", init: `statsd_ip: ""`, wantErr: "init_config: statsd_ip: must not be empty"},
		{name: "statsd_port", init: "statsd_port: 8126", check: func(t *testing.T, c *Config) { eq(t, c.Init.StatsdPort, 8126) }},
		{name: "statsd_port out of range", init: "statsd_port: 70000", wantErr: "init_config: statsd_port: 70000 is not a port number"},
		{name: "log_to_file", init: "log_to_file: true", check: func(t *testing.T, c *Config) { eq(t, c.Init.LogToFile, true) }},
		{name: "log_to_file not bool", init: "log_to_file: sometimes", wantErr: `init_config: log_to_file: "sometimes" is not true or false`},
		{name: "log_level", init: "log_level: WARNING", check: func(t *testing.T, c *Config) { eq(t, c.Init.LogLevel, "warn") }},
		{name: "log_level bad", init: "log_level: loud", wantErr: `init_config: log_level: "loud" is not a log level`},
		{name: "init_config unknown key warns", init: "snaplenn: 100", check: func(t *testing.T, c *Config) {
			wantWarning(t, c, `init_config: unknown key "snaplenn" is ignored`)
		}},
		{name: "init_config not a mapping", init: "- a\n- b", wantErr: "init_config: must be a mapping"},
		{name: "init_config duplicate key", init: "snaplen: 200\nsnaplen: 300", wantErr: "init_config: snaplen: appears more than once"},

		// instances
		{name: "interface missing", instance: "ips: [10.0.0.1]", wantErr: "instance (no interface): interface: is required"},
		{name: "interface any", instance: "interface: any\nips: [10.0.0.1]", check: func(t *testing.T, c *Config) { eq(t, c.Instance.Interface, "any") }},
		{name: "interface bad name", instance: "interface: eth0/1\nips: [10.0.0.1]", wantErr: `instance "eth0/1": interface: "eth0/1" is not an interface name`},
		{name: "interface too long", instance: "interface: abcdefghijklmnopq\nips: [10.0.0.1]", wantErr: "longer than 15 bytes"},
		{name: "interface not string", instance: "interface: [a]\nips: [10.0.0.1]", wantErr: "instance (no interface): interface: expected a string, got a list"},
		{name: "file with pcap", instance: "interface: file\npcap: /tmp/x.pcap\nall_remote_hosts: true", check: func(t *testing.T, c *Config) {
			eq(t, c.Instance.Pcap, "/tmp/x.pcap")
		}},
		{name: "file without pcap", instance: "interface: file\nall_remote_hosts: true", wantErr: `instance "file": pcap: is required with interface: file`},
		{name: "pcap without file", instance: "interface: eth0\npcap: /tmp/x.pcap\nips: [10.0.0.1]", wantErr: `instance "eth0": pcap: is only used with interface: file`},
		{name: "ips addresses and CIDRs", instance: "interface: eth0\nips: [10.0.0.1, 10.1.0.0/16, '2001:db8::/32', '::ffff:10.0.0.9']", check: func(t *testing.T, c *Config) {
			eq(t, c.Instance.IPs, pfx("10.0.0.1/32", "10.1.0.0/16", "2001:db8::/32", "10.0.0.9/32"))
		}},
		{name: "ips bad entry", instance: "interface: eth0\nips: [10.0.0.1, 10.0.0.2, 10.0.0.300]", wantErr: `instance "eth0": ips[2]: "10.0.0.300" is not an IP address or CIDR`},
		{name: "ips not a list", instance: "interface: eth0\nips: 10.0.0.1", wantErr: `instance "eth0": ips: expected a list, got a string`},
		{name: "local_ips", instance: minimalInstance + "local_ips: [192.168.1.0/24]", check: func(t *testing.T, c *Config) {
			eq(t, c.Instance.LocalIPs, pfx("192.168.1.0/24"))
		}},
		{name: "local_ips bad", instance: minimalInstance + "local_ips: [nope]", wantErr: `instance "eth0": local_ips[0]: "nope" is not an IP address or CIDR`},
		{name: "hosts", instance: "interface: eth0\nhosts: [app.example.com, db.example.com.]", check: func(t *testing.T, c *Config) {
			eq(t, c.Instance.Hosts, []string{"app.example.com", "db.example.com"})
		}},
		{name: "hosts bad name", instance: "interface: eth0\nhosts: [good.example.com, 'bad host']", wantErr: `instance "eth0": hosts[1]: "bad host" is not a host name`},
		{name: "hosts IP belongs in ips", instance: "interface: eth0\nhosts: [10.0.0.1]", wantErr: `hosts[0]: "10.0.0.1" is an IP address: list it under ips`},
		{name: "hosts_refresh_interval", instance: "interface: eth0\nhosts: [a.example]\nhosts_refresh_interval: 60", check: func(t *testing.T, c *Config) {
			eq(t, c.Instance.HostsRefresh, time.Minute)
		}},
		{name: "hosts_refresh_interval too short", instance: minimalInstance + "hosts_refresh_interval: 1", wantErr: `instance "eth0": hosts_refresh_interval: 1s is out of range`},
		{name: "tags", instance: minimalInstance + "tags: [env:prod, team:net]", check: func(t *testing.T, c *Config) {
			eq(t, c.Instance.Tags, []string{"env:prod", "team:net"})
		}},
		{name: "tags empty entry", instance: minimalInstance + "tags: [env:prod, '']", wantErr: `instance "eth0": tags[1]: empty tag`},
		{name: "sample window", instance: minimalInstance + "sample: true\nsample_duration: 10\nsample_interval: 50", check: func(t *testing.T, c *Config) {
			eq(t, c.Instance.Sample, true)
			eq(t, c.Instance.SampleDuration, 10*time.Second)
			eq(t, c.Instance.SampleInterval, 50*time.Second)
		}},
		{name: "sample not bool", instance: minimalInstance + "sample: 3", wantErr: `instance "eth0": sample: expected true or false, got an integer`},
		{name: "sample_duration zero", instance: minimalInstance + "sample: true\nsample_duration: 0", wantErr: `instance "eth0": sample_duration: 0s must be positive`},
		{name: "sample_interval bad", instance: minimalInstance + "sample: true\nsample_interval: soon", wantErr: `instance "eth0": sample_interval: "soon" is not a duration`},
		{name: "sample options without sample warn", instance: minimalInstance + "sample_duration: 10", check: func(t *testing.T, c *Config) {
			wantWarning(t, c, "sample_duration and sample_interval have no effect unless sample: true")
		}},
		{name: "sample with file", instance: "interface: file\npcap: x.pcap\nall_remote_hosts: true\nsample: true", wantErr: `instance "file": sample: cannot be used with interface: file`},
		{name: "ports", instance: minimalInstance + "ports: [443, 80]", check: func(t *testing.T, c *Config) { eq(t, c.Instance.Ports, []uint16{80, 443}) }},
		{name: "ports out of range", instance: minimalInstance + "ports: [443, 0]", wantErr: `instance "eth0": ports[1]: 0 is not a port number (1-65535)`},
		{name: "tunnels list", instance: minimalInstance + "tunnels: [vxlan, GRE]", check: func(t *testing.T, c *Config) {
			eq(t, c.Instance.Tunnels, packet.EncapVXLAN|packet.EncapGRE)
		}},
		{name: "tunnels all", instance: minimalInstance + "tunnels: all", check: func(t *testing.T, c *Config) { eq(t, c.Instance.Tunnels, packet.EncapAll) }},
		{name: "tunnels default", instance: minimalInstance, check: func(t *testing.T, c *Config) { eq(t, c.Instance.Tunnels, packet.Encap(0)) }},
		{name: "tunnels unknown", instance: minimalInstance + "tunnels: [vxlan, nvgre]", wantErr: `instance "eth0": tunnels: unknown encapsulation "nvgre" (known: all, vxlan, geneve, gre, erspan, gtpu, ipip, pppoe, mpls, pbb)`},
		{name: "tunnels not strings", instance: minimalInstance + "tunnels: [[vxlan]]", wantErr: `instance "eth0": tunnels[0]: `},
		{name: "tunnels with a small snaplen", instance: minimalInstance + "tunnels: [geneve]", init: "snaplen: 200", check: func(t *testing.T, c *Config) {
			wantWarning(t, c, `instance "eth0": tunnels: init_config snaplen 200 is below the 220 bytes`)
		}},
		{name: "ports not number", instance: minimalInstance + "ports: [https]", wantErr: `instance "eth0": ports[0]: "https" is not an integer`},
		{name: "capture_backend pcap", instance: minimalInstance + "capture_backend: PCAP", check: func(t *testing.T, c *Config) { eq(t, c.Instance.Backend, "pcap") }},
		{name: "capture_backend afpacket", instance: minimalInstance + "capture_backend: afpacket", check: func(t *testing.T, c *Config) { eq(t, c.Instance.Backend, "afpacket") }},
		{name: "capture_backend bad", instance: minimalInstance + "capture_backend: pf_ring", wantErr: `instance "eth0": capture_backend: "pf_ring" is not a capture backend: use afpacket or pcap`},
		{name: "all_remote_hosts", instance: "interface: eth0\nall_remote_hosts: true", check: func(t *testing.T, c *Config) { eq(t, c.Instance.AllRemoteHosts, true) }},
		{name: "neither ips nor hosts", instance: "interface: eth0", wantErr: `instance "eth0": ips: neither ips nor hosts is set`},
		{name: "all_remote_hosts false needs ips", instance: "interface: eth0\nall_remote_hosts: false", wantErr: "set all_remote_hosts: true"},
		{name: "all_remote_hosts with ips", instance: minimalInstance + "all_remote_hosts: true", wantErr: `instance "eth0": all_remote_hosts: cannot be true together with ips or hosts`},
		{name: "reverse_dns off", instance: minimalInstance + "reverse_dns: false", check: func(t *testing.T, c *Config) { eq(t, c.Instance.ReverseDNS, false) }},
		{name: "reverse_dns bad", instance: minimalInstance + "reverse_dns: maybe", wantErr: `instance "eth0": reverse_dns: "maybe" is not true or false`},
		{name: "dns_names on by default", instance: minimalInstance, check: func(t *testing.T, c *Config) { eq(t, c.Instance.DNSNames, true) }},
		{name: "dns_names off", instance: minimalInstance + "dns_names: false", check: func(t *testing.T, c *Config) { eq(t, c.Instance.DNSNames, false) }},
		{name: "dns_names bad", instance: minimalInstance + "dns_names: maybe", wantErr: `instance "eth0": dns_names: "maybe" is not true or false`},
		{name: "dns_names a list", instance: minimalInstance + "dns_names: [true]", wantErr: `instance "eth0": dns_names: expected true or false, got a list`},
		{name: "min_collection_interval", instance: minimalInstance + "min_collection_interval: 30", check: func(t *testing.T, c *Config) {
			eq(t, c.Instance.MinCollectionInterval, 30*time.Second)
		}},
		{name: "min_collection_interval negative", instance: minimalInstance + "min_collection_interval: -1", wantErr: `instance "eth0": min_collection_interval: -1 is out of range: must be between 1 and 86400 seconds`},
		{name: "min_collection_interval fraction", instance: minimalInstance + "min_collection_interval: 0.5", wantErr: `instance "eth0": min_collection_interval: expected a whole number of seconds, got a number`},
		{name: "min_collection_interval huge", instance: minimalInstance + "min_collection_interval: 1000000000000", wantErr: `instance "eth0": min_collection_interval: 1e+12 seconds is out of range`},
		{name: "min_collection_interval quoted", instance: minimalInstance + `min_collection_interval: "20"`, wantErr: `instance "eth0": min_collection_interval: expected a whole number of seconds, got a string`},
		{name: "empty_default_hostname quoted", instance: minimalInstance + `empty_default_hostname: "true"`, wantErr: `instance "eth0": empty_default_hostname: expected true or false, got a string`},
		{name: "service", instance: minimalInstance + "service: web", check: func(t *testing.T, c *Config) { eq(t, c.Instance.Service, "web") }},
		{name: "service not string", instance: minimalInstance + "service: [a]", wantErr: `instance "eth0": service: expected a string, got a list`},
		{name: "empty_default_hostname", instance: minimalInstance + "empty_default_hostname: true", check: func(t *testing.T, c *Config) {
			eq(t, c.Instance.EmptyDefaultHostname, true)
		}},
		{name: "empty_default_hostname bad", instance: minimalInstance + "empty_default_hostname: 2", wantErr: `instance "eth0": empty_default_hostname: expected true or false`},
		{name: "exp_ttl shorter than the collection interval warns", init: "exp_ttl: 10", instance: minimalInstance + "min_collection_interval: 30", check: func(t *testing.T, c *Config) {
			wantWarning(t, c, `init_config: exp_ttl (10s) is shorter than min_collection_interval (30s): flows that expire between two runs are never reported`)
		}},
		{name: "capture_buffer_mb", instance: minimalInstance + "capture_buffer_mb: 64", check: func(t *testing.T, c *Config) {
			if c.Instance.BufferMB != 64 {
				t.Fatalf("BufferMB = %d, want 64", c.Instance.BufferMB)
			}
		}},
		{name: "capture_buffer_mb out of range", instance: minimalInstance + "capture_buffer_mb: 0", wantErr: `instance "eth0": capture_buffer_mb: 0 is out of range: must be between 1 and 1024 MiB`},
		{name: "capture_workers", instance: minimalInstance + "capture_workers: 2", check: func(t *testing.T, c *Config) {
			if c.Instance.Workers != 2 {
				t.Errorf("workers %d", c.Instance.Workers)
			}
		}},
		{name: "capture_workers default", instance: minimalInstance, check: func(t *testing.T, c *Config) {
			if c.Instance.Workers != 1 {
				t.Errorf("workers %d", c.Instance.Workers)
			}
		}},
		{name: "capture_workers out of range", instance: minimalInstance + "capture_workers: 0", wantErr: `instance "eth0": capture_workers: 0 is out of range: must be between 1 and 64`},
		{name: "capture_workers with pcap", instance: minimalInstance + "capture_workers: 2\ncapture_backend: pcap",
			wantErr: `instance "eth0": capture_workers: 2 workers need capture_backend afpacket (a fanout group of AF_PACKET sockets), not pcap`},
		{name: "capture_nice", instance: minimalInstance + "capture_nice: -10", check: func(t *testing.T, c *Config) {
			if c.Instance.Nice != -10 {
				t.Errorf("Nice = %d, want -10", c.Instance.Nice)
			}
		}},
		{name: "capture_nice out of range", instance: minimalInstance + "capture_nice: -21", wantErr: `instance "eth0": capture_nice: -21 is out of range: must be a nice value between -20 and 19 (0 keeps the agent's priority)`},
		{name: "capture_nice with a file", instance: "interface: file\npcap: x.pcap\nall_remote_hosts: true\ncapture_nice: -5",
			wantErr: `instance "file": capture_nice: cannot be used with interface: file (a replay has no ring to keep up with)`},
		{name: "capture_workers with a file", instance: "interface: file\npcap: x.pcap\nall_remote_hosts: true\ncapture_workers: 2",
			wantErr: `instance "file": capture_workers: cannot be used with interface: file (a file has one reader)`},
		{name: "agent-reserved keys are silent", init: "service: web\nloader: core\ntags: [a:b]", instance: minimalInstance + "loader: core\nname: x\nnamespace: ns\nno_index: true", check: func(t *testing.T, c *Config) {
			if len(c.Warnings) != 0 {
				t.Fatalf("warnings for keys the agent reserves: %q", c.Warnings)
			}
		}},
		{name: "instance unknown key warns", instance: minimalInstance + "ipz: [1.2.3.4]", check: func(t *testing.T, c *Config) {
			wantWarning(t, c, `instance "eth0": unknown key "ipz" is ignored`)
		}},
		{name: "instance not a mapping", instance: "[1, 2]", wantErr: "instance (no interface): must be a mapping"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inst := tc.instance
			if inst == "" {
				inst = minimalInstance
			}
			cfg, err := ParseConfig([]byte(inst), []byte(tc.init), -1)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("parsed, want error containing %q", tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %q does not contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			tc.check(t, cfg)
		})
	}
}

func TestConfigErrorNamesIndex(t *testing.T) {
	_, err := ParseConfig([]byte("interface: eth1\nips: [x]"), nil, 2)
	if err == nil || err.Error() != `instance #2 "eth1": ips[0]: "x" is not an IP address or CIDR` {
		t.Fatalf("err = %v", err)
	}
}

// TestConfigV5File checks that the instance and init_config of an Agent v5
// go-metro.yaml parse unchanged.
func TestConfigV5File(t *testing.T) {
	init := `
snaplen: 512
idle_ttl: 300
exp_ttl: 60
statsd_ip: 127.0.0.1
statsd_port: 8125
log_to_file: true
log_level: info
`
	inst := `
interface: eth0
tags:
  - foo:bar
ips:
  - 192.168.0.1
hosts:
  - somehost.somedomain.to
sample: true
sample_duration: 10
sample_interval: 60
`
	cfg, err := ParseConfig([]byte(inst), []byte(init), -1)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings on a v5 config: %q", cfg.Warnings)
	}
	if !cfg.Init.LogToFile || cfg.Instance.Hosts[0] != "somehost.somedomain.to" || cfg.Instance.SampleInterval != time.Minute {
		t.Errorf("parsed %+v", cfg)
	}
}

func eq(t *testing.T, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func wantWarning(t *testing.T, c *Config, sub string) {
	t.Helper()
	for _, w := range c.Warnings {
		if strings.Contains(w, sub) {
			return
		}
	}
	t.Errorf("no warning containing %q in %q", sub, c.Warnings)
}

// FuzzParseConfig: whatever the YAML, ParseConfig returns a config or a
// *ConfigError, and never panics (Configure runs inside the agent).
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(minimalInstance), []byte("snaplen: 200\nexpired_ttl: 30"))
	f.Add([]byte("interface: file\npcap: x\nall_remote_hosts: true\nports: [80, '443']"), []byte("exp_ttl: 1m\nexpired_ttl: 2m"))
	f.Add([]byte("interface: eth0\nhosts: [a.example.]\ntags: [a]\nmin_collection_interval: 20"), []byte("- a"))
	f.Add([]byte("interface: eth0\nips: {a: b}\nlocal_ips: [1, ~]"), []byte("log_level: [x]"))
	f.Fuzz(func(t *testing.T, instance, init []byte) {
		cfg, err := ParseConfig(instance, init, 0)
		var ce *ConfigError
		if err != nil && !errors.As(err, &ce) {
			t.Fatalf("error %v is not a *ConfigError", err)
		}
		if err == nil && cfg.Instance.Interface == "" {
			t.Fatal("parsed without an interface")
		}
	})
}

// TestConfigYAML11 pins what yaml.v2, which Agent v5 and the agent decode
// with, made of YAML 1.1 that yaml.v3 reads otherwise: plain yes/no/on/off
// are booleans (also for the agent-checked keys), quoted ones are strings,
// hexadecimal integers are numbers, and null or [] is an empty section.
func TestConfigYAML11(t *testing.T) {
	cfg, err := ParseConfig([]byte(minimalInstance+"sample: yes\nreverse_dns: off\nempty_default_hostname: Y\ntags: [0x10]\nx-ports: &p [443]\nports: *p"),
		[]byte("statsd_port: 0x1fbd\nlog_to_file: ON"), -1)
	if err != nil {
		t.Fatal(err)
	}
	in := cfg.Instance
	eq(t, []any{in.Sample, in.ReverseDNS, in.EmptyDefaultHostname, in.Tags, in.Ports}, []any{true, false, true, []string{"16"}, []uint16{443}})
	eq(t, []any{cfg.Init.StatsdPort, cfg.Init.LogToFile}, []any{8125, true})
	wantWarning(t, cfg, `unknown key "x-ports" is ignored`)
	for _, init := range []string{"~", "[]", "# nothing"} {
		if _, err := ParseConfig([]byte(minimalInstance), []byte(init), -1); err != nil {
			t.Errorf("init_config %q: %v", init, err)
		}
	}
	for inst, want := range map[string]string{
		`sample: "yes"`:                 `sample: "yes" is not true or false`,
		`empty_default_hostname: "yes"`: `empty_default_hostname: expected true or false, got a string (the agent rejects anything else)`,
		"yes: 1":                        `is not a string`, // yaml.v2 said "key true"
	} {
		if _, err := ParseConfig([]byte(minimalInstance+inst), nil, -1); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err %v, want %q", inst, err, want)
		}
	}
}

// TestParseDecoded: sections that yaml.v2 decoded already parse as their
// YAML text does, and the shape of a section is checked either way.
func TestParseDecoded(t *testing.T) {
	for _, tc := range []struct {
		name, init, wantErr string
	}{
		{name: "mapping", init: "snaplen: 200\nlog_to_file: yes\nexpired_ttl: 30"},
		{name: "empty", init: "~"},
		{name: "empty list", init: "[]"},
		{name: "list of mappings", init: "- snaplen: 200", wantErr: "init_config: must be a mapping of keys to values"},
		{name: "list of key and value mappings", init: "- {key: snaplen, value: 200}", wantErr: "init_config: must be a mapping of keys to values"},
		{name: "scalar", init: "snaplen", wantErr: "init_config: must be a mapping of keys to values"},
		{name: "key twice", init: "snaplen: 200\nsnaplen: 200", wantErr: "init_config: snaplen: appears more than once"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var doc yaml.MapSlice // as a whole conf.yaml is decoded
			indent := func(s string) string { return "\n  " + strings.ReplaceAll(s, "\n", "\n  ") + "\n" }
			if err := yaml.Unmarshal([]byte("init_config:"+indent(tc.init)+"instance:"+indent(minimalInstance)), &doc); err != nil {
				t.Fatal(err)
			}
			fromText, errText := ParseConfig([]byte(minimalInstance), []byte(tc.init), -1)
			decoded, errDecoded := ParseDecoded(doc[1].Value, doc[0].Value, -1)
			for _, err := range []error{errText, errDecoded} {
				if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr) {
					t.Errorf("err %v, want %q", err, tc.wantErr)
				}
			}
			eq(t, decoded, fromText)
		})
	}
}
