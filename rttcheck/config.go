package rttcheck

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v2"
)

// Limits and defaults of the configuration.
const (
	// MinSnaplen holds the largest header stack the decoder reads: Ethernet
	// (14) + two 802.1Q/802.1ad tags (8) + IPv6 (40) + TCP with 40 bytes of
	// options (60). Linux cooked capture v2 (20 bytes) fits inside it too.
	MinSnaplen = 14 + 8 + 40 + 60
	// MaxSnaplen is the largest frame a capture can ask for.
	MaxSnaplen = 65535

	DefaultSnaplen  = 512
	DefaultIdleTTL  = 300 * time.Second
	DefaultExpTTL   = 60 * time.Second
	DefaultMaxFlows = 16384
	// MaxMaxFlows bounds max_flows so a typo cannot ask for gigabytes.
	MaxMaxFlows = 1 << 22
	// maxTTL bounds idle_ttl and exp_ttl: flows kept longer than a day are a
	// configuration mistake, not a monitoring need.
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

// InitKeys and InstanceKeys are every key the configuration knows (others
// produce an "unknown key" warning). The documentation test checks each is
// described in conf.yaml.example.
var (
	InitKeys = []string{"snaplen", "idle_ttl", "exp_ttl", "expired_ttl", "max_flows",
		"statsd_ip", "statsd_port", "log_to_file", "log_level"}
	InstanceKeys = []string{"interface", "pcap", "ips", "hosts", "hosts_refresh_interval", "tags",
		"sample", "sample_duration", "sample_interval", "local_ips", "ports", "capture_backend", "capture_buffer_mb",
		"all_remote_hosts", "reverse_dns", "min_collection_interval", "service", "empty_default_hostname"}

	// agentInitKeys and agentInstanceKeys are reserved by the Datadog
	// agent itself (autodiscovery's CommonGlobalConfig and
	// CommonInstanceConfig, the check loader): they are the agent's to
	// validate, so they are accepted without a warning and not parsed.
	agentInitKeys     = []string{"service", "loader", "min_collection_interval", "tags", "empty_default_hostname"}
	agentInstanceKeys = []string{"loader", "name", "namespace", "no_index"}
)

// InitConfig is the parsed init_config section, shared by all instances.
type InitConfig struct {
	Snaplen    int
	IdleTTL    time.Duration
	ExpTTL     time.Duration
	MaxFlows   int
	StatsdIP   string // standalone binary only
	StatsdPort int    // standalone binary only
	LogToFile  bool   // standalone binary only
	LogLevel   string // standalone binary only; inside the agent its own rules apply
}

// InstanceConfig is one parsed and validated instance.
type InstanceConfig struct {
	Interface      string
	Pcap           string // replay file when Interface is "file"
	IPs            []netip.Prefix
	Hosts          []string
	HostsRefresh   time.Duration
	Tags           []string
	Sample         bool
	SampleDuration time.Duration
	SampleInterval time.Duration
	LocalIPs       []netip.Prefix
	Ports          []uint16
	Backend        string
	BufferMB       int // kernel capture ring, MiB; 0: the default
	AllRemoteHosts bool
	ReverseDNS     bool

	// Keys the agent's CheckBase handles; the standalone binary uses
	// MinCollectionInterval itself.
	MinCollectionInterval time.Duration
	Service               string
	EmptyDefaultHostname  bool
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

// instanceName names an instance in messages: by its interface when it has
// one, which is what a user recognises in a file with several instances.
func instanceName(iface string, index int) string {
	switch {
	case iface != "" && index >= 0:
		return fmt.Sprintf("instance #%d %q", index, iface)
	case iface != "":
		return fmt.Sprintf("instance %q", iface)
	case index >= 0:
		return fmt.Sprintf("instance #%d", index)
	}
	return "instance (no interface)"
}

// ParseConfig parses and validates the instance and init_config YAML the
// way Configure does. index is the instance's position in its file (-1 when
// unknown, as inside the agent) and only improves messages.
func ParseConfig(instance, initConfig []byte, index int) (*Config, error) {
	cfg := &Config{}
	if err := parseInit(initConfig, &cfg.Init, &cfg.Warnings); err != nil {
		return nil, err
	}
	if err := parseInstance(instance, index, &cfg.Instance, &cfg.Warnings); err != nil {
		return nil, err
	}
	// A flow that expires between two runs takes its samples with it.
	interval := cfg.Instance.MinCollectionInterval
	for _, ttl := range []struct {
		key string
		d   time.Duration
	}{{"exp_ttl", cfg.Init.ExpTTL}, {"idle_ttl", cfg.Init.IdleTTL}} {
		if ttl.d < interval {
			cfg.Warnings = append(cfg.Warnings, fmt.Sprintf(
				"init_config: %s (%s) is shorter than min_collection_interval (%s): flows that expire between two runs are never reported",
				ttl.key, ttl.d, interval))
		}
	}
	return cfg, nil
}

// decodeMap reads a YAML mapping, keeping key order so that errors and
// warnings come out in the order the user wrote them.
func decodeMap(data []byte, where string) (yaml.MapSlice, error) {
	var m yaml.MapSlice
	if err := yaml.Unmarshal(data, &m); err != nil {
		// yaml.v2 says "cannot unmarshal !!seq into yaml.MapSlice" for a
		// list; say what was expected instead.
		if strings.Contains(err.Error(), "cannot unmarshal") {
			return nil, &ConfigError{Where: where, Reason: "must be a mapping of keys to values"}
		}
		return nil, &ConfigError{Where: where, Reason: "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	seen := map[string]bool{}
	for _, item := range m {
		k, ok := item.Key.(string)
		if !ok {
			return nil, &ConfigError{Where: where, Reason: fmt.Sprintf("key %v is not a string", item.Key)}
		}
		if seen[k] {
			return nil, &ConfigError{Where: where, Key: k, Reason: "appears more than once"}
		}
		seen[k] = true
	}
	return m, nil
}

func parseInit(data []byte, ic *InitConfig, warnings *[]string) error {
	const where = "init_config"
	*ic = InitConfig{
		Snaplen:    DefaultSnaplen,
		IdleTTL:    DefaultIdleTTL,
		ExpTTL:     DefaultExpTTL,
		MaxFlows:   DefaultMaxFlows,
		StatsdIP:   DefaultStatsdIP,
		StatsdPort: DefaultStatsdPort,
		LogLevel:   "info",
	}
	m, err := decodeMap(data, where)
	if err != nil {
		return err
	}
	var expTTL, expiredTTL *time.Duration
	for _, item := range m {
		key := item.Key.(string)
		v := item.Value
		fail := func(reason string) error { return &ConfigError{Where: where, Key: key, Reason: reason} }
		var err error
		switch key {
		case "snaplen":
			var n int
			if n, err = asInt(v); err == nil {
				switch {
				case n < MinSnaplen:
					return fail(fmt.Sprintf("%d is too small: the minimum is %d bytes (Ethernet 14 + two VLAN tags 8 + IPv6 40 + TCP header with 40 bytes of options 60)", n, MinSnaplen))
				case n > MaxSnaplen:
					return fail(fmt.Sprintf("%d is too large: the maximum is %d", n, MaxSnaplen))
				}
				ic.Snaplen = n
			}
		case "idle_ttl":
			var d time.Duration
			if d, err = asTTL(v); err == nil {
				ic.IdleTTL = d
			}
		case "exp_ttl", "expired_ttl":
			var d time.Duration
			if d, err = asTTL(v); err == nil {
				if key == "exp_ttl" {
					expTTL = &d
				} else {
					expiredTTL = &d
				}
			}
		case "max_flows":
			var n int
			if n, err = asInt(v); err == nil {
				if n < 1 || n > MaxMaxFlows {
					return fail(fmt.Sprintf("%d is out of range: must be between 1 and %d", n, MaxMaxFlows))
				}
				ic.MaxFlows = n
			}
		case "statsd_ip":
			var s string
			if s, err = asString(v); err == nil {
				if s == "" {
					return fail("must not be empty")
				}
				ic.StatsdIP = s
			}
		case "statsd_port":
			var n int
			if n, err = asInt(v); err == nil {
				if n < 1 || n > 65535 {
					return fail(fmt.Sprintf("%d is not a port number (1-65535)", n))
				}
				ic.StatsdPort = n
			}
		case "log_to_file":
			ic.LogToFile, err = asBool(v)
		case "log_level":
			var s string
			if s, err = asString(v); err == nil {
				l, ok := normalizeLogLevel(s)
				if !ok {
					return fail(fmt.Sprintf("%q is not a log level (trace, debug, info, warn, error, critical, off)", s))
				}
				ic.LogLevel = l
			}
		default:
			if slices.Contains(agentInitKeys, key) {
				break
			}
			*warnings = append(*warnings, fmt.Sprintf("%s: unknown key %q is ignored", where, key))
		}
		if err != nil {
			return fail(err.Error())
		}
	}
	switch {
	case expTTL != nil && expiredTTL != nil:
		if *expTTL != *expiredTTL {
			*warnings = append(*warnings, fmt.Sprintf("%s: both exp_ttl (%s) and expired_ttl (%s) are set: using exp_ttl", where, *expTTL, *expiredTTL))
		}
		ic.ExpTTL = *expTTL
	case expTTL != nil:
		ic.ExpTTL = *expTTL
	case expiredTTL != nil:
		// The v5 binary read expired_ttl although its example said exp_ttl.
		ic.ExpTTL = *expiredTTL
	}
	return nil
}

func normalizeLogLevel(s string) (string, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "trace":
		return "trace", true
	case "debug":
		return "debug", true
	case "info":
		return "info", true
	case "warn", "warning":
		return "warn", true
	case "error", "err":
		return "error", true
	case "critical", "crit":
		return "critical", true
	case "off":
		return "off", true
	}
	return "", false
}

func parseInstance(data []byte, index int, ic *InstanceConfig, warnings *[]string) error {
	*ic = InstanceConfig{
		HostsRefresh:          DefaultHostsRefresh,
		SampleDuration:        DefaultSampleDuration,
		SampleInterval:        DefaultSampleInterval,
		MinCollectionInterval: DefaultMinCollectionInterval,
		ReverseDNS:            true,
	}
	m, err := decodeMap(data, instanceName("", index))
	if err != nil {
		return err
	}
	// Read the interface first so every later message can name it.
	for _, item := range m {
		if item.Key.(string) == "interface" {
			s, err := asString(item.Value)
			if err != nil {
				return &ConfigError{Where: instanceName("", index), Key: "interface", Reason: err.Error()}
			}
			ic.Interface = strings.TrimSpace(s)
		}
	}
	where := instanceName(ic.Interface, index)
	if ic.Interface == "" {
		return &ConfigError{Where: where, Key: "interface", Reason: `is required: an interface name, "any", or "file" with pcap`}
	}
	if err := validIfaceName(ic.Interface); err != nil {
		return &ConfigError{Where: where, Key: "interface", Reason: err.Error()}
	}
	var sampleDurSet, sampleIvalSet bool
	for _, item := range m {
		key := item.Key.(string)
		v := item.Value
		var err error
		switch key {
		case "interface":
		case "pcap":
			ic.Pcap, err = asString(v)
			if err == nil && ic.Pcap == "" {
				err = fmt.Errorf("must not be empty")
			}
		case "ips":
			ic.IPs, err = prefixList(where, key, v)
		case "local_ips":
			ic.LocalIPs, err = prefixList(where, key, v)
		case "hosts":
			ic.Hosts, err = hostList(where, key, v)
		case "hosts_refresh_interval":
			ic.HostsRefresh, err = asDuration(v)
			if err == nil && (ic.HostsRefresh < minHostsRefresh || ic.HostsRefresh > maxTTL) {
				err = fmt.Errorf("%s is out of range: must be between %s and %s", ic.HostsRefresh, minHostsRefresh, maxTTL)
			}
		case "tags":
			ic.Tags, err = tagList(where, key, v)
		case "sample":
			ic.Sample, err = asBool(v)
		case "sample_duration":
			sampleDurSet = true
			ic.SampleDuration, err = positiveDuration(v)
		case "sample_interval":
			sampleIvalSet = true
			ic.SampleInterval, err = positiveDuration(v)
		case "ports":
			ic.Ports, err = portList(where, key, v)
		case "capture_backend":
			var s string
			if s, err = asString(v); err == nil {
				s = strings.ToLower(strings.TrimSpace(s))
				if s != "afpacket" && s != "pcap" {
					err = fmt.Errorf("%q is not a capture backend: use afpacket or pcap", s)
				}
				ic.Backend = s
			}
		case "capture_buffer_mb":
			var n int
			if n, err = asInt(v); err == nil {
				if n < 1 || n > 1024 {
					err = fmt.Errorf("%d is out of range: must be between 1 and 1024 MiB", n)
				}
				ic.BufferMB = n
			}
		case "all_remote_hosts":
			ic.AllRemoteHosts, err = asBool(v)
		case "reverse_dns":
			ic.ReverseDNS, err = asBool(v)
		case "min_collection_interval":
			// A whole number of seconds: the agent's CheckBase decodes it
			// as an int and would reject anything else.
			n, ok := v.(int)
			if !ok {
				err = fmt.Errorf("expected a whole number of seconds, got %s (the agent rejects anything else)", typeName(v))
			} else {
				if n < 1 || n > int(maxTTL/time.Second) {
					err = fmt.Errorf("%d is out of range: must be between 1 and %d seconds", n, int(maxTTL/time.Second))
				}
				ic.MinCollectionInterval = time.Duration(n) * time.Second
			}
		case "service":
			ic.Service, err = asString(v)
		case "empty_default_hostname":
			b, ok := v.(bool)
			if !ok {
				err = fmt.Errorf("expected true or false, got %s (the agent rejects anything else)", typeName(v))
			}
			ic.EmptyDefaultHostname = b
		default:
			if slices.Contains(agentInstanceKeys, key) {
				break
			}
			*warnings = append(*warnings, fmt.Sprintf("%s: unknown key %q is ignored", where, key))
		}
		if err != nil {
			if ce, ok := err.(*ConfigError); ok {
				return ce
			}
			return &ConfigError{Where: where, Key: key, Reason: err.Error()}
		}
	}
	// Cross-key rules.
	if ic.Interface == FileInterface && ic.Pcap == "" {
		return &ConfigError{Where: where, Key: "pcap", Reason: `is required with interface: file`}
	}
	if ic.Interface != FileInterface && ic.Pcap != "" {
		return &ConfigError{Where: where, Key: "pcap", Reason: `is only used with interface: file`}
	}
	if ic.Interface == FileInterface && ic.Sample {
		return &ConfigError{Where: where, Key: "sample", Reason: "cannot be used with interface: file (a replay runs once)"}
	}
	if len(ic.IPs) == 0 && len(ic.Hosts) == 0 && !ic.AllRemoteHosts {
		return &ConfigError{Where: where, Key: "ips", Reason: "neither ips nor hosts is set: list the remote hosts to monitor, or set all_remote_hosts: true to track every TCP flow on the interface"}
	}
	if ic.AllRemoteHosts && (len(ic.IPs) > 0 || len(ic.Hosts) > 0) {
		return &ConfigError{Where: where, Key: "all_remote_hosts", Reason: "cannot be true together with ips or hosts: remove one or the other"}
	}
	if !ic.Sample && (sampleDurSet || sampleIvalSet) {
		*warnings = append(*warnings, fmt.Sprintf("%s: sample_duration and sample_interval have no effect unless sample: true", where))
	}
	return nil
}

func validIfaceName(s string) error {
	// Linux interface names: at most IFNAMSIZ-1 bytes, no '/' nor whitespace.
	if len(s) > 15 {
		return fmt.Errorf("%q is not an interface name: longer than 15 bytes", s)
	}
	if strings.ContainsAny(s, "/ \t\n") {
		return fmt.Errorf("%q is not an interface name", s)
	}
	return nil
}

// ---- value helpers: YAML scalars arrive as int, float64, bool or string ----

func typeName(v interface{}) string {
	switch v.(type) {
	case nil:
		return "nothing"
	case bool:
		return "a boolean"
	case int, int64, uint64:
		return "an integer"
	case float64:
		return "a number"
	case string:
		return "a string"
	case []interface{}:
		return "a list"
	case map[interface{}]interface{}, yaml.MapSlice:
		return "a mapping"
	}
	return fmt.Sprintf("%T", v)
}

func asInt(v interface{}) (int, error) {
	switch x := v.(type) {
	case int:
		return x, nil
	case int64:
		if x > math.MaxInt32 || x < math.MinInt32 {
			return 0, fmt.Errorf("%d is out of range", x)
		}
		return int(x), nil
	case uint64:
		return 0, fmt.Errorf("%d is out of range", x)
	case float64:
		if x != math.Trunc(x) {
			return 0, fmt.Errorf("%v is not a whole number", x)
		}
		return int(x), nil
	case string:
		// Quoted numbers are common in hand-written YAML.
		n, err := strconv.Atoi(strings.TrimSpace(x))
		if err != nil {
			return 0, fmt.Errorf("%q is not an integer", x)
		}
		return n, nil
	}
	return 0, fmt.Errorf("expected an integer, got %s", typeName(v))
}

func asBool(v interface{}) (bool, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		b, err := strconv.ParseBool(strings.TrimSpace(x))
		if err != nil {
			return false, fmt.Errorf("%q is not true or false", x)
		}
		return b, nil
	}
	return false, fmt.Errorf("expected true or false, got %s", typeName(v))
}

func asString(v interface{}) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case int, int64, uint64, float64:
		// An unquoted numeric scalar (e.g. an interface named 0) is still a string to us.
		return fmt.Sprint(x), nil
	}
	return "", fmt.Errorf("expected a string, got %s", typeName(v))
}

