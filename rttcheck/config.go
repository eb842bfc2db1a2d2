package rttcheck

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gometro/go-metro/capture"
	"github.com/gometro/go-metro/capture/packet"
)

// Limits and defaults of the configuration. The capture defaults (snaplen,
// TTLs, max_flows) are package capture's.
const (
	// MinSnaplen is the longest header stack the decoder reads: a shorter
	// snaplen would cut the TCP options (timestamps, SACK) off some frames.
	MinSnaplen = packet.MaxHeaderLen
	// MaxSnaplen is the largest frame a capture can ask for.
	MaxSnaplen = 65535
	// MaxMaxFlows bounds max_flows so a typo cannot ask for gigabytes.
	MaxMaxFlows = 1 << 22
	// maxTTL bounds idle_ttl, exp_ttl and the other durations: flows kept
	// longer than a day are a configuration mistake, not a monitoring need.
	maxTTL = 24 * time.Hour

	DefaultStatsdIP   = "127.0.0.1"
	DefaultStatsdPort = 8125

	DefaultMinCollectionInterval = 15 * time.Second
	DefaultHostsRefresh          = 5 * time.Minute
	minHostsRefresh              = 10 * time.Second
	DefaultSampleDuration        = 30 * time.Second
	DefaultSampleInterval        = 60 * time.Second

	// FileInterface is the interface name that replays a capture file.
	FileInterface = "file"
	// AnyInterface captures on every interface (Linux cooked capture).
	AnyInterface = "any"
)

// The configuration sections are decoded into these structs, and their field
// tags are the one list of the keys: `yaml` is the key, `alias` its Agent v5
// spelling, and a key tagged `agent` is one the agent's CheckBase decodes too,
// with yaml's plain types, so only the YAML type the agent accepts is
// accepted. A field named _ is a key the agent reserves for itself
// (autodiscovery's CommonGlobalConfig and CommonInstanceConfig, the check
// loader): accepted without a warning and not parsed. Any other key gets an
// "unknown key" warning. Adding a key: a field with its tag, a line in
// validate if it has limits, and its @param in conf.yaml.example.

// InitConfig is the parsed init_config section, shared by all instances.
type InitConfig struct {
	Snaplen int           `yaml:"snaplen"`
	IdleTTL time.Duration `yaml:"idle_ttl"`
	// The v5 binary read expired_ttl although its example said exp_ttl.
	ExpTTL     time.Duration `yaml:"exp_ttl" alias:"expired_ttl"`
	MaxFlows   int           `yaml:"max_flows"`
	StatsdIP   string        `yaml:"statsd_ip"`   // standalone binary only
	StatsdPort int           `yaml:"statsd_port"` // standalone binary only
	LogToFile  bool          `yaml:"log_to_file"` // standalone binary only
	LogLevel   string        `yaml:"log_level"`   // standalone binary only; inside the agent its own rules apply

	_ struct{} `yaml:"service"`
	_ struct{} `yaml:"loader"`
	_ struct{} `yaml:"min_collection_interval"`
	_ struct{} `yaml:"tags"`
	_ struct{} `yaml:"empty_default_hostname"`
}

