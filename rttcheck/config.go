package rttcheck

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v2"

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
	AllRemoteHosts bool           `yaml:"all_remote_hosts"`
	ReverseDNS     bool           `yaml:"reverse_dns"`
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
	InitKeys     = keysOf(reflect.TypeFor[InitConfig]())
	InstanceKeys = keysOf(reflect.TypeFor[InstanceConfig]())
)

func keysOf(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Name != "_" {
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

// ParseConfig parses and validates the instance and init_config YAML. index
// is the instance's position in its file (-1 when unknown, as inside the
// agent) and only improves messages.
func ParseConfig(instance, initConfig []byte, index int) (*Config, error) {
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
			RTTDistributionValues: DefaultDistributionValues,
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
	for _, ttl := range []struct {
		key string
		d   time.Duration
	}{{"exp_ttl", ini.ExpTTL}, {"idle_ttl", ini.IdleTTL}} {
		if ttl.d < in.MinCollectionInterval {
			cfg.Warnings = append(cfg.Warnings, fmt.Sprintf(
				"init_config: %s (%s) is shorter than min_collection_interval (%s): flows that expire between two runs are never reported",
				ttl.key, ttl.d, in.MinCollectionInterval))
		}
	}
	return cfg, nil
}

// keySet maps each key a section sets to the spelling the user wrote (an
// alias or the key itself), so that a message names what is in the file.
type keySet map[string]string

func (s keySet) has(key string) bool { _, ok := s[key]; return ok }

func (s keySet) bad(where, key, format string, a ...any) error {
	if k, ok := s[key]; ok {
		key = k
	}
	return &ConfigError{Where: where, Key: key, Reason: fmt.Sprintf(format, a...)}
}

// validate applies the limits of the init_config keys.
func (ic *InitConfig) validate(set keySet) error {
	const where = "init_config"
	level, levelOK := normalizeLogLevel(ic.LogLevel)
	switch {
	case ic.Snaplen < MinSnaplen:
		return set.bad(where, "snaplen", "%d is too small: the minimum is %d bytes, the longest header stack the decoder reads (Ethernet, two VLAN tags, IPv6, TCP with 40 bytes of options)", ic.Snaplen, MinSnaplen)
	case ic.Snaplen > MaxSnaplen:
		return set.bad(where, "snaplen", "%d is too large: the maximum is %d", ic.Snaplen, MaxSnaplen)
	case ic.IdleTTL < time.Second || ic.IdleTTL > maxTTL:
		return set.bad(where, "idle_ttl", "%s is out of range: must be between 1s and %s", ic.IdleTTL, maxTTL)
	case ic.ExpTTL < time.Second || ic.ExpTTL > maxTTL:
		return set.bad(where, "exp_ttl", "%s is out of range: must be between 1s and %s", ic.ExpTTL, maxTTL)
	case ic.MaxFlows < 1 || ic.MaxFlows > MaxMaxFlows:
		return set.bad(where, "max_flows", "%d is out of range: must be between 1 and %d", ic.MaxFlows, MaxMaxFlows)
	case ic.StatsdIP == "":
		return set.bad(where, "statsd_ip", "must not be empty")
	case ic.StatsdPort < 1 || ic.StatsdPort > 65535:
		return set.bad(where, "statsd_port", "%d is not a port number (1-65535)", ic.StatsdPort)
	case !levelOK:
		return set.bad(where, "log_level", "%q is not a log level (trace, debug, info, warn, error, critical, off)", ic.LogLevel)
	}
	ic.LogLevel = level
	return nil
}

// validate applies the limits of the instance keys and the rules between them.
func (in *InstanceConfig) validate(where string, set keySet, warnings *[]string) error {
	bad := func(key, format string, a ...any) error { return set.bad(where, key, format, a...) }
	if in.Interface == "" {
		return bad("interface", `is required: an interface name, "any", or "file" with pcap`)
	}
	// Linux interface names: at most IFNAMSIZ-1 bytes, no '/' nor whitespace.
	if len(in.Interface) > 15 {
		return bad("interface", "%q is not an interface name: longer than 15 bytes", in.Interface)
	}
	if strings.ContainsAny(in.Interface, "/ \t\n") {
		return bad("interface", "%q is not an interface name", in.Interface)
	}
	for i, h := range in.Hosts {
		in.Hosts[i] = strings.TrimSuffix(h, ".")
		if err := validHostname(in.Hosts[i]); err != nil {
			return bad(fmt.Sprintf("hosts[%d]", i), "%v", err)
		}
	}
	for i, t := range in.Tags {
		if t == "" {
			return bad(fmt.Sprintf("tags[%d]", i), "empty tag")
		}
	}
	slices.Sort(in.Ports)
	in.Backend = strings.ToLower(in.Backend)
	seconds := int(in.MinCollectionInterval / time.Second)
	switch {
	case set.has("pcap") && in.Pcap == "":
		return bad("pcap", "must not be empty")
	case in.HostsRefresh < minHostsRefresh || in.HostsRefresh > maxTTL:
		return bad("hosts_refresh_interval", "%s is out of range: must be between %s and %s", in.HostsRefresh, minHostsRefresh, maxTTL)
	case in.SampleDuration <= 0 || in.SampleDuration > maxTTL:
		return bad("sample_duration", "%s must be positive and at most %s", in.SampleDuration, maxTTL)
	case in.SampleInterval <= 0 || in.SampleInterval > maxTTL:
		return bad("sample_interval", "%s must be positive and at most %s", in.SampleInterval, maxTTL)
	case in.Backend != "" && in.Backend != "afpacket" && in.Backend != "pcap":
		return bad("capture_backend", "%q is not a capture backend: use afpacket or pcap", in.Backend)
	case set.has("capture_buffer_mb") && (in.BufferMB < 1 || in.BufferMB > 1024):
		return bad("capture_buffer_mb", "%d is out of range: must be between 1 and 1024 MiB", in.BufferMB)
	case seconds < 1 || in.MinCollectionInterval > maxTTL:
		return bad("min_collection_interval", "%d is out of range: must be between 1 and %d seconds", seconds, int(maxTTL/time.Second))
	case in.GroupDstIPv4Prefix < 0 || in.GroupDstIPv4Prefix > 32:
		return bad("group_dst_ipv4_prefix", "%d is not a prefix length 0-32 (0 turns grouping off)", in.GroupDstIPv4Prefix)
	case in.GroupDstIPv6Prefix < 0 || in.GroupDstIPv6Prefix > 128:
		return bad("group_dst_ipv6_prefix", "%d is not a prefix length 0-128 (0 turns grouping off)", in.GroupDstIPv6Prefix)
	case in.MaxHostPairs < 0:
		return bad("max_host_pairs", "%d is negative (0 means no cap)", in.MaxHostPairs)
	case in.RTTDistributionValues < 0 || in.RTTDistributionValues > MaxDistributionValues:
		return bad("rtt_distribution_values", "%d is out of range 0-%d (0 turns the distribution off)", in.RTTDistributionValues, MaxDistributionValues)

	// Rules between keys.
	case in.Interface == FileInterface && in.Pcap == "":
		return bad("pcap", `is required with interface: file`)
	case in.Interface != FileInterface && in.Pcap != "":
		return bad("pcap", `is only used with interface: file`)
	case in.Interface == FileInterface && in.Sample:
		return bad("sample", "cannot be used with interface: file (a replay runs once)")
	case len(in.IPs) == 0 && len(in.Hosts) == 0 && !in.AllRemoteHosts:
		return bad("ips", "neither ips nor hosts is set: list the remote hosts to monitor, or set all_remote_hosts: true to track every TCP flow on the interface")
	case in.AllRemoteHosts && (len(in.IPs) > 0 || len(in.Hosts) > 0):
		return bad("all_remote_hosts", "cannot be true together with ips or hosts: remove one or the other")
	}
	if !in.Sample && (set.has("sample_duration") || set.has("sample_interval")) {
		*warnings = append(*warnings, where+": sample_duration and sample_interval have no effect unless sample: true")
	}
	return nil
}

func normalizeLogLevel(s string) (string, bool) {
	s = strings.ToLower(s)
	switch s {
	case "trace", "debug", "info", "warn", "error", "critical", "off":
		return s, true
	}
	l, ok := map[string]string{"warning": "warn", "err": "error", "crit": "critical"}[s]
	return l, ok
}

// decodeSection decodes the YAML mapping data into the struct *dst, field by
// field in the struct's order, so that an error names its key (yaml.v2's own
// struct decoding says only which Go type did not fit, and nothing about
// Agent v5's quoted numbers). It returns the keys it set and appends a
// warning per unknown key and per alias that disagrees with its key.
func decodeSection(data []byte, where func() string, dst any, warnings *[]string) (keySet, error) {
	var m yaml.MapSlice
	if err := yaml.Unmarshal(data, &m); err != nil {
		var te *yaml.TypeError // what yaml.v2 returns for a list or scalar
		if errors.As(err, &te) {
			return nil, &ConfigError{Where: where(), Reason: "must be a mapping of keys to values"}
		}
		return nil, &ConfigError{Where: where(), Reason: "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	values := make(map[string]any, len(m))
	for _, item := range m {
		k, ok := item.Key.(string)
		if !ok {
			return nil, &ConfigError{Where: where(), Reason: fmt.Sprintf("key %v is not a string", item.Key)}
		}
		if _, dup := values[k]; dup {
			return nil, &ConfigError{Where: where(), Key: k, Reason: "appears more than once"}
		}
		values[k] = item.Value
	}

	v := reflect.ValueOf(dst).Elem()
	set := keySet{}
	known := map[string]bool{}
	for i := range v.NumField() {
		f := v.Type().Field(i)
		key, alias := f.Tag.Get("yaml"), f.Tag.Get("alias")
		known[key] = true
		if alias != "" {
			known[alias] = true
		}
		_, strict := f.Tag.Lookup("agent")
		if f.Name == "_" {
			continue
		}
		for _, k := range []string{alias, key} { // the key last: it wins over its alias
			raw, ok := values[k]
			if k == "" || !ok {
				continue
			}
			p := reflect.New(f.Type)
			if err := decodeValue(p.Interface(), raw, strict); err != nil {
				var ie *itemError
				if errors.As(err, &ie) {
					k = fmt.Sprintf("%s[%d]", k, ie.index)
				}
				return nil, &ConfigError{Where: where(), Key: k, Reason: err.Error()}
			}
			if prev, ok := set[key]; ok && !reflect.DeepEqual(v.Field(i).Interface(), p.Elem().Interface()) {
				*warnings = append(*warnings, fmt.Sprintf("%s: both %s (%v) and %s (%v) are set: using %s",
					where(), key, p.Elem(), prev, v.Field(i), key))
			}
			v.Field(i).Set(p.Elem())
			set[key] = k
		}
	}
	for _, item := range m {
		if k := item.Key.(string); !known[k] {
			*warnings = append(*warnings, fmt.Sprintf("%s: unknown key %q is ignored", where(), k))
		}
	}
	return set, nil
}

// itemError is a bad list item; decodeSection names it as in ips[2].
type itemError struct {
	index int
	err   error
}

func (e *itemError) Error() string { return e.err.Error() }

// decodeValue stores v, a value as yaml.v2 decodes it (int, float64, bool,
// string, []interface{}, ...), in *p. It accepts what hand-written and Agent
// v5 files hold: quoted numbers and booleans, durations in seconds or as Go
// duration strings ("90s", "5m"). strict accepts only the YAML type the
// agent's own decoding of the key takes.
func decodeValue(p, v any, strict bool) (err error) {
	switch p := p.(type) {
	case *int:
		*p, err = asInt(v)
	case *string:
		*p, err = asString(v)
	case *bool:
		if !strict {
			*p, err = asBool(v)
		} else if b, ok := v.(bool); ok {
			*p = b
		} else {
			err = fmt.Errorf("expected true or false, got %s (the agent rejects anything else)", typeName(v))
		}
	case *time.Duration:
		if !strict {
			*p, err = asDuration(v)
		} else if _, ok := v.(int); ok {
			*p, err = asDuration(v)
		} else {
			err = fmt.Errorf("expected a whole number of seconds, got %s (the agent rejects anything else)", typeName(v))
		}
	case *[]string:
		*p, err = listOf(v, asString)
	case *[]netip.Prefix:
		*p, err = listOf(v, func(it any) (netip.Prefix, error) {
			s, err := asString(it)
			if err != nil {
				return netip.Prefix{}, err
			}
			pfx, err := ParsePrefix(s)
			if err != nil {
				return pfx, fmt.Errorf("%q is not an IP address or CIDR", s)
			}
			return pfx, nil
		})
	case *packet.Encap:
		// A list of names, or one string ("all", "vxlan gre").
		var names []string
		if str, ok := v.(string); ok {
			names = strings.Fields(strings.ReplaceAll(str, ",", " "))
		} else if names, err = listOf(v, asString); err != nil {
			return err
		}
		*p, err = packet.ParseEncaps(names)
	case *[]uint16:
		*p, err = listOf(v, func(it any) (uint16, error) {
			n, err := asInt(it)
			if err == nil && (n < 1 || n > 65535) {
				err = fmt.Errorf("%d is not a port number (1-65535)", n)
			}
			return uint16(n), err
		})
	default:
		// Only a new field of a type this switch lacks gets here; every
		// key's test finds it.
		err = fmt.Errorf("no decoding for %T", p)
	}
	return err
}

// listOf decodes a YAML list one item at a time.
func listOf[T any](v any, item func(any) (T, error)) ([]T, error) {
	if v == nil {
		return nil, nil
	}
	items, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("expected a list, got %s", typeName(v))
	}
	out := make([]T, 0, len(items))
	for i, it := range items {
		x, err := item(it)
		if err != nil {
			return nil, &itemError{i, err}
		}
		out = append(out, x)
	}
	return out, nil
}

func typeName(v any) string {
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
	case []any:
		return "a list"
	case map[any]any:
		return "a mapping"
	}
	return fmt.Sprintf("%T", v)
}

func asInt(v any) (int, error) {
	switch x := v.(type) {
	case int:
		return x, nil
	case int64, uint64:
		return 0, fmt.Errorf("%d is out of range", x)
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > math.MaxInt32 {
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

func asBool(v any) (bool, error) {
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

// asString also takes an unquoted number (an interface named 0 is still a
// name) and trims white space, which only a quoted YAML string can carry.
func asString(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return strings.TrimSpace(x), nil
	case int, int64, uint64, float64:
		return fmt.Sprint(x), nil
	}
	return "", fmt.Errorf("expected a string, got %s", typeName(v))
}

// asDuration accepts seconds (the v5 unit) as a number, or a Go duration
// string such as "90s" or "5m".
func asDuration(v any) (time.Duration, error) {
	switch x := v.(type) {
	case int:
		return asDuration(float64(x))
	case float64:
		if math.IsNaN(x) || math.Abs(x) > 1e9 { // also keeps the product in range
			return 0, fmt.Errorf("%g seconds is out of range", x)
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

// validHostname applies RFC 1123 syntax (letters, digits, hyphens; labels of
// 1-63 bytes not starting or ending with a hyphen, 253 bytes in all), and
// also takes underscores, which real DNS names carry (_service records,
// some cloud host names). An address belongs in ips.
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