// asDuration accepts seconds (the v5 unit) as a number, or a Go duration
// string such as "90s" or "5m".
func asDuration(v interface{}) (time.Duration, error) {
	switch x := v.(type) {
	case int:
		return time.Duration(x) * time.Second, nil
	case int64:
		return time.Duration(x) * time.Second, nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) || math.Abs(x) > 1e9 {
			return 0, fmt.Errorf("%v is not a number of seconds", x)
		}
		return time.Duration(x * float64(time.Second)), nil
	case string:
		s := strings.TrimSpace(x)
		if n, err := strconv.ParseFloat(s, 64); err == nil {
			return asDuration(n)
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration (seconds, or e.g. \"90s\", \"5m\")", x)
		}
		return d, nil
	}
	return 0, fmt.Errorf("expected a number of seconds, got %s", typeName(v))
}

func positiveDuration(v interface{}) (time.Duration, error) {
	d, err := asDuration(v)
	if err != nil {
		return 0, err
	}
	if d <= 0 {
		return 0, fmt.Errorf("%s must be positive", d)
	}
	if d > maxTTL {
		return 0, fmt.Errorf("%s is too long: the maximum is %s", d, maxTTL)
	}
	return d, nil
}

func asTTL(v interface{}) (time.Duration, error) {
	d, err := asDuration(v)
	if err != nil {
		return 0, err
	}
	if d < time.Second || d > maxTTL {
		return 0, fmt.Errorf("%s is out of range: must be between 1s and %s", d, maxTTL)
	}
	return d, nil
}