// InstanceConfig is one parsed and validated instance.
type InstanceConfig struct {
	Interface      string         `yaml:"interface"` // first: every later message names it
	Pcap           string         `yaml:"pcap"`      // replay file when Interface is "file"
	IPs            []netip.Prefix `yaml:"ips"`
	Hosts          []string       `yaml:"hosts"`
	HostsRefresh   time.Duration  `yaml:"hosts_refresh_interval"`
	Tags           []string       `yaml:"tags"`
	Sample         bool           `yaml:"sample"`
	SampleDuration time.Duration  `yaml:"sample_duration"`
	SampleInterval time.Duration  `yaml:"sample_interval"`
	LocalIPs       []netip.Prefix `yaml:"local_ips"`
	Ports          []uint16       `yaml:"ports"`
	Backend        string         `yaml:"capture_backend"`
	BufferMB       int            `yaml:"capture_buffer_mb"` // kernel capture ring, MiB; 0: the default
	// Workers is the number of capture workers (capture.Config.Workers).
	Workers int `yaml:"capture_workers"`
	// Nice is the capture readers' nice value (capture.Config.ReaderNice).
	Nice           int  `yaml:"capture_nice"`
	AllRemoteHosts bool `yaml:"all_remote_hosts"`
	ReverseDNS     bool `yaml:"reverse_dns"`
	// DNSNames names remotes from the DNS answers on the interface (see
	// capture/dnsnames.go).
	DNSNames bool `yaml:"dns_names"`
	// Tunnels are the encapsulations whose inner TCP is timed; see
	// capture/tunnel.go for the default and conf.yaml.example.
	Tunnels packet.Encap `yaml:"tunnels"`

	// Series shape (report_options.go).
	GroupDstIPv4Prefix    int  `yaml:"group_dst_ipv4_prefix"`
	GroupDstIPv6Prefix    int  `yaml:"group_dst_ipv6_prefix"`
	MaxHostPairs          int  `yaml:"max_host_pairs"`
	TagDstPort            bool `yaml:"tag_dst_port"`
	TagRole               bool `yaml:"tag_role"`
	RTTDistributionValues int  `yaml:"rtt_distribution_values"`
	// TagCardinality is the containers' and pods' tags' cardinality (one
	// of TagCardinalities; "": the agent's checks_tag_cardinality).
	TagCardinality string `yaml:"tag_cardinality"`

	// Keys the agent's CheckBase handles; the standalone binary uses
	// MinCollectionInterval itself.
	MinCollectionInterval time.Duration `yaml:"min_collection_interval" agent:""`
	Service               string        `yaml:"service"`
	EmptyDefaultHostname  bool          `yaml:"empty_default_hostname" agent:""`

	_ struct{} `yaml:"loader"`
	_ struct{} `yaml:"name"`
	_ struct{} `yaml:"namespace"`
	_ struct{} `yaml:"no_index"`
}

// InitKeys and InstanceKeys are the keys the check itself reads, from the
// struct tags; the documentation test checks each is described in
// conf.yaml.example.
var (
	InitKeys     = keysOf(reflect.TypeFor[InitConfig](), false)
	InstanceKeys = keysOf(reflect.TypeFor[InstanceConfig](), false)
)

// keysOf lists the keys of a section, and with reserved those of its _ fields.
func keysOf(t reflect.Type, reserved bool) []string {
	var keys []string
	for i := range t.NumField() {
		if f := t.Field(i); f.Name != "_" || reserved {
			keys = append(keys, f.Tag.Get("yaml"))
			if a := f.Tag.Get("alias"); a != "" {
				keys = append(keys, a)
			}
		}
	}
	return keys
}

// Config is a parsed init_config plus one instance, and the warnings that
// parsing produced (unknown keys, ambiguous aliases).
type Config struct {
	Init     InitConfig
	Instance InstanceConfig
	Warnings []string
}

// ConfigError is a configuration problem: where it is (init_config or the
// instance), which key, and why.
type ConfigError struct {
	Where  string // `init_config` or `instance "eth0"`
	Key    string // e.g. `ips[2]`
	Reason string
}

func (e *ConfigError) Error() string {
	if e.Key == "" {
		return e.Where + ": " + e.Reason
	}
	return e.Where + ": " + e.Key + ": " + e.Reason
}

// maxEcho caps a configured value echoed in a message: a value can be
// megabytes long, and a message is one log line.
const maxEcho = 64

