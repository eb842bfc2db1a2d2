package rttcheck

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

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

// instanceName names an instance in messages: by its interface when it has
// one, which is what a user recognises in a file with several instances.
func instanceName(iface string, index int) string {
	name := "instance"
	if index >= 0 {
		name += fmt.Sprintf(" #%d", index)
	}
	if iface != "" {
		return name + fmt.Sprintf(" %q", iface)
	} else if index < 0 {
		name += " (no interface)"
	}
	return name
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

// validate applies the limits of the init_config keys.
func (ic *InitConfig) validate(set keySet) (err error) {
	level, levelOK := map[string]string{"trace": "trace", "debug": "debug", "info": "info", "warn": "warn", "warning": "warn",
		"error": "error", "err": "error", "critical": "critical", "crit": "critical", "off": "off"}[strings.ToLower(ic.LogLevel)]
	rule := set.rules("init_config", &err)
	rule(ic.Snaplen < MinSnaplen, "snaplen", "%d is too small: the minimum is %d bytes, the longest header stack the decoder reads (Ethernet, two VLAN tags, IPv6, TCP with 40 bytes of options)", ic.Snaplen, MinSnaplen)
	rule(ic.Snaplen > MaxSnaplen, "snaplen", "%d is too large: the maximum is %d", ic.Snaplen, MaxSnaplen)
	rule(ic.IdleTTL < time.Second || ic.IdleTTL > maxTTL, "idle_ttl", "%s is out of range: must be between 1s and %s", ic.IdleTTL, maxTTL)
	rule(ic.ExpTTL < time.Second || ic.ExpTTL > maxTTL, "exp_ttl", "%s is out of range: must be between 1s and %s", ic.ExpTTL, maxTTL)
	rule(ic.MaxFlows < 1 || ic.MaxFlows > MaxMaxFlows, "max_flows", "%d is out of range: must be between 1 and %d", ic.MaxFlows, MaxMaxFlows)
	rule(ic.StatsdIP == "", "statsd_ip", "must not be empty")
	rule(ic.StatsdPort < 1 || ic.StatsdPort > 65535, "statsd_port", "%d is not a port number (1-65535)", ic.StatsdPort)
	rule(!levelOK, "log_level", "%q is not a log level (trace, debug, info, warn, error, critical, off)", ic.LogLevel)
	ic.LogLevel = level
	return err
}

// validate applies the limits of the instance keys and the rules between them.
func (in *InstanceConfig) validate(where string, set keySet, warnings *[]string) (err error) {
	rule, file := set.rules(where, &err), in.Interface == FileInterface
	rule(in.Interface == "", "interface", `is required: an interface name, "any", or "file" with pcap`)
	// Linux interface names: at most IFNAMSIZ-1 bytes, no '/' nor whitespace.
	rule(len(in.Interface) > 15, "interface", "%q is not an interface name: longer than 15 bytes", in.Interface)
	rule(strings.ContainsAny(in.Interface, "/ \t\n"), "interface", "%q is not an interface name", in.Interface)
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
	seconds := int(in.MinCollectionInterval / time.Second)
	rule(set["pcap"] != "" && in.Pcap == "", "pcap", "must not be empty")
	rule(in.HostsRefresh < minHostsRefresh || in.HostsRefresh > maxTTL, "hosts_refresh_interval", "%s is out of range: must be between %s and %s", in.HostsRefresh, minHostsRefresh, maxTTL)
	rule(in.SampleDuration <= 0 || in.SampleDuration > maxTTL, "sample_duration", "%s must be positive and at most %s", in.SampleDuration, maxTTL)
	rule(in.SampleInterval <= 0 || in.SampleInterval > maxTTL, "sample_interval", "%s must be positive and at most %s", in.SampleInterval, maxTTL)
	rule(in.Backend != "" && in.Backend != "afpacket" && in.Backend != "pcap", "capture_backend", "%q is not a capture backend: use afpacket or pcap", in.Backend)
	rule(set["capture_buffer_mb"] != "" && (in.BufferMB < 1 || in.BufferMB > 1024), "capture_buffer_mb", "%d is out of range: must be between 1 and 1024 MiB", in.BufferMB)
	rule(seconds < 1 || in.MinCollectionInterval > maxTTL, "min_collection_interval", "%d is out of range: must be between 1 and %d seconds", seconds, int(maxTTL/time.Second))
	rule(in.GroupDstIPv4Prefix < 0 || in.GroupDstIPv4Prefix > 32, "group_dst_ipv4_prefix", "%d is not a prefix length 0-32 (0 turns grouping off)", in.GroupDstIPv4Prefix)
	rule(in.GroupDstIPv6Prefix < 0 || in.GroupDstIPv6Prefix > 128, "group_dst_ipv6_prefix", "%d is not a prefix length 0-128 (0 turns grouping off)", in.GroupDstIPv6Prefix)
	rule(in.MaxHostPairs < 0, "max_host_pairs", "%d is negative (0 means no cap)", in.MaxHostPairs)
	rule(in.RTTDistributionValues < 0 || in.RTTDistributionValues > MaxDistributionValues, "rtt_distribution_values", "%d is out of range 0-%d (0 turns the distribution off)", in.RTTDistributionValues, MaxDistributionValues)
	// Rules between keys.
	rule(file && in.Pcap == "", "pcap", `is required with interface: file`)
	rule(!file && in.Pcap != "", "pcap", `is only used with interface: file`)
	rule(file && in.Sample, "sample", "cannot be used with interface: file (a replay runs once)")
	rule(len(in.IPs) == 0 && len(in.Hosts) == 0 && !in.AllRemoteHosts, "ips", "neither ips nor hosts is set: list the remote hosts to monitor, or set all_remote_hosts: true to track every TCP flow on the interface")
	rule(in.AllRemoteHosts && (len(in.IPs) > 0 || len(in.Hosts) > 0), "all_remote_hosts", "cannot be true together with ips or hosts: remove one or the other")
	if err == nil && !in.Sample && (set["sample_duration"] != "" || set["sample_interval"] != "") {
		*warnings = append(*warnings, where+": sample_duration and sample_interval have no effect unless sample: true")
	}
	return err
}

// decodeSection decodes the YAML mapping data into the struct *dst, field by
// field in the struct's order, so that an error names its key: yaml's own
// struct decoding names only the Go type that did not fit, and takes none of
// Agent v5's quoted numbers. It returns the keys it set and appends a warning
// per unknown key and per alias that disagrees with its key.
func decodeSection(data []byte, where func() string, dst any, warnings *[]string) (keySet, error) {
	bad := func(key, format string, a ...any) error {
		return &ConfigError{Where: where(), Key: key, Reason: fmt.Sprintf(format, a...)}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, bad("", "invalid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	m := &yaml.Node{Kind: yaml.MappingNode} // an empty document
	if len(doc.Content) == 1 {
		m = deref(doc.Content[0])
	}
	// yaml.v2 took null and [] as empty sections too; their Content is empty.
	if m.Kind != yaml.MappingNode && kind(m) != "nothing" && (m.Kind != yaml.SequenceNode || len(m.Content) > 0) {
		return nil, bad("", "must be a mapping of keys to values")
	}
	values, keys := map[string]*yaml.Node{}, []string{}
	for i := 0; i < len(m.Content); i += 2 {
		k := deref(m.Content[i])
		if kind(k) != "a string" {
			return nil, bad("", "key %s is not a string", k.Value)
		} else if values[k.Value] != nil {
			return nil, bad(k.Value, "appears more than once")
		}
		values[k.Value], keys = m.Content[i+1], append(keys, k.Value)
	}

	v, set := reflect.ValueOf(dst).Elem(), keySet{}
	for i := range v.NumField() {
		f := v.Type().Field(i)
		key, alias := f.Tag.Get("yaml"), f.Tag.Get("alias")
		_, strict := f.Tag.Lookup("agent")
		for _, k := range []string{alias, key} { // the key last: it wins over its alias
			if f.Name == "_" || k == "" || values[k] == nil {
				continue
			}
			p := reflect.New(f.Type)
			if err := decode(values[k], p.Interface(), strict); err != nil {
				if ie, ok := err.(*itemError); ok {
					k = fmt.Sprintf("%s[%d]", k, ie.index)
				}
				return nil, bad(k, "%v", err)
			}
			if prev, ok := set[key]; ok && !reflect.DeepEqual(v.Field(i).Interface(), p.Elem().Interface()) {
				*warnings = append(*warnings, fmt.Sprintf("%s: both %s (%v) and %s (%v) are set: using %s",
					where(), key, p.Elem(), prev, v.Field(i), key))
			}
			v.Field(i).Set(p.Elem())
			set[key] = k
		}
	}
	known := keysOf(v.Type(), true)
	for _, k := range keys {
		if !slices.Contains(known, k) {
			*warnings = append(*warnings, fmt.Sprintf("%s: unknown key %q is ignored", where(), k))
		}
	}
	return set, nil
}

// deref follows an alias (*name) to the node it names.
func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// yaml11Bools are the booleans of YAML 1.1, which yaml.v2 (Agent v5's and
// the agent's decoder) reads: to yaml.v3's YAML 1.2, yes, no, on and off are
// strings.
var yaml11Bools = map[string]bool{"y": true, "Y": true, "yes": true, "Yes": true, "YES": true, "on": true, "On": true, "ON": true,
	"true": true, "True": true, "TRUE": true, "n": false, "N": false, "no": false, "No": false, "NO": false,
	"off": false, "Off": false, "OFF": false, "false": false, "False": false, "FALSE": false}

// kind names n's YAML type as yaml.v2 resolved it, the way messages say it.
func kind(n *yaml.Node) string {
	switch _, yaml11 := yaml11Bools[n.Value]; {
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case yaml11 && n.Style == 0: // plain, neither quoted nor tagged
		return "a boolean"
	}
	if k, ok := map[string]string{"!!null": "nothing", "!!bool": "a boolean", "!!int": "an integer", "!!float": "a number"}[n.ShortTag()]; ok {
		return k
	}
	return "a string"
}

// itemError is a bad list item; decodeSection names it as in ips[2].
type itemError struct {
	index int
	err   error
}

func (e *itemError) Error() string { return e.err.Error() }

// decode stores the YAML value n in *p. It accepts what hand-written and
// Agent v5 files hold: quoted numbers and booleans, an unquoted number as a
// string (an interface named 0 is still a name), durations in seconds or as
// Go duration strings ("90s", "5m"). strict accepts only the YAML type the
// agent's own decoding of the key takes.
func decode(n *yaml.Node, p any, strict bool) error {
	n = deref(n)
	k, s := kind(n), strings.TrimSpace(n.Value) // only a quoted string carries white space
	var v any                                   // a number as yaml.v2 decoded it
	if (k == "an integer" || k == "a number") && n.Decode(&v) == nil {
		s = fmt.Sprint(v) // and printed it: 0x10 is 16, 1e3 is 1000
	}
	num, err := strconv.ParseFloat(s, 64)
	isNum := err == nil && (k == "a string" || v != nil)
	switch p := p.(type) {
	case *string:
		if *p = s; k == "a boolean" || k == "nothing" || n.Kind != yaml.ScalarNode {
			return fmt.Errorf("expected a string, got %s", k)
		}
	case *int:
		i, err := strconv.Atoi(s)
		switch {
		case k == "a number" && isNum && num == math.Trunc(num) && math.Abs(num) <= math.MaxInt32:
			*p = int(num)
		case k == "a number":
			return fmt.Errorf("%s is not a whole number", s)
		case (k == "a string" || k == "an integer") && err == nil:
			*p = i
		case k == "an integer":
			return fmt.Errorf("%s is out of range", s)
		case k == "a string":
			return fmt.Errorf("%q is not an integer", n.Value)
		default:
			return fmt.Errorf("expected an integer, got %s", k)
		}
	case *bool:
		b, err := strconv.ParseBool(s)
		switch {
		case k == "a boolean":
			*p = yaml11Bools[n.Value]
		case strict:
			return fmt.Errorf("expected true or false, got %s (the agent rejects anything else)", k)
		case k != "a string":
			return fmt.Errorf("expected true or false, got %s", k)
		case err != nil:
			return fmt.Errorf("%q is not true or false", n.Value)
		default:
			*p = b
		}
	case *time.Duration:
		d, err := time.ParseDuration(s)
		switch {
		case strict && k != "an integer":
			return fmt.Errorf("expected a whole number of seconds, got %s (the agent rejects anything else)", k)
		case isNum && (math.IsNaN(num) || math.Abs(num) > 1e9): // also keeps the product in range
			return fmt.Errorf("%g seconds is out of range", num)
		case isNum:
			*p = time.Duration(num * float64(time.Second))
		case k != "a string":
			return fmt.Errorf("expected a number of seconds, got %s", k)
		case err != nil:
			return fmt.Errorf("%q is not a duration (seconds, or e.g. \"90s\", \"5m\")", n.Value)
		default:
			*p = d
		}
	case *uint16:
		var port int
		if err := decode(n, &port, false); err != nil {
			return err
		} else if port < 1 || port > 65535 {
			return fmt.Errorf("%d is not a port number (1-65535)", port)
		}
		*p = uint16(port)
	case *netip.Prefix:
		if err := decode(n, &s, false); err != nil {
			return err
		} else if *p, err = ParsePrefix(s); err != nil {
			return fmt.Errorf("%q is not an IP address or CIDR", s)
		}
	case *packet.Encap:
		// A list of names, or one string ("all", "vxlan gre").
		names := strings.Fields(strings.ReplaceAll(s, ",", " "))
		if k != "a string" {
			names = nil
			if err := decode(n, &names, false); err != nil {
				return err
			}
		}
		*p, err = packet.ParseEncaps(names)
		return err
	default:
		// A list of any of the above, decoded item by item.
		list := reflect.ValueOf(p).Elem()
		switch {
		case list.Kind() != reflect.Slice:
			return fmt.Errorf("no decoding for %T", p) // only a new field's type: every key's test finds it
		case n.Kind == yaml.SequenceNode:
			list.Set(reflect.MakeSlice(list.Type(), len(n.Content), len(n.Content)))
		case k != "nothing":
			return fmt.Errorf("expected a list, got %s", k)
		}
		for i, item := range n.Content { // none when null
			if err := decode(item, list.Index(i).Addr().Interface(), false); err != nil {
				return &itemError{i, err}
			}
		}
	}
	return nil
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
		return fmt.Errorf("%q is an IP address: list it under ips", s)
	}
	switch {
	case s == "":
		return errors.New("empty host name")
	case len(s) > 253:
		return fmt.Errorf("%q is not a host name: longer than 253 bytes", s)
	case !hostName.MatchString(s):
		return fmt.Errorf("%q is not a host name", s)
	}
	return nil
}