func asList(v interface{}) ([]interface{}, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case []interface{}:
		return x, nil
	}
	return nil, fmt.Errorf("expected a list, got %s", typeName(v))
}

// ParsePrefix reads an address ("10.0.0.1", "::1") as a host prefix or a
// CIDR ("10.0.0.0/8") as its masked prefix.
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// listOf parses a YAML list one item at a time; an item's error names its
// index, as in ips[2].
func listOf[T any](where, key string, v interface{}, item func(interface{}) (T, error)) ([]T, error) {
	items, err := asList(v)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(items))
	for i, it := range items {
		x, err := item(it)
		if err != nil {
			return nil, &ConfigError{Where: where, Key: fmt.Sprintf("%s[%d]", key, i), Reason: err.Error()}
		}
		out = append(out, x)
	}
	return out, nil
}

func prefixList(where, key string, v interface{}) ([]netip.Prefix, error) {
	return listOf(where, key, v, func(it interface{}) (netip.Prefix, error) {
		s, err := asString(it)
		if err != nil {
			return netip.Prefix{}, err
		}
		p, err := ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR", s)
		}
		return p, nil
	})
}

func hostList(where, key string, v interface{}) ([]string, error) {
	return listOf(where, key, v, func(it interface{}) (string, error) {
		s, err := asString(it)
		if err != nil {
			return "", err
		}
		s = strings.TrimSuffix(strings.TrimSpace(s), ".")
		return s, validHostname(s)
	})
}

// validHostname applies RFC 1123 syntax (letters, digits, hyphens, labels of
// 1-63 bytes, 253 in all); an address belongs in ips.
func validHostname(s string) error {
	if s == "" {
		return fmt.Errorf("empty host name")
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return fmt.Errorf("%q is an IP address: list it under ips", s)
	}
	if len(s) > 253 {
		return fmt.Errorf("%q is not a host name: longer than 253 bytes", s)
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("%q is not a host name", s)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("%q is not a host name", s)
			}
		}
	}
	return nil
}

func tagList(where, key string, v interface{}) ([]string, error) {
	return listOf(where, key, v, func(it interface{}) (string, error) {
		s, err := asString(it)
		if err == nil && strings.TrimSpace(s) == "" {
			err = fmt.Errorf("empty tag")
		}
		return s, err
	})
}

func portList(where, key string, v interface{}) ([]uint16, error) {
	out, err := listOf(where, key, v, func(it interface{}) (uint16, error) {
		n, err := asInt(it)
		if err == nil && (n < 1 || n > 65535) {
			err = fmt.Errorf("%d is not a port number (1-65535)", n)
		}
		return uint16(n), err
	})
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, err
}