// echo quotes a configured value for a message, cut at maxEcho bytes.
func echo(v any) string {
	s := fmt.Sprint(v)
	if len(s) <= maxEcho {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%s... (%d bytes)", strconv.Quote(s[:maxEcho]), len(s))
}

// truncate cuts s, a value or list of them for a message, at twice
// maxEcho bytes.
func truncate(s string) string {
	if len(s) <= 2*maxEcho {
		return s
	}
	return fmt.Sprintf("%s... (%d bytes)", s[:2*maxEcho], len(s))
}

// instanceName names an instance in messages: by its interface when it has
// one, which is what a user recognises in a file with several instances.
func instanceName(iface string, index int) string {
	name := "instance"
	if index >= 0 {
		name += fmt.Sprintf(" #%d", index)
	}
	if iface != "" {
		return name + " " + echo(iface)
	} else if index < 0 {
		name += " (no interface)"
	}
	return name
}

// ParseConfig parses and validates the instance and init_config YAML. index
// is the instance's position in its file (-1 when unknown, as inside the
// agent) and only improves messages.
func ParseConfig(instance, initConfig []byte, index int) (*Config, error) {
	return ParseDecoded(instance, initConfig, index)
}

// ParseDecoded is ParseConfig for sections that yaml.v2 has decoded already,
// as in a whole conf.yaml decoded into a yaml.MapSlice (which decodes each
// mapping in it as one too), or a section's YAML text as a []byte.
func ParseDecoded(instance, initConfig any, index int) (*Config, error) {
	cfg := &Config{
		Init: InitConfig{
			Snaplen:    capture.DefaultSnaplen,
			IdleTTL:    capture.DefaultIdleTTL,
			ExpTTL:     capture.DefaultExpTTL,
			MaxFlows:   capture.DefaultMaxFlows,
			StatsdIP:   DefaultStatsdIP,
			StatsdPort: DefaultStatsdPort,
			LogLevel:   "info",
		},
		Instance: InstanceConfig{
			HostsRefresh:          DefaultHostsRefresh,
			SampleDuration:        DefaultSampleDuration,
			SampleInterval:        DefaultSampleInterval,
			MinCollectionInterval: DefaultMinCollectionInterval,
			ReverseDNS:            true,
			DNSNames:              true,
			RTTDistributionValues: DefaultDistributionValues,
			Workers:               1,
		},
	}
	ini, in := &cfg.Init, &cfg.Instance
	set, err := decodeSection(initConfig, func() string { return "init_config" }, ini, &cfg.Warnings)
	if err == nil {
		err = ini.validate(set)
	}
	if err != nil {
		return nil, err
	}
	where := func() string { return instanceName(in.Interface, index) }
	if set, err = decodeSection(instance, where, in, &cfg.Warnings); err == nil {
		err = in.validate(where(), set, &cfg.Warnings)
	}
	if err != nil {
		return nil, err
	}
	// Tunnelled headers are longer than bare ones: a live capture cut at
	// snaplen loses the inner TCP header of the deepest ones.
	if in.Tunnels != 0 && in.Interface != FileInterface && ini.Snaplen < packet.MaxTunnelHeaderLen {
		cfg.Warnings = append(cfg.Warnings, fmt.Sprintf(
			"%s: tunnels: init_config snaplen %d is below the %d bytes the largest tunnelled header stack needs: segments in deeper encapsulations are cut and counted as truncated",
			where(), ini.Snaplen, packet.MaxTunnelHeaderLen))
	}
	// A flow that expires between two runs takes its samples with it.
	for i, ttl := range []time.Duration{ini.ExpTTL, ini.IdleTTL} {
		if ttl < in.MinCollectionInterval {
			cfg.Warnings = append(cfg.Warnings, fmt.Sprintf(
				"init_config: %s (%s) is shorter than min_collection_interval (%s): flows that expire between two runs are never reported",
				[]string{"exp_ttl", "idle_ttl"}[i], ttl, in.MinCollectionInterval))
		}
	}
	return cfg, nil
}

// keySet maps each key a section sets to the spelling the user wrote (an
// alias or the key itself), so that a message names what is in the file.
type keySet map[string]string

// rules returns a function that checks one rule of a section and keeps, in
// *err, the first that is broken, so that validate reads as a table.
func (s keySet) rules(where string, err *error) func(broken bool, key, format string, a ...any) {
	return func(broken bool, key, format string, a ...any) {
		if k, ok := s[key]; ok {
			key = k
		}
		if broken && *err == nil {
			*err = &ConfigError{Where: where, Key: key, Reason: fmt.Sprintf(format, a...)}
		}
	}
}

// LogLevels are the values of log_level once its aliases (warning, err, crit)
// are resolved, from the most verbose to off, the order the standalone
// binary's logger compares them in.
var LogLevels = []string{"trace", "debug", "info", "warn", "error", "critical", "off"}

// validate applies the limits of the init_config keys.
func (ic *InitConfig) validate(set keySet) (err error) {
	level := strings.ToLower(ic.LogLevel)
	level = cmp.Or(map[string]string{"warning": "warn", "err": "error", "crit": "critical"}[level], level)
	rule := set.rules("init_config", &err)
	rule(ic.Snaplen < MinSnaplen, "snaplen", "%d is too small: the minimum is %d bytes, the longest header stack the decoder reads (Ethernet, two VLAN tags, IPv6, TCP with 40 bytes of options)", ic.Snaplen, MinSnaplen)
	rule(ic.Snaplen > MaxSnaplen, "snaplen", "%d is too large: the maximum is %d", ic.Snaplen, MaxSnaplen)
	rule(ic.IdleTTL < time.Second || ic.IdleTTL > maxTTL, "idle_ttl", "%s is out of range: must be between 1s and %s", ic.IdleTTL, maxTTL)
	rule(ic.ExpTTL < time.Second || ic.ExpTTL > maxTTL, "exp_ttl", "%s is out of range: must be between 1s and %s", ic.ExpTTL, maxTTL)
	rule(ic.MaxFlows < 1 || ic.MaxFlows > MaxMaxFlows, "max_flows", "%d is out of range: must be between 1 and %d", ic.MaxFlows, MaxMaxFlows)
	rule(ic.StatsdIP == "", "statsd_ip", "must not be empty")
	rule(ic.StatsdPort < 1 || ic.StatsdPort > 65535, "statsd_port", "%d is not a port number (1-65535)", ic.StatsdPort)
	rule(!slices.Contains(LogLevels, level), "log_level", "%s is not a log level (%s)", echo(ic.LogLevel), strings.Join(LogLevels, ", "))
	ic.LogLevel = level
	return err
}

// validate applies the limits of the instance keys and the rules between them.
func (in *InstanceConfig) validate(where string, set keySet, warnings *[]string) (err error) {
	rule, file := set.rules(where, &err), in.Interface == FileInterface
	rule(in.Interface == "", "interface", `is required: an interface name, "any", or "file" with pcap`)
	// Linux interface names: at most IFNAMSIZ-1 bytes, no '/' nor whitespace.
	rule(len(in.Interface) > 15, "interface", "%s is not an interface name: longer than 15 bytes", echo(in.Interface))
	rule(strings.ContainsAny(in.Interface, "/ \t\n"), "interface", "%s is not an interface name", echo(in.Interface))
	for i, h := range in.Hosts {
		in.Hosts[i] = strings.TrimSuffix(h, ".")
		e := validHostname(in.Hosts[i])
		rule(e != nil, fmt.Sprintf("hosts[%d]", i), "%v", e)
	}
	for i, t := range in.Tags {
		rule(t == "", fmt.Sprintf("tags[%d]", i), "empty tag")
	}
	slices.Sort(in.Ports)
	in.Backend = strings.ToLower(in.Backend)
	in.TagCardinality = strings.ToLower(in.TagCardinality)
	if in.TagCardinality == "orch" { // the agent's short form
		in.TagCardinality = "orchestrator"
	}
	seconds := int(in.MinCollectionInterval / time.Second)
	rule(set["pcap"] != "" && in.Pcap == "", "pcap", "must not be empty")
	rule(in.HostsRefresh < minHostsRefresh || in.HostsRefresh > maxTTL, "hosts_refresh_interval", "%s is out of range: must be between %s and %s", in.HostsRefresh, minHostsRefresh, maxTTL)
	rule(in.SampleDuration <= 0 || in.SampleDuration > maxTTL, "sample_duration", "%s must be positive and at most %s", in.SampleDuration, maxTTL)
	rule(in.SampleInterval <= 0 || in.SampleInterval > maxTTL, "sample_interval", "%s must be positive and at most %s", in.SampleInterval, maxTTL)
	rule(in.Backend != "" && in.Backend != "afpacket" && in.Backend != "pcap", "capture_backend", "%s is not a capture backend: use afpacket or pcap", echo(in.Backend))
	rule(set["capture_buffer_mb"] != "" && (in.BufferMB < 1 || in.BufferMB > 1024), "capture_buffer_mb", "%d is out of range: must be between 1 and 1024 MiB", in.BufferMB)
	rule(in.Workers < 1 || in.Workers > capture.MaxWorkers, "capture_workers", "%d is out of range: must be between 1 and %d", in.Workers, capture.MaxWorkers)
	rule(in.Nice < capture.MinNice || in.Nice > capture.MaxNice, "capture_nice", "%d is out of range: must be a nice value between %d and %d (0 keeps the agent's priority)", in.Nice, capture.MinNice, capture.MaxNice)
	rule(seconds < 1 || in.MinCollectionInterval > maxTTL, "min_collection_interval", "%d is out of range: must be between 1 and %d seconds", seconds, int(maxTTL/time.Second))
	rule(in.GroupDstIPv4Prefix < 0 || in.GroupDstIPv4Prefix > 32, "group_dst_ipv4_prefix", "%d is not a prefix length 0-32 (0 turns grouping off)", in.GroupDstIPv4Prefix)
	rule(in.GroupDstIPv6Prefix < 0 || in.GroupDstIPv6Prefix > 128, "group_dst_ipv6_prefix", "%d is not a prefix length 0-128 (0 turns grouping off)", in.GroupDstIPv6Prefix)
	rule(in.MaxHostPairs < 0, "max_host_pairs", "%d is negative (0 means no cap)", in.MaxHostPairs)
	rule(set["tag_cardinality"] != "" && !slices.Contains(TagCardinalities, in.TagCardinality), "tag_cardinality", "%q is not a tag cardinality: use %s (unset: the agent's checks_tag_cardinality)", in.TagCardinality, strings.Join(TagCardinalities, ", "))
	rule(in.RTTDistributionValues < 0 || in.RTTDistributionValues > MaxDistributionValues, "rtt_distribution_values", "%d is out of range 0-%d (0 turns the distribution off)", in.RTTDistributionValues, MaxDistributionValues)
	// Rules between keys.
	rule(file && in.Pcap == "", "pcap", `is required with interface: file`)
	rule(!file && in.Pcap != "", "pcap", `is only used with interface: file`)
	rule(file && in.Sample, "sample", "cannot be used with interface: file (a replay runs once)")
	rule(file && in.Workers > 1, "capture_workers", "cannot be used with interface: file (a file has one reader)")
	rule(file && in.Nice != 0, "capture_nice", "cannot be used with interface: file (a replay has no ring to keep up with)")
	rule(in.Workers > 1 && in.Backend == "pcap", "capture_workers", "%d workers need capture_backend afpacket (a fanout group of AF_PACKET sockets), not pcap", in.Workers)
	rule(len(in.IPs) == 0 && len(in.Hosts) == 0 && !in.AllRemoteHosts, "ips", "neither ips nor hosts is set: list the remote hosts to monitor, or set all_remote_hosts: true to track every TCP flow on the interface")
	rule(in.AllRemoteHosts && (len(in.IPs) > 0 || len(in.Hosts) > 0), "all_remote_hosts", "cannot be true together with ips or hosts: remove one or the other")
	if err == nil && !in.Sample && (set["sample_duration"] != "" || set["sample_interval"] != "") {
		*warnings = append(*warnings, where+": sample_duration and sample_interval have no effect unless sample: true")
	}
	return err
}

// ParsePrefix reads an address ("10.0.0.1", "::1") as a host prefix or a
// CIDR ("10.0.0.0/8") as its masked prefix.
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// hostName is RFC 1123 syntax (letters, digits, hyphens; labels of 1-63
// bytes not starting or ending with a hyphen) that also takes underscores,
// which real DNS names carry (_service records, some cloud host names).
var hostName = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*$`)

// validHostname applies hostName and RFC 1123's 253 bytes in all. An address
// belongs in ips.
func validHostname(s string) error {
	if _, err := netip.ParseAddr(s); err == nil {
		return fmt.Errorf("%s is an IP address: list it under ips", echo(s))
	}
	switch {
	case s == "":
		return errors.New("empty host name")
	case len(s) > 253:
		return fmt.Errorf("%s is not a host name: longer than 253 bytes", echo(s))
	case !hostName.MatchString(s):
		return fmt.Errorf("%s is not a host name", echo(s))
	}
	return nil
}
